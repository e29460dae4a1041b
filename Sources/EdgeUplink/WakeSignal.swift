import Foundation
import Synchronization

/// Wakes the uplink when records arrive: at once for an enqueue in this process (the
/// outbox's commit hook), and through inotify on the database's -wal file for an enqueue from
/// another process (every commit writes the WAL). Not a timer: an idle engine sleeps.
public final class WakeSignal: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    private let watcherFD = Mutex<Int32>(-1)

    public init() {}

    /// Marks that there may be new records; resumes a waiting `wait()`.
    public func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns when signalled (at once if a signal came since the last wait), or at the timeout.
    public func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let now = self.state.withLock { state -> Bool in
                            if state.pending {
                                state.pending = false
                                return true
                            }
                            state.waiter = continuation
                            return false
                        }
                        if now { continuation.resume() }
                    }
                } onCancel: {
                    self.signal()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        state.withLock { $0.pending = false }
    }

    /// Starts watching `databasePath`'s directory for writes to its -wal file (other processes'
    /// commits). Linux only; elsewhere only in-process signals wake the engine.
    public func watch(databasePath: String) {
        #if os(Linux)
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return }
        let directory = (databasePath as NSString).deletingLastPathComponent
        let walName = (databasePath as NSString).lastPathComponent + "-wal"
        guard inotify_add_watch(fd, directory.isEmpty ? "." : directory, UInt32(IN_MODIFY)) >= 0 else {
            close(fd)
            return
        }
        watcherFD.withLock { $0 = fd }
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                var offset = 0
                while offset + MemoryLayout<inotify_event>.size <= n {
                    let (length, name) = buffer.withUnsafeBytes { raw -> (Int, String) in
                        let event = raw.load(fromByteOffset: offset, as: inotify_event.self)
                        let nameStart = offset + MemoryLayout<inotify_event>.size
                        let nameBytes = raw[nameStart..<min(nameStart + Int(event.len), n)].prefix { $0 != 0 }
                        return (Int(event.len), String(decoding: nameBytes, as: UTF8.self))
                    }
                    if name == walName { signal() }
                    offset += MemoryLayout<inotify_event>.size + length
                }
            }
        }
        thread.name = "edgebuf-wal-watch"
        thread.start()
        #endif
    }

    /// Stops the watcher.
    public func stop() {
        let fd = watcherFD.withLock { fd -> Int32 in
            defer { fd = -1 }
            return fd
        }
        if fd >= 0 { close(fd) }
    }
}
