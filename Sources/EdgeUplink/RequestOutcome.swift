/// What became of one request: the audit row the engine writes for it.
public struct RequestOutcome: Sendable, Equatable {
    /// Every request ends in exactly one of these.
    public enum Result: String, Sendable, Equatable, CaseIterable {
        /// 2xx: the records are gone from the outbox.
        case delivered
        /// The same records go again later (transient failure, rate limit, token).
        case retry
        /// The request was cut in two and the halves go next (too large, too many children,
        /// invalid input being bisected).
        case split
        /// Some or all of its records were refused for good and moved to the dead-letter table.
        case deadLettered = "dead-lettered"
    }

    /// The result.
    public var result: Result
    /// The attempt number of this request, from 1.
    public var attempt: Int
    /// The ids of the records the request carried.
    public var recordIDs: [Int64]
    /// The request path.
    public var path: String
    /// The body size in bytes.
    public var bodyBytes: Int
    /// The HTTP status; nil when there was no answer.
    public var httpStatus: Int?
    /// The platform's error code, if any.
    public var errorCode: String?
    /// One secret-free line: the classification summary.
    public var detail: String

    public init(result: Result, attempt: Int, recordIDs: [Int64], path: String, bodyBytes: Int,
                httpStatus: Int?, errorCode: String?, detail: String) {
        self.result = result
        self.attempt = attempt
        self.recordIDs = recordIDs
        self.path = path
        self.bodyBytes = bodyBytes
        self.httpStatus = httpStatus
        self.errorCode = errorCode
        self.detail = detail
    }
}
