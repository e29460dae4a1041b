import Foundation
import ServiceLifecycle

/// Stops `edgebuf run` when the database file it opened is deleted or replaced under it.
///
/// SQLite keeps working on the descriptors it holds, so without this check the daemon would
/// go on sending and deleting records of a file nobody can see any more, while what the
/// application now enqueues into the new file at the same path is never sent. Checked once a
/// second (a `stat`, nothing more).
struct DatabaseFileGuard: Service {
    let path: String
    let identity: FileIdentity
    var interval: Duration = .seconds(1)

    /// The identity of the file now at `path` (call right after opening it).
    init(path: String) throws {
        guard let identity = FileIdentity(path: path) else {
            throw CLIFailure(status: .databaseError, message: "the database \(path) disappeared right after it was opened")
        }
        self.path = path
        self.identity = identity
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                guard FileIdentity(path: path) != identity else { continue }
                throw CLIFailure(status: .databaseError, message: "the database \(path) was deleted or replaced while edgebuf run had it open; stopped, so that nothing more is sent from or written to the old file (records still in it went with it). Start edgebuf run again to work on the file now at that path.")
            }
        }
    }
}

/// Device and inode of a file: equal for the same file, different once it was replaced.
struct FileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}
