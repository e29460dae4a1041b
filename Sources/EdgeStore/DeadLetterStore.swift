/// A record the platform refused for good.
public struct DeadLetter: Sendable {
    public let record: StoredRecord
    /// ms since the epoch.
    public let failedAt: Int64
    public let reason: String
    public let httpStatus: Int?
    public let errorCode: String?
    public let errorMessage: String?
}

/// Why a record is dead-lettered: the platform's verdict, kept with the record.
public struct RejectionReason: Sendable, Equatable {
    public var reason: String
    public var httpStatus: Int?
    public var errorCode: String?
    public var errorMessage: String?

    public init(reason: String, httpStatus: Int? = nil, errorCode: String? = nil, errorMessage: String? = nil) {
        self.reason = reason
        self.httpStatus = httpStatus
        self.errorCode = errorCode
        self.errorMessage = errorMessage
    }
}

/// The dead-letter table. Moves run inside the caller's write transaction and audit themselves.
public final class DeadLetterStore {
    let db: Connection
    let outbox: OutboxStore
    let audit: AuditLog

    public init(_ db: Connection) {
        self.db = db
        self.outbox = OutboxStore(db)
        self.audit = AuditLog(db)
    }

    /// Moves records from the outbox to the dead-letter table with the platform's reason.
    /// Returns how many moved (ids no longer in the outbox are skipped).
    @discardableResult
    public func deadLetter(ids: [Int64], because why: RejectionReason, now: Int64) throws -> Int {
        let copy = try db.cached("""
            INSERT OR REPLACE INTO dead_letter (id, kind, class, target, child, event_time, enqueued_at, payload, bytes,
                                                failed_at, reason, http_status, error_code, error_message)
            SELECT id, kind, class, target, child, event_time, enqueued_at, payload, bytes, ?, ?, ?, ?, ?
            FROM outbox WHERE id = ?
            """)
        var moved: [Int64] = []
        for id in ids {
            copy.reset()
            try copy.bind(now, at: 1)
            try copy.bind(why.reason, at: 2)
            if let status = why.httpStatus { try copy.bind(status, at: 3) } else { try copy.bindNull(at: 3) }
            try copy.bind(why.errorCode, at: 4)
            try copy.bind(why.errorMessage.map { String($0.prefix(1000)) }, at: 5)
            try copy.bind(id, at: 6)
            try copy.run()
            if db.changes > 0 { moved.append(id) }
        }
        guard !moved.isEmpty else { return 0 }
        try outbox.remove(ids: moved)
        var detail = JSONObject()
        detail.add("count", moved.count)
        detail.add("ids", moved.prefix(50).map { String($0) })
        detail.add("reason", why.reason)
        detail.add("http_status", why.httpStatus)
        detail.add("error_code", why.errorCode)
        try audit.append("dead_lettered", detail, at: now)
        return moved.count
    }

    /// Dead letters, oldest first.
    public func list(limit: Int = 1000, afterID: Int64 = 0) throws -> [DeadLetter] {
        let stmt = try db.prepare("""
            SELECT id, kind, class, target, child, event_time, enqueued_at, payload,
                   failed_at, reason, http_status, error_code, error_message
            FROM dead_letter WHERE id > ? ORDER BY id LIMIT ?
            """)
        try stmt.bind(afterID, at: 1)
        try stmt.bind(limit, at: 2)
        var rows: [DeadLetter] = []
        while try stmt.step() {
            rows.append(DeadLetter(record: OutboxStore.record(stmt), failedAt: stmt.int64(8), reason: stmt.text(9),
                                   httpStatus: stmt.optionalInt64(10).map { Int($0) }, errorCode: stmt.optionalText(11),
                                   errorMessage: stmt.optionalText(12)))
        }
        return rows
    }

    /// Count and bytes of dead letters.
    public func total() throws -> OutboxTotals {
        let stmt = try db.prepare("SELECT count(*), coalesce(sum(bytes), 0) FROM dead_letter")
        _ = try stmt.step()
        return OutboxTotals(records: stmt.int64(0), bytes: stmt.int64(1))
    }

    /// Moves dead letters (all, or the given ids) back into the outbox under their original
    /// ids, to be sent again. Returns how many moved.
    @discardableResult
    public func retry(ids: [Int64]? = nil, now: Int64) throws -> Int {
        let (filter, binds) = Self.filter(ids)
        let move = try db.prepare("""
            INSERT INTO outbox (id, kind, class, target, child, event_time, enqueued_at, payload, bytes)
            SELECT id, kind, class, target, child, event_time, enqueued_at, payload, bytes FROM dead_letter \(filter)
            """)
        for (index, id) in binds.enumerated() { try move.bind(id, at: Int32(index + 1)) }
        try move.run()
        let count = db.changes
        guard count > 0 else { return 0 }
        let range = try idRange(filter: filter, binds: binds)
        let delete = try db.prepare("DELETE FROM dead_letter \(filter)")
        for (index, id) in binds.enumerated() { try delete.bind(id, at: Int32(index + 1)) }
        try delete.run()
        try outbox.recountTotals()
        var detail = JSONObject()
        detail.add("count", count)
        detail.add("first_id", range.0)
        detail.add("last_id", range.1)
        try audit.append("dead_letters_retried", detail, at: now)
        return count
    }

    /// Deletes dead letters (all, or the given ids) for good, and audits it.
    @discardableResult
    public func purge(ids: [Int64]? = nil, now: Int64) throws -> Int {
        let (filter, binds) = Self.filter(ids)
        let range = try idRange(filter: filter, binds: binds)
        let delete = try db.prepare("DELETE FROM dead_letter \(filter)")
        for (index, id) in binds.enumerated() { try delete.bind(id, at: Int32(index + 1)) }
        try delete.run()
        let count = db.changes
        guard count > 0 else { return 0 }
        var detail = JSONObject()
        detail.add("count", count)
        detail.add("first_id", range.0)
        detail.add("last_id", range.1)
        try audit.append("dead_letters_purged", detail, at: now)
        return count
    }

    private func idRange(filter: String, binds: [Int64]) throws -> (Int64?, Int64?) {
        let stmt = try db.prepare("SELECT min(id), max(id) FROM dead_letter \(filter)")
        for (index, id) in binds.enumerated() { try stmt.bind(id, at: Int32(index + 1)) }
        _ = try stmt.step()
        return (stmt.optionalInt64(0), stmt.optionalInt64(1))
    }

    private static func filter(_ ids: [Int64]?) -> (String, [Int64]) {
        guard let ids else { return ("", []) }
        if ids.isEmpty { return ("WHERE 0", []) }
        return ("WHERE id IN (\(Array(repeating: "?", count: ids.count).joined(separator: ",")))", ids)
    }
}
