import CSQLite
import Foundation

/// One SQLite connection. Not Sendable: it belongs to one thread (or one actor) at a time.
///
/// Every SQLite call goes through `check(_:sql:)`, which turns a non-OK result code into a
/// `DatabaseError` carrying the extended code and the SQL.
public final class Connection {
    let handle: OpaquePointer
    /// The file this connection has open.
    public let path: String
    private var cache: [String: Statement] = [:]

    /// Opens an existing file (or creates one with `create`) read-write, with extended result codes.
    public init(path: String, create: Bool = false, readOnly: Bool = false) throws {
        _ = Connection.configureOnce
        var db: OpaquePointer?
        // NOMUTEX: a connection is confined to one thread (it is not Sendable), so SQLite's
        // per-connection mutex would only cost time.
        var flags = SQLITE_OPEN_NOMUTEX
        flags |= readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if create { flags |= SQLITE_OPEN_CREATE }
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard let db else {
            throw DatabaseError(resultCode: rc, message: "out of memory", sql: nil, path: path)
        }
        guard rc == SQLITE_OK else {
            let message = String(cString: sqlite3_errmsg(db))
            sqlite3_close_v2(db)
            throw DatabaseError(resultCode: rc, message: message, sql: nil, path: path)
        }
        sqlite3_extended_result_codes(db, 1)
        self.handle = db
        self.path = path
    }

    /// Process-wide SQLite settings, applied before the first connection opens.
    private static let configureOnce: Void = { _ = csqlite_disable_memstatus() }()

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Throws a `DatabaseError` for any result other than OK, ROW and DONE.
    @discardableResult
    func check(_ rc: Int32, sql: String? = nil) throws -> Int32 {
        switch rc {
        case SQLITE_OK, SQLITE_ROW, SQLITE_DONE:
            return rc
        default:
            let extended = sqlite3_extended_errcode(handle)
            let code = (extended & 0xff) == (rc & 0xff) ? extended : rc
            throw DatabaseError(resultCode: code, message: String(cString: sqlite3_errmsg(handle)),
                                sql: sql, path: path)
        }
    }

    /// Runs one or more statements without results.
    public func execute(_ sql: String) throws {
        try check(sqlite3_exec(handle, sql, nil, nil, nil), sql: sql)
    }

    /// A new prepared statement, owned by the caller.
    public func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        try check(sqlite3_prepare_v2(handle, sql, -1, &stmt, nil), sql: sql)
        guard let stmt else {
            throw DatabaseError(resultCode: SQLITE_MISUSE, message: "empty statement", sql: sql, path: path)
        }
        return Statement(handle: stmt, connection: self, sql: sql)
    }

    /// A prepared statement kept for the life of the connection, reset and unbound.
    public func cached(_ sql: String) throws -> Statement {
        if let stmt = cache[sql] {
            stmt.reset()
            return stmt
        }
        let stmt = try prepare(sql)
        cache[sql] = stmt
        return stmt
    }

    /// The rowid of the last insert on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// True while a transaction is open on this connection.
    public var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Sets how long a statement waits for another connection's lock before failing with BUSY.
    /// It retries after 50 us, doubling to 1 ms (SQLite's own handler sleeps up to 100 ms
    /// between tries: see `csqlite_set_busy_timeout`).
    public func setBusyTimeout(milliseconds: Int32) {
        csqlite_set_busy_timeout(handle, milliseconds)
    }

    /// Runs `body` in a transaction (IMMEDIATE: takes the write lock up front, so two writers
    /// wait on the busy timeout instead of failing on upgrade). Rolls back on any error.
    public func transaction<T>(immediate: Bool = true, _ body: () throws -> T) throws -> T {
        try execute(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if inTransaction { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// The first column of the first row, as an integer (0 when there is no row).
    public func scalarInt(_ sql: String) throws -> Int64 {
        let stmt = try prepare(sql)
        return try stmt.step() ? stmt.int64(0) : 0
    }

    /// The first column of the first row, as text.
    public func scalarText(_ sql: String) throws -> String? {
        let stmt = try prepare(sql)
        return try stmt.step() ? stmt.text(0) : nil
    }
}
