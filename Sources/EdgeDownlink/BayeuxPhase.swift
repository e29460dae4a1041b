/// Where the Bayeux session is, for `status` and for reports.
///
/// handshaking → (subscribe) → unconnected → connected ⇄ unconnected → disconnecting →
/// disconnected, back to handshaking on every re-handshake, and `stopped` when the server
/// said not to reconnect.
public enum BayeuxPhase: Sendable, Equatable, CustomStringConvertible {
    /// No session: a handshake is in flight or waiting for its backoff to pass.
    case handshaking
    /// The last connect succeeded: a long poll is held or the next one is about to go.
    case connected
    /// A session exists but no connect has succeeded yet (just after the handshake, while
    /// subscribing) or the last connect failed (retrying with backoff).
    case unconnected
    /// `stop` was called: the disconnect is in flight.
    case disconnecting
    /// Not started, or stopped by `stop` (disconnected cleanly or not).
    case disconnected
    /// The server told us not to reconnect: nothing more is sent until edgebuf restarts.
    case stopped(BayeuxStopReason)

    /// `handshaking`, `connected`, `unconnected`, `disconnecting`, `disconnected`, `stopped`.
    public var name: String {
        switch self {
        case .handshaking: return "handshaking"
        case .connected: return "connected"
        case .unconnected: return "unconnected"
        case .disconnecting: return "disconnecting"
        case .disconnected: return "disconnected"
        case .stopped: return "stopped"
        }
    }

    /// The name, and for `stopped` why.
    public var description: String {
        if case .stopped(let reason) = self { return "stopped: \(reason)" }
        return name
    }
}

/// Why the session ended.
public enum BayeuxStopReason: Sendable, Equatable, CustomStringConvertible {
    /// `stop` was called (shutdown).
    case requested
    /// The server answered `advice.reconnect: "none"` to this request.
    case serverAdvisedNone(request: BayeuxRequest.Kind, error: BayeuxServerError?)
    /// The server advised a negative `interval`: do not reconnect.
    case negativeInterval(milliseconds: Int64)

    /// `requested`, `server_advised_none`, `negative_interval`: for logs and metrics.
    public var label: String {
        switch self {
        case .requested: return "requested"
        case .serverAdvisedNone: return "server_advised_none"
        case .negativeInterval: return "negative_interval"
        }
    }

    /// What happened, why, and what to do.
    public var description: String {
        switch self {
        case .requested:
            return "stopped on request"
        case .serverAdvisedNone(let kind, let error):
            let cause = error.map { " (error \($0))" } ?? ""
            return "the server answered the \(kind.rawValue) with advice reconnect \"none\"\(cause): the downlink will not reconnect; check the credentials and the endpoint, then restart edgebuf"
        case .negativeInterval(let ms):
            return "the server advised interval \(ms) ms (negative: do not reconnect): the downlink will not reconnect; restart edgebuf to try again"
        }
    }
}
