import Foundation
import Synchronization

/// Wakes the uplink when records arrive: at once for an enqueue in this process (the
/// outbox's commit hook), and through inotify on the database's -wal file for an enqueue from
/// another process (every commit writes the WAL). Not a timer: an idle engine sleeps.
///
/// A draining engine `pause()`s the watch, so that its own commits (each writes the WAL many
/// times) do not wake the watcher thread over and over, and `resume()`s it when it finds the
/// outbox empty, then reads the outbox once more before it waits: an enqueue committed while
/// the watch was paused is found by that read, and any later one wakes it through inotify.
public final class WakeSignal: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    /// The inotify descriptor, the watch on the directory (-1 while paused), what it watches,
    /// and the pipe `stop()` writes to. Only the watcher thread closes these descriptors,
    /// under this lock and after taking them out of it: a descriptor closed under a thread
    /// blocked in read(2) does not end that read, and the thread's next read would go to
    /// whatever file was opened under the same number.
    private struct Watch {
        var fd: Int32 = -1
        var wd: Int32 = -1
        var directory = ""
        var paused = false
        var stopFD: Int32 = -1
    }
    private let watcher = Mutex<Watch>(Watch())

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
    /// True when signalled (or cancelled), false at the timeout.
    @discardableResult
    public func wait(timeout: Duration) async -> Bool {
        let signalled = await withTaskGroup(of: Bool.self) { group -> Bool in
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
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        state.withLock { $0.pending = false }
        return signalled
    }

    /// Starts watching `databasePath`'s directory for writes to its -wal file (other processes'
    /// commits). Linux only; elsewhere only in-process signals wake the engine.
    public func watch(databasePath: String) {
        #if os(Linux)
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { return }
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            close(fd)
            return
        }
        let (stopFD, stopWriteFD) = (pipeEnds[0], pipeEnds[1])
        for descriptor in [stopFD, stopWriteFD] { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        let directory = (databasePath as NSString).deletingLastPathComponent
        let walName = Array(((databasePath as NSString).lastPathComponent + "-wal").utf8)
        let watched = directory.isEmpty ? "." : directory
        let wd = inotify_add_watch(fd, watched, UInt32(IN_MODIFY))
        guard wd >= 0 else {
            for descriptor in [fd, stopFD, stopWriteFD] { close(descriptor) }
            return
        }
        watcher.withLock { $0 = Watch(fd: fd, wd: wd, directory: watched, paused: false, stopFD: stopWriteFD) }
        let thread = Thread { [self] in
            defer {
                watcher.withLock { watch in
                    if watch.fd == fd { watch = Watch() }
                    for descriptor in [fd, stopFD, stopWriteFD] { close(descriptor) }
                }
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            var descriptors = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            while true {
                let ready = poll(&descriptors, 2, -1)
                if ready < 0 {
                    if errno == EINTR { continue }
                    return
                }
                if descriptors[1].revents != 0 { return }
                if descriptors[0].revents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) == 0 { continue }
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { return }
                if Self.names(walName, inEvents: buffer, count: n) { signal() }
            }
        }
        thread.name = "edgebuf-wal-watch"
        thread.start()
        #endif
    }

    #if os(Linux)
    /// Whether the inotify events in the first `count` bytes of `buffer` name `name`. Reads
    /// each header unaligned and never past `count`.
    static func names(_ name: [UInt8], inEvents buffer: [UInt8], count: Int) -> Bool {
        let header = MemoryLayout<inotify_event>.size
        return buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset + header <= count {
                let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                let nameStart = offset + header
                let nameEnd = nameStart + min(Int(event.len), count - nameStart)
                if raw[nameStart..<nameEnd].prefix(while: { $0 != 0 }).elementsEqual(name) { return true }
                offset = nameEnd
            }
            return false
        }
    }
    #endif

    /// Stops watching other processes' commits (in-process signals still arrive) until
    /// `resume()`. No effect when not watching or already paused.
    public func pause() {
        #if os(Linux)
        watcher.withLock { watch in
            guard watch.fd >= 0, !watch.paused else { return }
            if watch.wd >= 0 { inotify_rm_watch(watch.fd, watch.wd) }
            watch.wd = -1
            watch.paused = true
        }
        #endif
    }

    /// Watches again after `pause()`. Commits made while paused did not signal: read what
    /// is waiting once more after this returns, before waiting.
    public func resume() {
        #if os(Linux)
        watcher.withLock { watch in
            guard watch.fd >= 0, watch.paused else { return }
            // If the directory cannot be watched again, only in-process signals and the
            // engine's fallback timeout remain.
            watch.wd = inotify_add_watch(watch.fd, watch.directory, UInt32(IN_MODIFY))
            watch.paused = false
        }
        #endif
    }

    /// True between `pause()` and `resume()` while watching.
    public var isPaused: Bool { watcher.withLock { $0.fd >= 0 && $0.paused } }

    /// Whether other processes' commits wake the engine now: false when inotify could not be
    /// set up (e.g. the user's `fs.inotify.max_user_instances`, 128 by default, is used up)
    /// or while paused; then the engine has to look for new records by itself.
    public var isWatching: Bool { watcher.withLock { $0.fd >= 0 && $0.wd >= 0 && !$0.paused } }

    /// Stops the watcher: its thread closes the descriptors and ends.
    public func stop() {
        #if os(Linux)
        watcher.withLock { watch in
            guard watch.stopFD >= 0 else { return }
            var byte: UInt8 = 1
            _ = write(watch.stopFD, &byte, 1)
            watch = Watch()
        }
        #endif
    }
}
