/// The `advice` field of a Bayeux answer: how the server wants the client to go on.
///
/// The session keeps only the newest advice (a newer one replaces an older one as a whole) and
/// clears it before each handshake (shared/reference/bayeux-client.md).
public struct BayeuxAdvice: Sendable, Equatable {
    /// `advice.reconnect`.
    public enum Reconnect: String, Sendable, Equatable {
        /// Connect again after `interval`.
        case retry
        /// Handshake again; never retry the connect.
        case handshake
        /// Do not reconnect at all.
        case none
    }

    /// The reconnect policy, nil when absent or not one of the three known values.
    public var reconnect: Reconnect?
    /// `advice.interval` in milliseconds: the wait before the next connect. Negative means
    /// "do not reconnect".
    public var intervalMilliseconds: Int64?
    /// `advice.timeout` in milliseconds: how long the server holds a connect.
    public var timeoutMilliseconds: Int64?

    public init(reconnect: Reconnect? = nil, intervalMilliseconds: Int64? = nil, timeoutMilliseconds: Int64? = nil) {
        self.reconnect = reconnect
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// `interval` as a duration (negative stays negative), nil when absent.
    public var interval: Duration? { intervalMilliseconds.map { .milliseconds($0) } }

    /// `timeout` as a duration, nil when absent or negative.
    public var timeout: Duration? {
        guard let ms = timeoutMilliseconds, ms >= 0 else { return nil }
        return .milliseconds(ms)
    }

    /// Reads an advice object decoded by `JSONSerialization`; nil if it is not an object.
    /// Lenient: numbers may come as integers, floats or numeric strings; unknown keys are ignored.
    init?(json: Any) {
        guard let object = json as? [String: Any] else { return nil }
        if let text = object["reconnect"] as? String {
            reconnect = Reconnect(rawValue: text.lowercased())
        }
        intervalMilliseconds = JSONValue.int64(object["interval"])
        timeoutMilliseconds = JSONValue.int64(object["timeout"])
    }
}
