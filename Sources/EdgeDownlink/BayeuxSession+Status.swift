import EdgeStore

extension BayeuxSession {
    /// The state shown by `status`. Holds no secret: not the password, not the `ext`, and not
    /// the clientId. The clientId is the session's bearer credential: on a server without
    /// per-request authentication (Faye, many CometD deployments) whoever knows it can poll
    /// the session's messages away or unsubscribe it, and `status` output ends up in tickets
    /// and screenshots. `sessionFingerprint` (a short hash of it) tells sessions apart instead.
    public struct Status: Sendable, Equatable {
        /// handshaking, connected, unconnected, disconnecting, disconnected, stopped (and why).
        public var phase: BayeuxPhase
        /// The hold time in force for connects: the requested one, capped by the server's advice.
        public var grantedTimeout: Duration
        /// The hold time the session asks for.
        public var requestedTimeout: Duration
        /// The advised wait between connects.
        public var interval: Duration
        /// Channels the server confirmed, sorted.
        public var subscribedChannels: [String]
        /// When an answer last arrived (any request).
        public var lastAnswerAt: Instant?
        /// When a notification last arrived.
        public var lastNotificationAt: Instant?
        /// Notifications received since start (before dedupe).
        public var notificationsReceived: Int
        /// Successful re-handshakes since start: the gap markers written.
        public var reconnects: Int
        /// Handshakes sent since start.
        public var handshakes: Int
        /// Failed handshakes/connects since the last successful connect.
        public var consecutiveFailures: Int
        /// The backoff chosen at the last failure; nil after a successful connect.
        public var currentBackoff: Duration?
        /// When the next handshake or connect is due, if one is waiting.
        public var nextAttemptAt: Instant?
        /// The last failure, one secret-free line.
        public var lastError: String?
        /// Answers to requests the session had already given up on.
        public var staleAnswers: Int
        /// The first 8 hex digits of SHA-256(clientId): tells sessions apart without showing it.
        public var sessionFingerprint: String?
    }

    /// The state for `status`.
    public func status() -> Status {
        var next: Instant? = nil
        switch path {
        case .handshake(let due), .connect(let due): next = due
        default: break
        }
        return Status(phase: phase, grantedTimeout: grantedTimeout, requestedTimeout: configuration.requestedTimeout,
                      interval: interval, subscribedChannels: subscribed.sorted(), lastAnswerAt: lastAnswerAt,
                      lastNotificationAt: lastNotificationAt, notificationsReceived: notificationsReceived,
                      reconnects: reconnects, handshakes: handshakesSent, consecutiveFailures: consecutiveFailures,
                      currentBackoff: currentBackoff, nextAttemptAt: next, lastError: lastError,
                      staleAnswers: staleAnswers,
                      sessionFingerprint: clientID.map { String(Hex.sha256(Array($0.utf8)).prefix(8)) })
    }

    /// The requests the engine should have in flight now (for assertions and diagnostics).
    public var outstandingRequests: [BayeuxRequest] {
        [poll, control].compactMap { $0?.request }
    }
}
