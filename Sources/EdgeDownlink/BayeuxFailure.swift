/// Why a request got no usable answer, as the engine reports it.
public enum BayeuxFailure: Sendable, Equatable, CustomStringConvertible {
    /// No HTTP answer: DNS, connect, TLS, reset, closed mid-answer. The text is a short,
    /// secret-free label (e.g. `TransportError.label`).
    case transport(String)
    /// An HTTP status other than 200 (Faye answers 400 to broken JSON; proxies 5xx; 401/403
    /// when the Basic credentials are refused), with the server's `Retry-After` if any.
    case httpStatus(Int, retryAfter: Duration? = nil)
    /// The request's deadline passed without a complete answer: a dead poll (the server
    /// accepted and went silent, a firewall dropped the flow), or the byte-idle watchdog.
    case deadlineExceeded

    public var description: String {
        switch self {
        case .transport(let label): return "transport failure (\(label))"
        case .httpStatus(let status, _): return "HTTP \(status)"
        case .deadlineExceeded: return "no answer before the deadline (dead poll)"
        }
    }

    /// HTTP 401 or 403: the credentials were refused at the HTTP level.
    var refusesCredentials: Bool {
        if case .httpStatus(let status, _) = self { return status == 401 || status == 403 }
        return false
    }

    /// Whether the server may have written events into the answer that was lost: a poll that
    /// died at its deadline (a firewall black-holed the answer), or an answer cut off or
    /// refused as too large. Not for failures before anything was sent (DNS, connect, TLS) or
    /// an HTTP error status.
    var mayHaveLostEvents: Bool {
        switch self {
        case .deadlineExceeded: return true
        case .transport(let label): return ["connection_closed", "response_too_large", "response_refused", "timed_out"].contains(label)
        case .httpStatus: return false
        }
    }

    var retryAfter: Duration? {
        if case .httpStatus(_, let retryAfter) = self { return retryAfter }
        return nil
    }
}
