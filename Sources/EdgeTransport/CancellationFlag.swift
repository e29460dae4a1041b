import Foundation

/// A thread-safe "stop now" flag: set from any thread or task; the transfer thread, asleep in
/// `curl_multi_poll`, is woken by the waker it registered and aborts the transfer (libcurl's
/// progress callback checks the flag too).
///
/// A lock-protected Bool rather than `Synchronization.Atomic`, which needs macOS 15.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false // guarded by `lock`
    private var waker: (@Sendable () -> Void)? // guarded by `lock`

    /// A flag that is not set.
    public init() {}

    /// Sets the flag. Idempotent.
    public func cancel() {
        lock.lock()
        cancelled = true
        // Called under the lock: `setWaker(nil)` cannot return while a wake is under way, so
        // the transfer's multi handle outlives every call to its waker.
        waker?()
        lock.unlock()
    }

    /// What `cancel()` calls to wake the transfer thread (nil: nothing). Called at once when
    /// the flag is already set.
    func setWaker(_ wake: (@Sendable () -> Void)?) {
        lock.lock()
        waker = wake
        if cancelled { wake?() }
        lock.unlock()
    }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }
}
