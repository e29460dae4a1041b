/// `edgebuf doctor`: checks the network path to the configured endpoints.
public enum Doctor {}
