/// A gap marker for the inbox: the session was re-established, and messages queued for the
/// old session (Bayeux does not keep them across sessions, Faye delivers at most once) may be
/// lost. Consumers can react, e.g. fetch pending operations over REST.
public struct SessionGap: Sendable, Equatable {
    /// Why the old session ended (secret-free).
    public var reason: String
    /// The number of the new session in this process: 2 for the first re-handshake.
    public var session: Int

    public init(reason: String, session: Int) {
        self.reason = reason
        self.session = session
    }
}
