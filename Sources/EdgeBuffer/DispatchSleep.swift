import Dispatch
import Foundation

/// A sleep on a Dispatch timer, for the daemon's long idle waits.
///
/// On Linux, a pending Swift Concurrency sleep (`Task.sleep`, `ContinuousClock.sleep`,
/// `SuspendingClock.sleep`; Swift 6.3) wakes a thread about once a second until it is due:
/// measured here, 8-9 context switches in 10 s for one 20 s sleep, against none for
/// `DispatchQueue.asyncAfter`. An idle daemon keeps such waits open all the time (the long
/// poll's deadline, the audit retention's minute), so they go through Dispatch (issue 12).
/// The timer runs on the monotonic uptime clock, like `SuspendingClock`: callers that care
/// about time spent suspended read their own clock when it fires.
public enum DispatchSleep {
    /// Returns after `duration`, or at once when the task is (or gets) cancelled.
    public static func sleep(for duration: Duration) async {
        let timer = Timer()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                timer.start(continuation, after: duration)
            }
        } onCancel: {
            timer.fire()
        }
    }

    /// Calls `action` after `duration` unless the returned item is cancelled first.
    public static func after(_ duration: Duration, _ action: @escaping @Sendable () -> Void) -> DispatchWorkItem {
        let item = DispatchWorkItem(block: action)
        DispatchQueue.global().asyncAfter(deadline: deadline(after: duration), execute: item)
        return item
    }

    static func deadline(after duration: Duration) -> DispatchTime {
        let (seconds, attoseconds) = max(duration, .zero).components
        // Capped at a day: far beyond any wait here, and far from DispatchTime's overflow.
        let nanoseconds = min(seconds, 86_400) * 1_000_000_000 + attoseconds / 1_000_000_000
        return .now() + .nanoseconds(Int(nanoseconds))
    }

    /// One sleep's state: the continuation is resumed exactly once, by the timer or by
    /// cancellation, whichever comes first (cancellation may even come before `start`).
    private final class Timer: @unchecked Sendable {
        private let lock = NSLock()
        private var continuation: CheckedContinuation<Void, Never>? // guarded by `lock`
        private var item: DispatchWorkItem?                         // guarded by `lock`
        private var fired = false                                   // guarded by `lock`

        func start(_ continuation: CheckedContinuation<Void, Never>, after duration: Duration) {
            lock.lock()
            if fired {
                lock.unlock()
                continuation.resume()
                return
            }
            self.continuation = continuation
            item = DispatchSleep.after(duration) { [self] in fire() }
            lock.unlock()
        }

        func fire() {
            lock.lock()
            guard !fired else { lock.unlock(); return }
            fired = true
            let continuation = self.continuation
            let item = self.item
            self.continuation = nil
            self.item = nil
            lock.unlock()
            item?.cancel()
            continuation?.resume()
        }
    }
}
