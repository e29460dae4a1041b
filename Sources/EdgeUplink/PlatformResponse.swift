import EdgeStore

/// What the platform answered, as much of it as the uplink needs. The engine builds it from
/// the transport's response.
public struct PlatformResponse: Sendable, Equatable {
    /// The HTTP status, e.g. 200.
    public var status: Int
    /// `Retry-After`, parsed (delta-seconds or HTTP-date) by the engine; nil when absent.
    public var retryAfter: Duration?
    /// The body (IoTDA errors: `{"error_code": "...", "error_msg": "..."}`).
    public var body: [UInt8]

    public init(status: Int, retryAfter: Duration? = nil, body: [UInt8] = []) {
        self.status = status
        self.retryAfter = retryAfter
        self.body = body
    }
}

/// A request that got no HTTP answer: connection refused or reset, DNS, TLS, timeout.
/// Always transient. `reason` goes to `status` and logs: it must hold no secret.
public struct TransportFailure: Sendable, Equatable, Error, CustomStringConvertible {
    /// Short and secret-free, e.g. "timeout after 30 s" or "connection refused (curl 7)".
    public var reason: String
    /// Whether it was a timeout (shown separately in status).
    public var isTimeout: Bool

    public init(reason: String, isTimeout: Bool = false) {
        self.reason = reason
        self.isTimeout = isTimeout
    }

    public var description: String { reason }
}

/// The result of one HTTP exchange.
public enum ExchangeResult: Sendable, Equatable {
    /// An HTTP answer, whatever its status.
    case response(PlatformResponse)
    /// No HTTP answer.
    case transportFailure(TransportFailure)
}

/// What an answer means for the records of the request, decided by the platform's error code
/// first and the HTTP status second (IoTDA rate limiting and a bad token are both 403).
public enum ResponseClass: Sendable, Equatable {
    /// 2xx: the platform took the records.
    case delivered
    /// The credentials were refused (IOTDA.000002, IoTDA 401, Cumulocity 401/403).
    case authenticationFailed
    /// The IoTDA access token is invalid or expired (IOTDA.000004).
    case tokenRejected
    /// The request holds a bad record (IOTDA.000006, 400, Cumulocity 422, other platform 4xx).
    case invalidInput
    /// Too many requests (IOTDA.021101 device, IOTDA.021102 tenant, 429).
    case rateLimited
    /// Too many child devices in one gateway request (IOTDA.021103).
    case tooManyChildren
    /// A child device is missing or not under this gateway (IOTDA.021104); the child's id when
    /// the answer names one of the request's children.
    case unknownChild(String?)
    /// The body is over the platform limit (IOTDA.021105, 413).
    case tooLarge
    /// Try the same request again later: 5xx, 408, no answer, or an answer that is not the
    /// platform's (a proxy's HTML page).
    case transient

    /// A short, payload-free label for logs and metrics.
    public var label: String {
        switch self {
        case .delivered: return "delivered"
        case .authenticationFailed: return "authentication failed"
        case .tokenRejected: return "token rejected"
        case .invalidInput: return "invalid input"
        case .rateLimited: return "rate limited"
        case .tooManyChildren: return "too many child devices"
        case .unknownChild: return "unknown child device"
        case .tooLarge: return "too large"
        case .transient: return "transient failure"
        }
    }
}
