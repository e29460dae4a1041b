/// What happens when the outbox is full.
public enum FullPolicy: String, Sendable, CaseIterable {
    /// The new record is refused with a clear error; nothing already stored is touched.
    case rejectNew = "reject-new"
    /// The oldest records of the same or a less important class are evicted (bulk before
    /// normal before critical) to make room, and the eviction is written to the audit.
    case dropOldest = "drop-oldest"
}

/// The outbox's size limits. Bytes count record payloads (what would be sent), not file pages.
public struct CapacityPolicy: Sendable, Equatable {
    public static let defaultMaxBytes: Int64 = 512 * 1024 * 1024
    public static let defaultMaxRecords: Int64 = 5_000_000

    public var maxBytes: Int64 = CapacityPolicy.defaultMaxBytes
    public var maxRecords: Int64 = CapacityPolicy.defaultMaxRecords
    /// Records older than this (ms since enqueue) are expired and audited; nil keeps them.
    public var maxAgeMilliseconds: Int64? = nil
    public var whenFull: FullPolicy = .rejectNew

    public init(maxBytes: Int64 = CapacityPolicy.defaultMaxBytes, maxRecords: Int64 = CapacityPolicy.defaultMaxRecords,
                maxAgeMilliseconds: Int64? = nil, whenFull: FullPolicy = .rejectNew) {
        self.maxBytes = maxBytes
        self.maxRecords = maxRecords
        self.maxAgeMilliseconds = maxAgeMilliseconds
        self.whenFull = whenFull
    }
}

/// The outbox had no room for a batch; nothing of it was stored.
public struct OutboxFullError: Error, Sendable, CustomStringConvertible {
    public let policy: CapacityPolicy
    public let records: Int64
    public let bytes: Int64
    /// Which limit: "max_bytes" or "max_records".
    public let limit: String

    public var description: String {
        let size = limit == "max_bytes" ? "\(policy.maxBytes) bytes" : "\(policy.maxRecords) records"
        let more = policy.whenFull == .dropOldest ? " and nothing of the same or a less important class is left to evict" : ""
        return "outbox is full (\(limit) = \(size), policy \(policy.whenFull.rawValue)\(more)); the record was NOT stored. Raise database.\(limit) or let the uplink drain."
    }
}
