import CSQLite
import Foundation

/// How hard SQLite syncs a commit to disk.
public enum SynchronousMode: String, Sendable, CaseIterable {
    /// Every commit is fsync-ed before it returns: an acknowledged record survives power loss.
    case full
    /// WAL commits are synced at checkpoints only: an acknowledged record survives a crash of
    /// edgebuf, but the last commits before a power loss or kernel crash may be lost.
    case normal
}

/// Options for opening the database.
public struct DatabaseOptions: Sendable {
    /// `PRAGMA synchronous`.
    public var synchronous: SynchronousMode = .full
    /// How long to wait for another process's write lock.
    public var busyTimeoutMilliseconds: Int32 = 10_000
    /// Run `PRAGMA quick_check` when opening (a damaged file is refused, never rebuilt).
    public var checkOnOpen: Bool = true
    /// Upper bound on the file's pages (`PRAGMA max_page_count`); nil for SQLite's default.
    public var maxPageCount: Int? = nil

    public init() {}
}

/// Opens edgebuf database files: creates them 0600, checks they are ours and intact, sets the
/// pragmas and brings the schema up to date.
public enum Database {
    /// `PRAGMA application_id` of every edgebuf file ("EBUF").
    public static let applicationID: Int32 = 0x4542_5546

    /// The newest schema version this build knows.
    public static var latestSchemaVersion: Int { embeddedMigrations.last?.version ?? 0 }

    /// Opens (creating if needed) and migrates the database at `path`.
    public static func open(path: String, options: DatabaseOptions = DatabaseOptions()) throws -> Connection {
        try createIfMissing(path: path)
        let connection = try Connection(path: path)
        connection.setBusyTimeout(milliseconds: options.busyTimeoutMilliseconds)
        try checkOwnership(connection)
        if options.checkOnOpen { try quickCheck(connection) }
        try connection.execute("PRAGMA journal_mode = WAL")
        try configure(connection, options: options)
        try Migrator.migrate(connection)
        return connection
    }

    /// Opens another connection to a file that `open` has already prepared (no checks, no
    /// migrations): for a second thread of the same process.
    public static func openPrepared(path: String, options: DatabaseOptions = DatabaseOptions()) throws -> Connection {
        let connection = try Connection(path: path)
        connection.setBusyTimeout(milliseconds: options.busyTimeoutMilliseconds)
        try configure(connection, options: options)
        return connection
    }

    static func configure(_ connection: Connection, options: DatabaseOptions) throws {
        try connection.execute("PRAGMA synchronous = \(options.synchronous == .full ? "FULL" : "NORMAL")")
        try connection.execute("PRAGMA foreign_keys = ON")
        if let pages = options.maxPageCount {
            try connection.execute("PRAGMA max_page_count = \(pages)")
        }
    }

    /// Creates the file (and its directory) with owner-only permissions before SQLite sees it,
    /// so the database, its -wal and its -shm file (which copy the main file's mode) are 0600.
    static func createIfMissing(path: String) throws {
        let manager = FileManager.default
        if manager.fileExists(atPath: path) { return }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty && !manager.fileExists(atPath: directory) {
            do {
                try manager.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o700])
            } catch {
                throw DatabaseError.cannotCreate(path: path, reason: "its directory cannot be created (\(error.localizedDescription))")
            }
        }
        let fd = Foundation.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            if errno == EEXIST { return }
            throw DatabaseError.cannotCreate(path: path, reason: String(cString: strerror(errno)))
        }
        fchmod(fd, 0o600)  // in case the umask took bits away we want, or left ones we don't
        close(fd)
    }

    static func checkOwnership(_ connection: Connection) throws {
        // The first read of a file that is not SQLite fails here with SQLITE_NOTADB.
        let applicationID = Int32(truncatingIfNeeded: try connection.scalarInt("PRAGMA application_id"))
        if applicationID == Database.applicationID {
            let version = Int(try connection.scalarInt("PRAGMA user_version"))
            if version > latestSchemaVersion {
                throw DatabaseError.newerSchema(path: connection.path, found: version, known: latestSchemaVersion)
            }
            return
        }
        let objects = try connection.scalarInt("SELECT count(*) FROM sqlite_schema")
        if applicationID != 0 || objects > 0 {
            throw DatabaseError.notOurs(path: connection.path, applicationID: applicationID)
        }
        // An empty SQLite file: ours to initialise.
    }

    static func quickCheck(_ connection: Connection) throws {
        let stmt = try connection.prepare("PRAGMA quick_check")
        var lines: [String] = []
        do {
            while try stmt.step() { lines.append(stmt.text(0)) }
        } catch let error as DatabaseError where error.isCorrupt {
            throw DatabaseError.damaged(path: connection.path, report: error.message)
        }
        if lines != ["ok"] {
            throw DatabaseError.damaged(path: connection.path, report: lines.prefix(3).joined(separator: "; "))
        }
    }
}
