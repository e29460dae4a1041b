import Foundation
import ServiceLifecycle

/// Stops `edgebuf run` when the database file it opened is deleted or replaced under it.
///
/// SQLite keeps working on the descriptors it holds, so without this check the daemon would
/// go on sending and deleting records of a file nobody can see any more, while what the
/// application now enqueues into the new file at the same path is never sent.
///
/// The check (a `stat`, nothing more) runs when inotify reports a change of a name in the
/// file's directory (a delete, a rename, a new file) or of the directory itself, so an idle
/// daemon is not woken for it: checking once a second cost some seven context switches a
/// second of an otherwise idle daemon (issue 12). Without inotify (no watch could be added,
/// e.g. the limit of watches is reached) it falls back to checking once a second.
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
            if let changes = DirectoryChanges(directory: (path as NSString).deletingLastPathComponent) {
                defer { changes.close() }
                // Once at the start: the file may have been replaced before the watch existed.
                try check()
                for await _ in changes.events {
                    try check()
                }
                return
            }
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                try check()
            }
        }
    }

    private func check() throws {
        guard FileIdentity(path: path) != identity else { return }
        throw CLIFailure(status: .databaseError, message: "the database \(path) was deleted or replaced while edgebuf run had it open; stopped, so that nothing more is sent from or written to the old file (records still in it went with it). Start edgebuf run again to work on the file now at that path.")
    }
}

/// inotify events of a directory (names created, deleted or moved in it; the directory itself
/// deleted or moved), one element per batch read, delivered by a Dispatch read source (epoll:
/// no timer, no wake-up while nothing happens).
final class DirectoryChanges {
    let events: AsyncStream<Void>
    private let source: any DispatchSourceRead

    init?(directory: String) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)
        guard inotify_add_watch(fd, directory.isEmpty ? "." : directory, mask) >= 0 else {
            Glibc.close(fd)
            return nil
        }
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        events = stream
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue(label: "edgebuf.database-file-guard"))
        source.setEventHandler {
            // Drain what is there; the events themselves do not matter, only that one came.
            var buffer = [UInt8](repeating: 0, count: 4096)
            while buffer.withUnsafeMutableBytes({ Glibc.read(fd, $0.baseAddress, $0.count) }) > 0 {}
            continuation.yield()
        }
        source.setCancelHandler {
            Glibc.close(fd)
            continuation.finish()
        }
        source.resume()
    }

    func close() { source.cancel() }
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
