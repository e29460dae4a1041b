import CSQLite

/// A prepared statement. Belongs to its connection's thread.
public final class Statement {
    let handle: OpaquePointer
    unowned let connection: Connection
    /// The statement's SQL, for errors.
    public let sql: String

    init(handle: OpaquePointer, connection: Connection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Clears bindings and rewinds, ready for the next execution.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Binding (1-based indexes, as in SQLite)

    public func bind(_ value: Int64, at index: Int32) throws {
        try ok(sqlite3_bind_int64(handle, index, value))
    }

    /// Throws for a result other than SQLITE_OK. The connection (an unowned reference, which
    /// costs a retain and a release) is reached only on failure: binds run per column per row.
    @inline(__always) private func ok(_ rc: Int32) throws {
        if rc != SQLITE_OK { try fail(rc) }
    }

    private func fail(_ rc: Int32) throws {
        try connection.check(rc, sql: sql)
    }

    public func bind(_ value: Int, at index: Int32) throws {
        try bind(Int64(value), at: index)
    }

    public func bind(_ value: String?, at index: Int32) throws {
        guard var text = value else { return try bindNull(at: index) }
        let rc = text.withUTF8 { utf8 -> Int32 in
            guard let base = utf8.baseAddress else {
                return sqlite3_bind_text(handle, index, "", 0, csqlite_transient())
            }
            return UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                sqlite3_bind_text(handle, index, $0, Int32(utf8.count), csqlite_transient())
            }
        }
        try ok(rc)
    }

    public func bind(blob value: [UInt8], at index: Int32) throws {
        let rc = value.withUnsafeBytes { raw in
            // A zero-length blob needs a non-null pointer, or SQLite stores NULL.
            sqlite3_bind_blob(handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(raw.count), csqlite_transient())
        }
        try ok(rc)
    }

    public func bindNull(at index: Int32) throws {
        try ok(sqlite3_bind_null(handle, index))
    }

    // MARK: Stepping

    /// Advances to the next row; false when done.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        sqlite3_reset(handle)
        try connection.check(rc, sql: sql)
        return false
    }

    /// Steps to completion (for statements without rows).
    public func run() throws {
        while try step() {}
    }

    // MARK: Columns (0-based indexes, as in SQLite)

    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    public func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    public func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    public func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    public func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

    public func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
