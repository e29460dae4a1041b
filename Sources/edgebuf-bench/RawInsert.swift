import CSQLite
import EdgeStore

/// The floor for storing rows: the C API on edgebuf's schema and pragmas, one transaction per
/// group with the totals row updated in it, and `rowsPerStatement` rows bound to each
/// multi-row INSERT (the fastest way we know to give SQLite these rows: one row per statement
/// costs it about twice the CPU, see `OutboxStore.insertSizes`).
struct RawInsert {
    static let rowsPerStatement = 64
    let db: OpaquePointer
    private var statements: [Int: OpaquePointer] = [:]
    private var totals: OpaquePointer?

    init(db: OpaquePointer) { self.db = db }

    mutating func finalize() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements = [:]
        sqlite3_finalize(totals)
        totals = nil
    }

    private mutating func statement(rows: Int) throws -> OpaquePointer {
        if let statement = statements[rows] { return statement }
        let sql = "INSERT INTO outbox (kind, class, target, child, event_time, enqueued_at, payload, bytes) VALUES "
            + repeatElement("(?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
        statements[rows] = statement
        return statement
    }

    /// Inserts `rows` in one transaction with the totals update.
    mutating func commit(_ rows: ArraySlice<NewRecord>) throws {
        guard sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
        var bytes: Int64 = 0
        var index = rows.startIndex
        while index < rows.endIndex {
            let count = min(Self.rowsPerStatement, rows.endIndex - index)
            let insert = try statement(rows: count)
            for (slot, row) in rows[index..<(index + count)].enumerated() {
                let base = Int32(slot * 8)
                sqlite3_bind_text(insert, base + 1, row.kind.rawValue, -1, csqlite_transient())
                sqlite3_bind_int64(insert, base + 2, Int64(row.recordClass.rawValue))
                sqlite3_bind_text(insert, base + 3, row.target, -1, csqlite_transient())
                sqlite3_bind_null(insert, base + 4)
                sqlite3_bind_int64(insert, base + 5, row.eventTime)
                sqlite3_bind_int64(insert, base + 6, row.eventTime)
                row.payload.withUnsafeBytes { _ = sqlite3_bind_blob(insert, base + 7, $0.baseAddress, Int32($0.count), csqlite_transient()) }
                sqlite3_bind_int64(insert, base + 8, Int64(row.payload.count))
                bytes += Int64(row.payload.count)
            }
            guard sqlite3_step(insert) == SQLITE_DONE else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
            sqlite3_reset(insert)
            index += count
        }
        if totals == nil {
            sqlite3_prepare_v2(db, "UPDATE outbox_totals SET records = records + ?, bytes = bytes + ? WHERE class = ?", -1, &totals, nil)
        }
        sqlite3_bind_int64(totals, 1, Int64(rows.count))
        sqlite3_bind_int64(totals, 2, bytes)
        sqlite3_bind_int64(totals, 3, Int64(RecordClass.normal.rawValue))
        guard sqlite3_step(totals) == SQLITE_DONE else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
        sqlite3_reset(totals)
        guard sqlite3_exec(db, "COMMIT", nil, nil, nil) == SQLITE_OK else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
    }
}
