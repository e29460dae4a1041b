import CSQLite

/// A failure reported by SQLite, or by edgebuf about a database file.
///
/// Keeps SQLite's extended result code and the SQL text, never bound values (they may hold
/// user data or secrets). `description` says what happened, why and what to do.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable, Equatable {
        case sqlite(Int32)
        case notOurs
        case newerSchema(found: Int, known: Int)
        case damaged
        case cannotCreate
    }

    private let code: Code
    /// The database file, when known.
    public let path: String?
    /// SQLite's own message (`sqlite3_errmsg`) or edgebuf's explanation.
    public let message: String
    /// The statement that failed, without its bound values.
    public let sql: String?

    /// SQLite's extended result code, or nil for errors edgebuf raises itself.
    public var extendedResultCode: Int32? {
        if case .sqlite(let rc) = code { return rc }
        return nil
    }

    /// The primary result code (the low byte of the extended one).
    public var resultCode: Int32? { extendedResultCode.map { $0 & 0xff } }

    /// The disk (or the configured page limit) is full. Nothing of the failed transaction was written.
    public var isDiskFull: Bool { resultCode == SQLITE_FULL }
    /// Another connection held a lock for longer than the busy timeout.
    public var isBusy: Bool { resultCode == SQLITE_BUSY || resultCode == SQLITE_LOCKED }
    /// The file is damaged or not a database at all.
    public var isCorrupt: Bool {
        code == .damaged || resultCode == SQLITE_CORRUPT || resultCode == SQLITE_NOTADB
    }
    /// The file cannot be written (permissions, read-only file system).
    public var isReadOnly: Bool { resultCode == SQLITE_READONLY || resultCode == SQLITE_CANTOPEN }
    /// The file belongs to a newer edgebuf.
    public var isNewerSchema: Bool { if case .newerSchema = code { return true }; return false }
    /// The file is a SQLite database of some other program.
    public var isForeign: Bool { code == .notOurs }

    /// A short, payload-free name for logs and metrics.
    public var label: String {
        switch code {
        case .sqlite(let rc): return "sqlite_\(rc)"
        case .notOurs: return "not_edgebuf"
        case .newerSchema: return "newer_schema"
        case .damaged: return "damaged"
        case .cannotCreate: return "cannot_create"
        }
    }

    init(resultCode: Int32, message: String, sql: String?, path: String?) {
        self.code = .sqlite(resultCode)
        self.message = message
        self.sql = sql
        self.path = path
    }

    private init(code: Code, path: String, message: String) {
        self.code = code
        self.path = path
        self.message = message
        self.sql = nil
    }

    static func notOurs(path: String, applicationID: Int32) -> DatabaseError {
        DatabaseError(code: .notOurs, path: path, message:
            "\(path) is a SQLite database of another program (application_id \(applicationID)), not an edgebuf database; it was not changed. Pass --db with another path.")
    }

    static func newerSchema(path: String, found: Int, known: Int) -> DatabaseError {
        DatabaseError(code: .newerSchema(found: found, known: known), path: path, message:
            "\(path) has schema version \(found), but this edgebuf knows versions up to \(known); it was not changed. Use a newer edgebuf with this file.")
    }

    static func damaged(path: String, report: String) -> DatabaseError {
        DatabaseError(code: .damaged, path: path, message:
            "\(path) is damaged (integrity check: \(report)). edgebuf deletes nothing on its own: stop every edgebuf process, copy the file (with its -wal and -shm files) aside, then recover what SQLite can read with `sqlite3 \(path) .recover | sqlite3 NEW.db` and point --db at NEW.db.")
    }

    static func cannotCreate(path: String, reason: String) -> DatabaseError {
        DatabaseError(code: .cannotCreate, path: path, message: "cannot create \(path): \(reason)")
    }

    public var description: String {
        switch code {
        case .sqlite(let rc):
            let place = path.map { " (\($0))" } ?? ""
            var text: String
            switch rc & 0xff {
            case SQLITE_FULL:
                text = "the disk holding the database\(place) is full or the database reached its size limit; the transaction was rolled back and nothing of it was stored. Free space on that disk (or raise database.max_file_bytes, if the file has a limit) and try again"
            case SQLITE_BUSY, SQLITE_LOCKED:
                text = "the database\(place) stayed locked by another process for longer than the busy timeout; nothing was changed. Try again, or raise database.busy_timeout"
            case SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM:
                text = "the database\(place) cannot be opened or written (\(message)); check the file's and its directory's permissions and free space"
            case SQLITE_CORRUPT, SQLITE_NOTADB:
                text = "the database\(place) is damaged or not a database (\(message)). edgebuf deletes nothing on its own: copy the file aside and recover it with `sqlite3 FILE .recover`"
            case SQLITE_IOERR:
                text = "an I/O error hit the database\(place) (\(message)); the transaction was rolled back. Check the storage device"
            default:
                text = "database error\(place): \(message)"
            }
            text += " [SQLite \(rc)]"
            if let sql { text += " in: \(sql.prefix(200))" }
            return text
        default:
            return message
        }
    }
}
