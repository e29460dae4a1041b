import Foundation

/// A thread-safe "stop now" flag: set from any thread or task, polled by libcurl's progress
/// callback on the transfer thread, which then aborts the transfer.
///
/// A lock-protected Bool rather than `Synchronization.Atomic`, which needs macOS 15.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false // guarded by `lock`

    /// A flag that is not set.
    public init() {}

    /// Sets the flag. Idempotent.
    public func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }
}
