import EdgeStore

/// Reads and packs outbox windows on a connection of its own, so that the engine can read the
/// next window while its own connection commits the last request (the commit waits on fsync
/// most of the time) and while that request is on the wire.
///
/// The connection only reads: every read is one statement in autocommit mode, so it holds a
/// WAL snapshot only while it steps and never blocks a checkpoint between reads. The bodies'
/// SHA-256 digests for the audit are computed here too, as the requests are built.
actor WindowReader {
    private let connection: Connection
    private let packer: Packer

    init(databasePath: String, options: DatabaseOptions, packer: Packer) throws {
        connection = try Database.openPrepared(path: databasePath, options: options)
        // It reads each page of a window once, in id order: a small cache is enough (the
        // writer's connection keeps SQLite's default for its deletes).
        try connection.execute("PRAGMA cache_size = -512")
        self.packer = packer
    }

    /// `Packer.nextWindow` on this reader's connection.
    func nextWindow(kinds: [RecordKind]?, target: String?, budget: Packer.Window.Budget,
                    after: [RecordClass: Int64]) throws -> Packer.Result {
        try packer.nextWindow(from: OutboxStore(connection), kinds: kinds, target: target, budget: budget, after: after)
    }
}
