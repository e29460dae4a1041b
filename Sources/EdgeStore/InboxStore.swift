/// A notification ready to be stored: what the downlink received, in storage terms.
public struct InboxNotificationRow: Sendable, Equatable {
    public var channel: String
    /// The idempotency key: a second row with the same key is not stored.
    public var dedupeKey: String
    public var realtimeAction: String?
    /// The data as JSON text.
    public var data: [UInt8]

    public init(channel: String, dedupeKey: String, realtimeAction: String?, data: [UInt8]) {
        self.channel = channel
        self.dedupeKey = dedupeKey
        self.realtimeAction = realtimeAction
        self.data = data
    }
}

/// One inbox row: a notification, or a gap marker (the session was re-established and
/// messages queued for the old one may be lost).
public struct InboxEntry: Sendable, Equatable {
    public enum Kind: String, Sendable { case notification, gap }

    public var id: Int64
    public var kind: Kind
    public var channel: String?
    public var realtimeAction: String?
    /// JSON text: the notification's data, or `{"reason":...,"session":N}` for a gap.
    public var data: String
    /// ms since the Unix epoch, UTC.
    public var receivedAt: Int64
    /// Stored by the REST recovery after a gap marker (`inbox exec --operations`), not
    /// received over Bayeux.
    public var recovered: Bool

    public init(id: Int64, kind: Kind, channel: String?, realtimeAction: String?, data: String, receivedAt: Int64, recovered: Bool = false) {
        self.id = id
        self.kind = kind
        self.channel = channel
        self.realtimeAction = realtimeAction
        self.data = data
        self.receivedAt = receivedAt
        self.recovered = recovered
    }

    /// The line consumers read: `{"id":N,"kind":"notification","channel":...,"realtime_action":...,
    /// "received_at":"...","data":{...}}`; a gap has no channel and its data holds the reason.
    public var jsonLine: String {
        var out = JSONObject()
        out.add("id", id)
        out.add("kind", kind.rawValue)
        if kind == .notification {
            out.add("channel", channel)
            if let realtimeAction { out.add("realtime_action", realtimeAction) }
            if recovered { out.add("recovered", true) }
        }
        out.add("received_at", Timestamp.format(milliseconds: receivedAt))
        out.add("data", rawJSON: Array(data.utf8))
        return out.json
    }
}

/// What one committed batch changed.
public struct InboxBatchResult: Sendable, Equatable {
    /// Notifications stored (new keys).
    public var stored: Int
    /// Notifications not stored because a row with the same key exists.
    public var duplicates: Int
    /// The gap marker's id, if the batch had one.
    public var gapID: Int64?
    /// The ids of the stored rows (gap included), first and last.
    public var firstID: Int64?
    public var lastID: Int64?
}

/// A named consumer's cursor.
public struct InboxConsumer: Sendable, Equatable {
    public var name: String
    /// The id of the last row it has handled.
    public var position: Int64
    public var updatedAt: Int64
}

/// The inbox table: every notification the downlink received, and the gap markers.
///
/// Mutating methods run inside the caller's write transaction, so a batch, its audit row and
/// the downlink's state commit together.
public final class InboxStore {
    let db: Connection

    public init(_ db: Connection) { self.db = db }

    /// The longest consumer name; names are `[A-Za-z0-9._-]`.
    public static let maxConsumerNameLength = 64

    /// Why `name` is not a valid consumer name, or nil.
    public static func consumerNameProblem(_ name: String) -> String? {
        if name.isEmpty || name.utf8.count > maxConsumerNameLength {
            return "must be 1 to \(maxConsumerNameLength) characters"
        }
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        return allowed ? nil : "may contain only letters, digits, '.', '_' and '-'"
    }

    // MARK: Intake

    /// Stores a batch: the gap marker first (if any), then each notification unless its key is
    /// already stored; appends one `notifications_received` audit row. Call inside a write
    /// transaction.
    @discardableResult
    public func insert(_ notifications: [InboxNotificationRow], gap: (reason: String, session: Int)?,
                       receivedAt: Int64) throws -> InboxBatchResult {
        precondition(db.inTransaction, "a received batch is stored in one transaction")
        var result = InboxBatchResult(stored: 0, duplicates: 0)
        func note(_ id: Int64) {
            if result.firstID == nil { result.firstID = id }
            result.lastID = id
        }
        if let gap {
            var data = JSONObject()
            data.add("reason", gap.reason)
            data.add("session", gap.session)
            let stmt = try db.cached("INSERT INTO inbox (kind, channel, dedupe_key, realtime_action, data, received_at) VALUES ('gap', NULL, NULL, NULL, ?, ?)")
            try stmt.bind(data.json, at: 1)
            try stmt.bind(receivedAt, at: 2)
            try stmt.run()
            result.gapID = db.lastInsertRowID
            note(db.lastInsertRowID)
        }
        let insert = try db.cached("INSERT OR IGNORE INTO inbox (kind, channel, dedupe_key, realtime_action, data, received_at) VALUES ('notification', ?, ?, ?, ?, ?)")
        var bytes = 0
        var channels: [String] = []
        for row in notifications {
            insert.reset()
            try insert.bind(row.channel, at: 1)
            try insert.bind(row.dedupeKey, at: 2)
            try insert.bind(row.realtimeAction, at: 3)
            try insert.bind(String(decoding: row.data, as: UTF8.self), at: 4)
            try insert.bind(receivedAt, at: 5)
            try insert.run()
            bytes += row.data.count
            if !channels.contains(row.channel) { channels.append(row.channel) }
            if db.changes > 0 {
                result.stored += 1
                note(db.lastInsertRowID)
            } else {
                result.duplicates += 1
            }
        }
        var detail = JSONObject()
        detail.add("received", notifications.count)
        detail.add("stored", result.stored)
        detail.add("duplicates", result.duplicates)
        detail.add("bytes", bytes)
        detail.add("channels", channels.sorted())
        detail.add("first_id", result.firstID)
        detail.add("last_id", result.lastID)
        if let gap { detail.add("gap", gap.reason) }
        try AuditLog(db).append("notifications_received", detail, at: receivedAt)
        return result
    }

    /// Stores operations the REST recovery found, as notifications flagged `recovered`
    /// (dedupe key `recovered:<channel>:<id>`: a second recovery of one operation stores
    /// nothing), with one `operations_recovered` audit row. Call inside a write transaction.
    /// Returns the stored rows' ids.
    @discardableResult
    public func insertRecovered(_ operations: [(id: String, data: [UInt8])], channel: String, audit detail: JSONObject, receivedAt: Int64) throws -> [Int64] {
        precondition(db.inTransaction, "a recovery is stored in one transaction")
        let insert = try db.cached("INSERT OR IGNORE INTO inbox (kind, channel, dedupe_key, realtime_action, data, received_at, recovered) VALUES ('notification', ?, ?, NULL, ?, ?, 1)")
        var ids: [Int64] = []
        for operation in operations {
            insert.reset()
            try insert.bind(channel, at: 1)
            try insert.bind("recovered:\(channel):\(operation.id)", at: 2)
            try insert.bind(String(decoding: operation.data, as: UTF8.self), at: 3)
            try insert.bind(receivedAt, at: 4)
            try insert.run()
            if db.changes > 0 { ids.append(db.lastInsertRowID) }
        }
        var detail = detail
        detail.add("stored", ids.count)
        detail.add("first_id", ids.first)
        detail.add("last_id", ids.last)
        try AuditLog(db).append("operations_recovered", detail, at: receivedAt)
        return ids
    }

    // MARK: Reading

    /// Rows after `afterID` in id order, at most `limit`. With `channel` (a glob: `*` matches
    /// any characters, `/` included; `?` one), only matching notifications, and every gap
    /// marker (a consumer of any channel must learn about a gap).
    public func list(afterID: Int64, channel: String? = nil, limit: Int = 1000) throws -> [InboxEntry] {
        let stmt: Statement
        if let channel {
            stmt = try db.cached("SELECT id, kind, channel, realtime_action, data, received_at, recovered FROM inbox WHERE id > ? AND (kind = 'gap' OR channel GLOB ?) ORDER BY id LIMIT ?")
            try stmt.bind(afterID, at: 1)
            try stmt.bind(channel, at: 2)
            try stmt.bind(limit, at: 3)
        } else {
            stmt = try db.cached("SELECT id, kind, channel, realtime_action, data, received_at, recovered FROM inbox WHERE id > ? ORDER BY id LIMIT ?")
            try stmt.bind(afterID, at: 1)
            try stmt.bind(limit, at: 2)
        }
        defer { stmt.reset() }
        var entries: [InboxEntry] = []
        while try stmt.step() {
            entries.append(InboxEntry(id: stmt.int64(0), kind: InboxEntry.Kind(rawValue: stmt.text(1)) ?? .notification,
                                      channel: stmt.optionalText(2), realtimeAction: stmt.optionalText(3),
                                      data: stmt.text(4), receivedAt: stmt.int64(5), recovered: stmt.int64(6) != 0))
        }
        return entries
    }

    /// Rows, bytes of data, the newest id and the oldest receive time.
    public struct Totals: Sendable, Equatable {
        public var records: Int64
        public var gaps: Int64
        public var bytes: Int64
        public var newestID: Int64?
        public var oldestReceivedAt: Int64?

        public init(records: Int64 = 0, gaps: Int64 = 0, bytes: Int64 = 0, newestID: Int64? = nil, oldestReceivedAt: Int64? = nil) {
            self.records = records
            self.gaps = gaps
            self.bytes = bytes
            self.newestID = newestID
            self.oldestReceivedAt = oldestReceivedAt
        }
    }

    public func totals() throws -> Totals {
        let stmt = try db.prepare("SELECT count(*), coalesce(sum(kind = 'gap'), 0), coalesce(sum(length(data)), 0), max(id), min(received_at) FROM inbox")
        _ = try stmt.step()
        return Totals(records: stmt.int64(0), gaps: stmt.int64(1), bytes: stmt.int64(2),
                      newestID: stmt.optionalInt64(3), oldestReceivedAt: stmt.optionalInt64(4))
    }

    /// The highest id retention has removed (0: none).
    public func purgedThrough() throws -> Int64 {
        try db.scalarInt("SELECT purged_through FROM inbox_retention WHERE singleton = 1")
    }

    // MARK: Consumers

    /// The consumer's position (0 for a new consumer: it starts at the beginning).
    public func position(of consumer: String) throws -> Int64 {
        let stmt = try db.cached("SELECT position FROM inbox_consumers WHERE name = ?")
        try stmt.bind(consumer, at: 1)
        defer { stmt.reset() }
        return try stmt.step() ? stmt.int64(0) : 0
    }

    /// Moves the consumer's cursor forward to `id` (never backwards).
    public func advance(_ consumer: String, to id: Int64, now: Int64) throws {
        let stmt = try db.cached("""
            INSERT INTO inbox_consumers (name, position, updated_at) VALUES (?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET position = max(position, excluded.position), updated_at = excluded.updated_at
            """)
        try stmt.bind(consumer, at: 1)
        try stmt.bind(id, at: 2)
        try stmt.bind(now, at: 3)
        try stmt.run()
    }

    public func consumers() throws -> [InboxConsumer] {
        let stmt = try db.prepare("SELECT name, position, updated_at FROM inbox_consumers ORDER BY name")
        var result: [InboxConsumer] = []
        while try stmt.step() {
            result.append(InboxConsumer(name: stmt.text(0), position: stmt.int64(1), updatedAt: stmt.int64(2)))
        }
        return result
    }

    // MARK: Retention

    /// Removes what the retention policy no longer keeps: rows received before
    /// `now - maxAgeMilliseconds`, and the oldest rows beyond `maxRecords`. Appends one
    /// `inbox_purged` audit row per purge that removed something. Call inside a write
    /// transaction. Returns the number of rows removed.
    @discardableResult
    public func purge(maxRecords: Int64?, maxAgeMilliseconds: Int64?, now: Int64) throws -> Int {
        precondition(db.inTransaction, "a purge commits with its audit row")
        var through: Int64 = 0
        var reasons: [String] = []
        if let maxAgeMilliseconds {
            let stmt = try db.prepare("SELECT max(id) FROM inbox WHERE received_at < ?")
            try stmt.bind(now - maxAgeMilliseconds, at: 1)
            if try stmt.step(), let id = stmt.optionalInt64(0), id > through {
                through = id
                reasons.append("max_age")
            }
        }
        if let maxRecords {
            let stmt = try db.prepare("SELECT id FROM inbox ORDER BY id DESC LIMIT 1 OFFSET ?")
            try stmt.bind(maxRecords, at: 1)
            if try stmt.step() {
                let id = stmt.int64(0)
                if id > through { through = id }
                reasons.append("max_records")
            }
        }
        guard through > 0 else { return 0 }
        let range = try db.prepare("SELECT count(*), min(id) FROM inbox WHERE id <= ?")
        try range.bind(through, at: 1)
        _ = try range.step()
        let count = range.int(0)
        let first = range.optionalInt64(1)
        guard count > 0 else { return 0 }
        let delete = try db.prepare("DELETE FROM inbox WHERE id <= ?")
        try delete.bind(through, at: 1)
        try delete.run()
        let mark = try db.prepare("UPDATE inbox_retention SET purged_through = max(purged_through, ?) WHERE singleton = 1")
        try mark.bind(through, at: 1)
        try mark.run()
        var detail = JSONObject()
        detail.add("records", count)
        detail.add("first_id", first)
        detail.add("last_id", through)
        detail.add("policy", reasons)
        if let maxRecords { detail.add("max_records", maxRecords) }
        if let maxAgeMilliseconds { detail.add("max_age_ms", maxAgeMilliseconds) }
        try AuditLog(db).append("inbox_purged", detail, at: now)
        return count
    }
}
