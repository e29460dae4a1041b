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
    public func verify() throws -> AuditVerification {
        let stmt = try db.prepare("SELECT seq, at, event, detail, hash FROM audit ORDER BY seq")
        var previous = Self.genesis
        var expectedSeq: Int64 = 1
        var count = 0
        var head: AuditEntry?
        while try stmt.step() {
            let entry = Self.entry(stmt)
            count += 1
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
        return AuditVerification(rows: count, head: head, problem: nil)
    }

    static func entry(_ stmt: Statement) -> AuditEntry {
        AuditEntry(seq: stmt.int64(0), at: stmt.int64(1), event: stmt.text(2), detail: stmt.text(3), hash: stmt.blob(4))
    }

    static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }
}
