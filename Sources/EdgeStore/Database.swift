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
public struct DatabaseOptions: Sendable, Equatable {
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
        // Decide on a read-only connection whether the file may be used. Closing the last
        // read-write connection checkpoints the -wal into the main file, so refusing a file
        // through one could still write to it: a -wal left next to a file that replaced the
        // database would be copied into that file as the refusal closes.
        //
        // A file with tables but no edgebuf mark may be one another edgebuf process is creating
        // this moment (two processes opening a new path at once: one read-only probe in about 60
        // saw it so, tools/fleet and CLITests): look again for up to half a second before
        // refusing it as another program's.
        var looks = 0
        while true {
            let probe = try Connection(path: path, readOnly: true)
            probe.setBusyTimeout(milliseconds: options.busyTimeoutMilliseconds)
            do {
                try checkOwnership(probe)
            } catch is UnmarkedTables where looks < 20 {
                looks += 1
                usleep(25_000)
                continue
            } catch is UnmarkedTables {
                throw DatabaseError.notOurs(path: path, applicationID: 0)
            }
            if options.checkOnOpen { try quickCheck(probe) }
            break
        }
        let connection = try Connection(path: path)
        connection.setBusyTimeout(milliseconds: options.busyTimeoutMilliseconds)
        try enableWAL(connection)
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

    /// WAL mode, set once when the file is new. Switching needs a lock SQLite does not wait
    /// for with the busy timeout: while another process that opened the new file at the same
    /// moment holds it, the switch answers SQLITE_BUSY at once (CLITests), so it is retried for
    /// a few seconds; a file already in WAL mode is left alone.
    static func enableWAL(_ connection: Connection) throws {
        var tries = 0
        while true {
            do {
                if try connection.scalarText("PRAGMA journal_mode")?.lowercased() == "wal" { return }
                try connection.execute("PRAGMA journal_mode = WAL")
                return
            } catch let error as DatabaseError where error.isBusy && tries < 200 {
                tries += 1
                usleep(25_000)
            }
        }
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
            let failure = makeDirectories(directory)
            if failure != 0 {
                throw creationError(path: path, errno: failure, what: "its directory \(directory) cannot be created")
            }
        }
        let fd = Foundation.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            if errno == EEXIST { return }
            throw creationError(path: path, errno: errno, what: "it cannot be created")
        }
        fchmod(fd, 0o600)  // in case the umask took bits away we want, or left ones we don't
        close(fd)
    }

    /// Creates `directory` and its missing parents, each 0700; 0 or the failing errno.
    static func makeDirectories(_ directory: String) -> Int32 {
        var missing: [String] = []
        var current = directory
        while !current.isEmpty, current != "/", !FileManager.default.fileExists(atPath: current) {
            missing.append(current)
            current = (current as NSString).deletingLastPathComponent
        }
        for path in missing.reversed() {
            if mkdir(path, 0o700) != 0 && errno != EEXIST { return errno }
            chmod(path, 0o700)  // in case the umask took away bits we want
        }
        return 0
    }

    /// A failure to create the file or its directory. Permission problems (EACCES, EPERM,
    /// EROFS) are reported like SQLite's own "cannot open" (exit 77 in the CLI), the rest as
    /// a plain creation failure.
    static func creationError(path: String, errno code: Int32, what: String) -> DatabaseError {
        let reason = String(cString: strerror(code))
        if code == EACCES || code == EPERM || code == EROFS {
            return DatabaseError(resultCode: SQLITE_CANTOPEN, message: "\(what): \(reason)", sql: nil, path: path)
        }
        return DatabaseError.cannotCreate(path: path, reason: "\(what) (\(reason))")
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
        if applicationID != 0 {
            throw DatabaseError.notOurs(path: connection.path, applicationID: applicationID)
        }
        if try connection.scalarInt("SELECT count(*) FROM sqlite_schema") > 0 {
            throw UnmarkedTables()
        }
        // An empty SQLite file: ours to initialise.
    }

    /// Tables without edgebuf's `application_id`: another program's file, or one another
    /// edgebuf process is creating right now.
    struct UnmarkedTables: Error {}

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
