/// The downlink: Bayeux long polling into the inbox (see BayeuxSession).
public enum EdgeDownlink {}
