import CSQLite
import Foundation

/// Counts and bytes of stored records.
public struct OutboxTotals: Sendable, Equatable {
    public var records: Int64 = 0
    public var bytes: Int64 = 0
    public init(records: Int64 = 0, bytes: Int64 = 0) {
        self.records = records
        self.bytes = bytes
    }
}

/// The outbox table: every accepted record until it is delivered, dead-lettered or evicted.
///
/// Mutating methods must run inside the caller's write transaction (`Connection.transaction`)
/// so that the change, the running totals and its audit row commit together.
public final class OutboxStore {
    let db: Connection
    let audit: AuditLog

    public init(_ db: Connection) {
        self.db = db
        self.audit = AuditLog(db)
    }

    static let columns = "id, kind, class, target, child, event_time, enqueued_at, payload"

    // MARK: Totals

    /// Running totals per class (one small table, cheap enough for every commit).
    public func totals() throws -> [RecordClass: OutboxTotals] {
        let stmt = try db.cached("SELECT class, records, bytes FROM outbox_totals")
        var result: [RecordClass: OutboxTotals] = [:]
        while try stmt.step() {
            if let cls = RecordClass(rawValue: stmt.int(0)) {
                result[cls] = OutboxTotals(records: stmt.int64(1), bytes: stmt.int64(2))
            }
        }
        return result
    }

    /// The sum over all classes.
    public func total() throws -> OutboxTotals {
        try totals().values.reduce(into: OutboxTotals()) {
            $0.records += $1.records
            $0.bytes += $1.bytes
        }
    }

    func adjust(_ cls: RecordClass, records: Int64, bytes: Int64) throws {
        guard records != 0 || bytes != 0 else { return }
        let stmt = try db.cached("UPDATE outbox_totals SET records = records + ?, bytes = bytes + ? WHERE class = ?")
        try stmt.bind(records, at: 1)
        try stmt.bind(bytes, at: 2)
        try stmt.bind(cls.rawValue, at: 3)
        try stmt.run()
    }

    /// Recomputes the running totals from the table (after bulk moves such as a dead-letter retry).
    public func recountTotals() throws {
        try db.execute("""
            UPDATE outbox_totals SET
              records = (SELECT count(*) FROM outbox WHERE class = outbox_totals.class),
              bytes = (SELECT coalesce(sum(bytes), 0) FROM outbox WHERE class = outbox_totals.class)
            """)
    }

    // MARK: Admission

    /// Rows per INSERT statement, largest first: one statement for many rows costs SQLite
    /// half the CPU of one per row (the statement's setup and its AUTOINCREMENT bookkeeping
    /// run once per statement; 4.9 vs 2.0 us a row in one run of a C loop on this schema; the
    /// benchmarks' `RawInsert` floor uses 64 rows too).
    static let insertSizes = [64, 8, 1]
    static let insertSQL: [Int: String] = Dictionary(uniqueKeysWithValues: insertSizes.map { rows in
        (rows, "INSERT INTO outbox (kind, class, target, child, event_time, enqueued_at, payload, bytes) VALUES "
            + repeatElement("(?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", "))
    })

    /// Stores `batch` all or nothing, applying the capacity policy first. Returns the new ids
    /// in order. Throws `OutboxFullError` when there is no room (nothing changed).
    public func admit(_ batch: [NewRecord], policy: CapacityPolicy, now: Int64) throws -> [Int64] {
        try admit(batches: [batch], policy: policy, now: now)[0].get()
    }

    /// Stores several independent batches in the caller's transaction (group commit): each
    /// batch is admitted all or nothing, in order; one that does not fit gets
    /// `OutboxFullError` and the others go on. Totals are read once and written once.
    public func admit(batches: [[NewRecord]], policy: CapacityPolicy, now: Int64) throws -> [Result<[Int64], OutboxFullError>] {
        var current = try total()
        // What this group added, by class (indexed by raw value), written to the totals once.
        var added = [OutboxTotals](repeating: OutboxTotals(), count: RecordClass.allCases.count)
        func settleAdded() throws {
            for cls in RecordClass.allCases {
                try adjust(cls, records: added[cls.rawValue].records, bytes: added[cls.rawValue].bytes)
                added[cls.rawValue] = OutboxTotals()
            }
        }
        var results: [Result<[Int64], OutboxFullError>] = []
        results.reserveCapacity(batches.count)
        for batch in batches {
            var addBytes: Int64 = 0
            for record in batch { addBytes += Int64(record.payload.count) }
            let addRecords = Int64(batch.count)
            let overRecords = current.records + addRecords - policy.maxRecords
            let overBytes = current.bytes + addBytes - policy.maxBytes
            if overRecords > 0 || overBytes > 0 {
                let limit = overBytes > 0 ? "max_bytes" : "max_records"
                let full = OutboxFullError(policy: policy, records: current.records, bytes: current.bytes, limit: limit)
                guard policy.whenFull == .dropOldest, addRecords <= policy.maxRecords, addBytes <= policy.maxBytes else {
                    results.append(.failure(full))
                    continue
                }
                // Eviction reads and changes the totals table: settle what this group added first.
                try settleAdded()
                try db.execute("SAVEPOINT evict")
                let mostImportant = batch.map(\.recordClass).min() ?? .bulk
                guard try evict(records: max(overRecords, 0), bytes: max(overBytes, 0), down: mostImportant, reason: limit, now: now) else {
                    try db.execute("ROLLBACK TO evict")
                    try db.execute("RELEASE evict")
                    results.append(.failure(full))
                    continue
                }
                try db.execute("RELEASE evict")
                current = try total()
            }
            var ids: [Int64] = []
            ids.reserveCapacity(batch.count)
            var offset = 0
            while offset < batch.count {
                let rows = Self.insertSizes.first { $0 <= batch.count - offset }!
                let insert = try db.cached(Self.insertSQL[rows]!)
                for (slot, record) in batch[offset..<(offset + rows)].enumerated() {
                    let base = Int32(slot * 8)
                    try insert.bind(record.kind.rawValue, at: base + 1)
                    try insert.bind(record.recordClass.rawValue, at: base + 2)
                    try insert.bind(record.target, at: base + 3)
                    try insert.bind(record.child, at: base + 4)
                    try insert.bind(record.eventTime, at: base + 5)
                    try insert.bind(now, at: base + 6)
                    try insert.bind(blob: record.payload, at: base + 7)
                    try insert.bind(record.payload.count, at: base + 8)
                    added[record.recordClass.rawValue].records += 1
                    added[record.recordClass.rawValue].bytes += Int64(record.payload.count)
                }
                try insert.run()
                // One statement's rows get consecutive ids in order: this connection holds the
                // write lock, and AUTOINCREMENT fails (SQLITE_FULL) rather than reuse an id.
                let last = db.lastInsertRowID
                for k in 0..<rows { ids.append(last - Int64(rows - 1 - k)) }
                offset += rows
            }
            current.records += addRecords
            current.bytes += addBytes
            results.append(.success(ids))
        }
        try settleAdded()
        return results
    }

    /// Evicts oldest records, bulk first, never of a class more important than `down`, until
    /// `records` and `bytes` are freed. Writes one audit row per class touched. False when
    /// not enough could be freed (the caller rolls back).
    func evict(records: Int64, bytes: Int64, down mostImportant: RecordClass, reason: String, now: Int64) throws -> Bool {
        var needRecords = records
        var needBytes = bytes
        for cls in RecordClass.allCases.reversed() where cls >= mostImportant {
            guard needRecords > 0 || needBytes > 0 else { break }
            let select = try db.prepare("SELECT id, bytes FROM outbox WHERE class = ? AND id > ? ORDER BY id LIMIT 1000")
            var lastID: Int64 = 0
            var firstID: Int64? = nil
            var count: Int64 = 0
            var freedBytes: Int64 = 0
            scan: while needRecords > 0 || needBytes > 0 {
                select.reset()
                try select.bind(cls.rawValue, at: 1)
                try select.bind(lastID, at: 2)
                var any = false
                while try select.step() {
                    any = true
                    lastID = select.int64(0)
                    if firstID == nil { firstID = lastID }
                    count += 1
                    freedBytes += select.int64(1)
                    needRecords -= 1
                    needBytes -= select.int64(1)
                    if needRecords <= 0 && needBytes <= 0 { break scan }
                }
                if !any { break }
            }
            guard count > 0, let firstID else { continue }
            let delete = try db.prepare("DELETE FROM outbox WHERE class = ? AND id <= ?")
            try delete.bind(cls.rawValue, at: 1)
            try delete.bind(lastID, at: 2)
            try delete.run()
            try settleRemoval("evicted", cls, count: count, bytes: freedBytes, ids: firstID...lastID,
                              reason: "drop-oldest: outbox over \(reason)", now: now)
        }
        return needRecords <= 0 && needBytes <= 0
    }

    /// After a policy removed records of a class: updates the totals and audits the removal.
    private func settleRemoval(_ event: String, _ cls: RecordClass, count: Int64, bytes: Int64,
                               ids: ClosedRange<Int64>, reason: String, now: Int64) throws {
        try adjust(cls, records: -count, bytes: -bytes)
        var detail = JSONObject()
        detail.add("class", cls.name)
        detail.add("count", count)
        detail.add("bytes", bytes)
        detail.add("first_id", ids.lowerBound)
        detail.add("last_id", ids.upperBound)
        detail.add("reason", reason)
        try audit.append(event, detail, at: now)
    }

    /// Deletes records enqueued before `now - maxAge` and audits each class's expiry.
    /// Returns how many were expired.
    @discardableResult
    public func expire(maxAgeMilliseconds: Int64, now: Int64) throws -> Int64 {
        let cutoff = now - maxAgeMilliseconds
        let stmt = try db.prepare("SELECT class, count(*), sum(bytes), min(id), max(id) FROM outbox WHERE enqueued_at < ? GROUP BY class")
        try stmt.bind(cutoff, at: 1)
        var groups: [(RecordClass, Int64, Int64, Int64, Int64)] = []
        while try stmt.step() {
            if let cls = RecordClass(rawValue: stmt.int(0)) {
                groups.append((cls, stmt.int64(1), stmt.int64(2), stmt.int64(3), stmt.int64(4)))
            }
        }
        guard !groups.isEmpty else { return 0 }
        let delete = try db.prepare("DELETE FROM outbox WHERE enqueued_at < ?")
        try delete.bind(cutoff, at: 1)
        try delete.run()
        var total: Int64 = 0
        for (cls, count, bytes, first, last) in groups {
            try settleRemoval("expired", cls, count: count, bytes: bytes, ids: first...last,
                              reason: "max_age: enqueued before \(Timestamp.format(milliseconds: cutoff))", now: now)
            total += count
        }
        return total
    }

    // MARK: Reading

    /// Records of one class in id order, starting after `afterID`; only the given kinds when
    /// `kinds` is not nil (an uplink sends only its platform's kinds), and only those for
    /// `target` when it is not nil (an IoTDA uplink holds one device's credentials).
    public func records(of cls: RecordClass, afterID: Int64 = 0, limit: Int, kinds: [RecordKind]? = nil,
                        target: String? = nil) throws -> [StoredRecord] {
        var rows: [StoredRecord] = []
        try forEachRecord(of: cls, afterID: afterID, kinds: kinds, target: target) { record in
            guard rows.count < limit else { return false }
            rows.append(record)
            return true
        }
        return rows
    }

    /// The bound, cached statement behind `forEachRecord` and `forEachRow`: the records of one
    /// class after `afterID`, of `kinds` and for `target` if given, in id order. Reset it when done.
    private func scan(of cls: RecordClass, afterID: Int64, kinds: [RecordKind]?, target: String?) throws -> Statement {
        var filter = kinds.map { " AND kind IN (\($0.map { "'\($0.rawValue)'" }.joined(separator: ",")))" } ?? ""
        if target != nil { filter += " AND target = ?" }
        let stmt = try db.cached("SELECT \(Self.columns) FROM outbox WHERE class = ? AND id > ?\(filter) ORDER BY id")
        try stmt.bind(cls.rawValue, at: 1)
        try stmt.bind(afterID, at: 2)
        if let target { try stmt.bind(target, at: 3) }
        return stmt
    }

    /// Streams the records of one class in id order, starting after `afterID` (filters as in
    /// `records(of:afterID:limit:kinds:target:)`), handing each to `body` as it is read until
    /// `body` returns false or the rows run out. Nothing is buffered here: the caller decides
    /// how many rows to keep (the uplink packs them as they come and stops at a full window).
    /// A record refused by `body` (false) is not kept anywhere.
    public func forEachRecord(of cls: RecordClass, afterID: Int64 = 0, kinds: [RecordKind]? = nil, target: String? = nil,
                              _ body: (StoredRecord) throws -> Bool) throws {
        let stmt = try scan(of: cls, afterID: afterID, kinds: kinds, target: target)
        defer { stmt.reset() }
        while try stmt.step() {
            guard try body(Self.record(stmt)) else { return }
        }
    }

    /// `forEachRecord` without a `StoredRecord` per row: `body` sees each row in place (see
    /// `OutboxRow`), and copies what it keeps. For the uplink's packer, which writes payloads
    /// straight into request bodies.
    package func forEachRow(of cls: RecordClass, afterID: Int64 = 0, kinds: [RecordKind]? = nil, target: String? = nil,
                            _ body: (OutboxRow) throws -> Bool) throws {
        let stmt = try scan(of: cls, afterID: afterID, kinds: kinds, target: target)
        defer { stmt.reset() }
        // One device's backlog repeats its target on every row: keep one String while the
        // bytes are the same.
        var lastTarget = ""
        var lastTargetBytes: [UInt8] = []
        while try stmt.step() {
            let handle = stmt.handle
            let count = Int(sqlite3_column_bytes(handle, 3))
            if let text = sqlite3_column_text(handle, 3) {
                let same = lastTargetBytes.count == count
                    && (count == 0 || lastTargetBytes.withUnsafeBufferPointer { memcmp($0.baseAddress!, text, count) == 0 })
                if !same {
                    let bytes = UnsafeBufferPointer(start: text, count: count)
                    lastTargetBytes = Array(bytes)
                    lastTarget = String(decoding: bytes, as: UTF8.self)
                }
            } else {
                lastTarget = ""
                lastTargetBytes = []
            }
            let payloadCount = Int(sqlite3_column_bytes(handle, 7))
            let payload = UnsafeRawBufferPointer(start: payloadCount > 0 ? sqlite3_column_blob(handle, 7) : nil, count: payloadCount)
            let row = OutboxRow(id: stmt.int64(0), kind: Self.kind(stmt, 1), recordClass: RecordClass(rawValue: stmt.int(2)) ?? .normal,
                                target: lastTarget, child: stmt.optionalText(4), eventTime: stmt.int64(5),
                                enqueuedAt: stmt.int64(6), payload: payload)
            guard try body(row) else { return }
        }
    }

    /// Records in drain order (critical, normal, bulk; oldest first), at most `limit`.
    public func list(limit: Int) throws -> [StoredRecord] {
        var rows: [StoredRecord] = []
        for cls in RecordClass.allCases where rows.count < limit {
            rows += try records(of: cls, limit: limit - rows.count)
        }
        return rows
    }

    /// Whether a record is still in the outbox.
    public func contains(id: Int64) throws -> Bool {
        let stmt = try db.cached("SELECT 1 FROM outbox WHERE id = ?")
        try stmt.bind(id, at: 1)
        return try stmt.step()
    }

    static func record(_ stmt: Statement, offset: Int32 = 0) -> StoredRecord {
        StoredRecord(id: stmt.int64(offset), kind: kind(stmt, offset + 1),
                     recordClass: RecordClass(rawValue: stmt.int(offset + 2)) ?? .normal,
                     target: stmt.text(offset + 3), child: stmt.optionalText(offset + 4),
                     eventTime: stmt.int64(offset + 5), enqueuedAt: stmt.int64(offset + 6), payload: stmt.blob(offset + 7))
    }

    /// The kind column, told apart by length and first byte (the schema's CHECK allows only
    /// the five names) without making a String per row: the drain reads every row once.
    static func kind(_ stmt: Statement, _ column: Int32) -> RecordKind {
        guard let text = sqlite3_column_text(stmt.handle, column) else { return .property }
        switch (sqlite3_column_bytes(stmt.handle, column), text[0]) {
        case (8, UInt8(ascii: "p")): return .property
        case (7, UInt8(ascii: "m")): return .message
        case (11, UInt8(ascii: "m")): return .measurement
        case (14, UInt8(ascii: "c")): return .childProperty
        case (16, UInt8(ascii: "o")): return .operationStatus
        default: return RecordKind(rawValue: stmt.text(column)) ?? .property
        }
    }

    // MARK: Removal

    /// Deletes the given records (delivered or moved elsewhere) and updates the totals. Ids no
    /// longer present are skipped. Returns how many were deleted.
    @discardableResult
    public func remove(ids: [Int64]) throws -> Int {
        let delete = try db.cached("DELETE FROM outbox WHERE id = ? RETURNING class, bytes")
        var perClass: [RecordClass: OutboxTotals] = [:]
        var removed = 0
        for id in ids {
            delete.reset()
            try delete.bind(id, at: 1)
            if try delete.step(), let cls = RecordClass(rawValue: delete.int(0)) {
                perClass[cls, default: OutboxTotals()].records += 1
                perClass[cls, default: OutboxTotals()].bytes += delete.int64(1)
                removed += 1
            }
            while try delete.step() {}
        }
        for (cls, gone) in perClass { try adjust(cls, records: -gone.records, bytes: -gone.bytes) }
        return removed
    }

    /// Deletes delivered records, which the caller read from the outbox and still holds: one
    /// `DELETE … WHERE id BETWEEN ? AND ?` per run of consecutive ids, so a request of
    /// thousands of records costs a few statements, not one per record. A range holds only ids
    /// of `records` (every integer in it is one of them), so nothing else can be caught.
    ///
    /// The totals are adjusted from the records' own classes and sizes (`bytes` is
    /// `payload.count`, as `admit` stores it). If a range deleted fewer rows than it spans (a
    /// record evicted or expired by another process while it was in flight), the totals are
    /// recounted from the table instead, so they stay exact. Returns how many were deleted.
    @discardableResult
    public func removeDelivered(_ records: [StoredRecord]) throws -> Int {
        try removeDelivered(records.map { DeliveredRecord(id: $0.id, recordClass: $0.recordClass, bytes: $0.payload.count) })
    }

    /// `removeDelivered(_:)` for a caller that holds the records' ids, classes and payload
    /// sizes but not their payloads (a built request keeps only its body).
    @discardableResult
    public func removeDelivered(_ records: [DeliveredRecord]) throws -> Int {
        guard !records.isEmpty else { return 0 }
        // Indexed by class raw value (0...2): no hashing per record.
        var perClass = [OutboxTotals](repeating: OutboxTotals(), count: RecordClass.allCases.count)
        var ids: [Int64] = []
        ids.reserveCapacity(records.count)
        for record in records {
            ids.append(record.id)
            perClass[record.recordClass.rawValue].records += 1
            perClass[record.recordClass.rawValue].bytes += Int64(record.bytes)
        }
        ids.sort()
        let delete = try db.cached("DELETE FROM outbox WHERE id BETWEEN ? AND ?")
        var removed = 0
        var expected = 0
        var start = 0
        while start < ids.count {
            var end = start
            while end + 1 < ids.count && ids[end + 1] <= ids[end] + 1 { end += 1 }  // duplicates stay in the run
            delete.reset()
            try delete.bind(ids[start], at: 1)
            try delete.bind(ids[end], at: 2)
            try delete.run()
            removed += db.changes
            expected += Int(ids[end] - ids[start]) + 1
            start = end + 1
        }
        if removed == expected && removed == records.count {
            for cls in RecordClass.allCases {
                try adjust(cls, records: -perClass[cls.rawValue].records, bytes: -perClass[cls.rawValue].bytes)
            }
        } else {
            try recountTotals()
        }
        return removed
    }

    // MARK: Status

    /// One line of the outbox breakdown.
    public struct Breakdown: Sendable {
        public let kind: RecordKind
        public let recordClass: RecordClass
        public let records: Int64
        public let bytes: Int64
        public let oldestEnqueuedAt: Int64
    }

    /// Counts and bytes per kind and class, computed from the table itself.
    public func breakdown() throws -> [Breakdown] {
        let stmt = try db.prepare("SELECT kind, class, count(*), sum(bytes), min(enqueued_at) FROM outbox GROUP BY kind, class ORDER BY class, kind")
        var rows: [Breakdown] = []
        while try stmt.step() {
            guard let kind = RecordKind(rawValue: stmt.text(0)), let cls = RecordClass(rawValue: stmt.int(1)) else { continue }
            rows.append(Breakdown(kind: kind, recordClass: cls, records: stmt.int64(2), bytes: stmt.int64(3), oldestEnqueuedAt: stmt.int64(4)))
        }
        return rows
    }
}
