import Crypto

/// One audit row.
public struct AuditEntry: Sendable, Equatable {
    public let seq: Int64
    /// ms since the epoch, UTC.
    public let at: Int64
    public let event: String
    /// A JSON object.
    public let detail: String
    public let hash: [UInt8]

    /// The hash as lowercase hex.
    public var hashHex: String { AuditLog.hex(hash) }
}

/// The result of checking the audit chain.
public struct AuditVerification: Sendable {
    /// Rows checked.
    public let rows: Int
    /// The last row, if any.
    public let head: AuditEntry?
    /// The first problem found, with the row it was found at; nil when the chain is intact.
    public let problem: String?
    public var isIntact: Bool { problem == nil }
}

/// How long the audit keeps rows: `[audit] max_rows` (default 250,000, some 300-400 bytes
/// each) and `max_age` (default none). The oldest rows beyond either go, with an
/// `audit_purged` row that keeps the chain verifiable.
public struct AuditRetention: Sendable, Equatable {
    public static let defaultMaxRows: Int64 = 250_000
    public var maxRows: Int64? = AuditRetention.defaultMaxRows
    public var maxAgeMilliseconds: Int64? = nil

    public init(maxRows: Int64? = AuditRetention.defaultMaxRows, maxAgeMilliseconds: Int64? = nil) {
        self.maxRows = maxRows
        self.maxAgeMilliseconds = maxAgeMilliseconds
    }
}

/// The append-only, hash-chained audit table. Appends must run inside the caller's write
/// transaction, so the row commits (or rolls back) with the change it describes.
public final class AuditLog {
    let db: Connection

    public init(_ db: Connection) { self.db = db }

    /// The genesis hash the first row chains from.
    static let genesis = [UInt8](repeating: 0, count: 32)

    /// Appends a row. Call inside a write transaction.
    @discardableResult
    public func append(_ event: String, _ detail: JSONObject, at: Int64 = Timestamp.nowMilliseconds()) throws -> AuditEntry {
        precondition(db.inTransaction, "audit rows are appended inside the transaction of the change they describe")
        let last = try db.cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        var seq: Int64 = 1
        var previous = Self.genesis
        if try last.step() {
            seq = last.int64(0) + 1
            previous = last.blob(1)
        }
        last.reset()
        let json = detail.json
        let hash = Self.hash(previous: previous, seq: seq, at: at, event: event, detail: json)
        let insert = try db.cached("INSERT INTO audit (seq, at, event, detail, hash) VALUES (?, ?, ?, ?, ?)")
        try insert.bind(seq, at: 1)
        try insert.bind(at, at: 2)
        try insert.bind(event, at: 3)
        try insert.bind(json, at: 4)
        try insert.bind(blob: hash, at: 5)
        try insert.run()
        return AuditEntry(seq: seq, at: at, event: event, detail: json, hash: hash)
    }

    /// SHA-256(previous || seq || at || event || 0 || detail), integers big-endian.
    static func hash(previous: [UInt8], seq: Int64, at: Int64, event: String, detail: String) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        withUnsafeBytes(of: seq.bigEndian) { hasher.update(bufferPointer: $0) }
        withUnsafeBytes(of: at.bigEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(data: Array(event.utf8) + [0])
        hasher.update(data: Array(detail.utf8))
        return Array(hasher.finalize())
    }

    /// The newest row.
    public func head() throws -> AuditEntry? {
        let stmt = try db.prepare("SELECT seq, at, event, detail, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return try stmt.step() ? Self.entry(stmt) : nil
    }

    /// Rows with `seq > afterSeq` and `at >= since`, oldest first, at most `limit`.
    public func list(since: Int64? = nil, afterSeq: Int64 = 0, limit: Int = 1000) throws -> [AuditEntry] {
        let stmt = try db.prepare("SELECT seq, at, event, detail, hash FROM audit WHERE seq > ? AND at >= ? ORDER BY seq LIMIT ?")
        try stmt.bind(afterSeq, at: 1)
        try stmt.bind(since ?? Int64.min, at: 2)
        try stmt.bind(limit, at: 3)
        var rows: [AuditEntry] = []
        while try stmt.step() { rows.append(Self.entry(stmt)) }
        return rows
    }

    /// Recomputes the chain over every row. A changed row breaks its own hash; a deleted or
    /// reordered row breaks the link (or the sequence) of the row after it. Removing rows
    /// from the end is only visible against a head recorded elsewhere (`status` shows it).
    /// After a retention purge the chain starts at the anchor (the last removed row's seq and
    /// hash), which a chained `audit_purged` row must name.
    public func verify() throws -> AuditVerification {
        let stmt = try db.prepare("SELECT seq, at, event, detail, hash FROM audit ORDER BY seq")
        let anchor = try self.anchor()
        var previous = anchor?.hash ?? Self.genesis
        var expectedSeq: Int64 = (anchor?.seq ?? 0) + 1
        var count = 0
        var head: AuditEntry?
        var anchorVouched = anchor == nil
        let anchorMark = anchor.map { #""through_seq":\#($0.seq),"through_hash":"\#(Self.hex($0.hash))""# }
        while try stmt.step() {
            let entry = Self.entry(stmt)
            count += 1
            if let anchorMark, entry.event == Self.purgedEvent, entry.detail.contains(anchorMark) { anchorVouched = true }
            if entry.seq != expectedSeq {
                let problem = entry.seq > expectedSeq
                    ? "rows \(expectedSeq)...\(entry.seq - 1) are missing (deleted) before row \(entry.seq)"
                    : "row \(entry.seq) is out of order after row \(expectedSeq - 1)"
                return AuditVerification(rows: count, head: head, problem: problem)
            }
            let expected = Self.hash(previous: previous, seq: entry.seq, at: entry.at, event: entry.event, detail: entry.detail)
            if expected != entry.hash {
                return AuditVerification(rows: count, head: head,
                                         problem: "row \(entry.seq) does not match its hash: it was changed, or a row before it was replaced or reordered")
            }
            previous = entry.hash
            expectedSeq += 1
            head = entry
        }
        if !anchorVouched, let anchor {
            return AuditVerification(rows: count, head: head,
                                     problem: "the audit starts after row \(anchor.seq), but no audit_purged row in the chain records removing the rows up to it: the anchor was changed")
        }
        return AuditVerification(rows: count, head: head, problem: nil)
    }

    // MARK: Retention

    static let purgedEvent = "audit_purged"

    /// The last removed row (seq and hash), if rows were ever removed.
    public func anchor() throws -> (seq: Int64, hash: [UInt8])? {
        let stmt = try db.cached("SELECT seq, hash FROM audit_anchor WHERE id = 1")
        defer { stmt.reset() }
        return try stmt.step() ? (stmt.int64(0), stmt.blob(1)) : nil
    }

    /// Removes the oldest rows the retention no longer keeps (beyond `maxRows`, or older than
    /// `maxAgeMilliseconds`), at most `batch` of them per call, and appends one `audit_purged`
    /// row naming what went and the new anchor. Call inside a write transaction. Returns the
    /// number of rows removed.
    @discardableResult
    public func purge(_ retention: AuditRetention, now: Int64, batch: Int64 = 50_000) throws -> Int64 {
        precondition(db.inTransaction, "a purge commits with its audit row")
        let bounds = try db.prepare("SELECT min(seq), max(seq) FROM audit")
        guard try bounds.step(), let first = bounds.optionalInt64(0), let last = bounds.optionalInt64(1) else { return 0 }
        var through: Int64 = 0
        var reasons: [String] = []
        if let maxRows = retention.maxRows, last - first + 1 > maxRows {
            // Keep maxRows - 1 so that with the purge row the table holds maxRows.
            through = last - maxRows + 1
            reasons.append("max_rows")
        }
        if let maxAge = retention.maxAgeMilliseconds {
            let stmt = try db.prepare("SELECT max(seq) FROM audit WHERE at < ?")
            try stmt.bind(now - maxAge, at: 1)
            if try stmt.step(), let seq = stmt.optionalInt64(0), seq >= first {
                if seq > through { through = seq }
                reasons.append("max_age")
            }
        }
        through = min(through, first + batch - 1)
        guard through >= first else { return 0 }
        let row = try db.prepare("SELECT hash FROM audit WHERE seq = ?")
        try row.bind(through, at: 1)
        guard try row.step() else { return 0 }
        let hash = row.blob(0)
        let anchor = try db.prepare("INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
        try anchor.bind(through, at: 1)
        try anchor.bind(blob: hash, at: 2)
        try anchor.run()
        let delete = try db.prepare("DELETE FROM audit WHERE seq <= ?")
        try delete.bind(through, at: 1)
        try delete.run()
        let removed = through - first + 1
        var detail = JSONObject()
        detail.add("rows", removed)
        detail.add("first_seq", first)
        detail.add("through_seq", through)
        detail.add("through_hash", Self.hex(hash))
        detail.add("policy", reasons)
        if let maxRows = retention.maxRows { detail.add("max_rows", maxRows) }
        if let maxAge = retention.maxAgeMilliseconds { detail.add("max_age_ms", maxAge) }
        try append(Self.purgedEvent, detail, at: now)
        return removed
    }

    static func entry(_ stmt: Statement) -> AuditEntry {
        AuditEntry(seq: stmt.int64(0), at: stmt.int64(1), event: stmt.text(2), detail: stmt.text(3), hash: stmt.blob(4))
    }

    static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }
}
