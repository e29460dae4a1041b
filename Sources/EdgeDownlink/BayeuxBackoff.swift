/// Exponential backoff with "equal jitter" for reconnects: after the n-th consecutive failure
/// (n from 0) the ceiling is `min(maximum, initial * 2^n)` and the delay is uniform in
/// `ceiling/2 ... ceiling`. A successful connect resets it.
///
/// Equal rather than full jitter (as the uplink's `Backoff`): the half-ceiling floor guarantees a
/// real pause between attempts, so a server that fails every request instantly (an unknown
/// client right after each handshake, a load balancer without sticky sessions) cannot drive
/// the client into a hot loop, while a fleet that lost the network together still spreads
/// over half the ceiling.
///
/// The random source is injected, so tests are deterministic. Named apart from
/// `EdgeUplink.Backoff` because the CLI imports both modules.
public struct BayeuxBackoff: Sendable {
    /// The first ceiling.
    public let initial: Duration
    /// The largest ceiling.
    public let maximum: Duration
    /// Consecutive failures so far (the exponent of the next ceiling).
    public private(set) var failures: Int = 0
    private var random: any RandomNumberGenerator & Sendable

    public init(initial: Duration, maximum: Duration, random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        self.initial = max(initial, .zero)
        self.maximum = max(maximum, self.initial)
        self.random = random
    }

    /// The ceiling after `failures` consecutive failures: `min(maximum, initial * 2^failures)`.
    public func ceiling(afterFailures failures: Int) -> Duration {
        // Past 2^40 every sane maximum is reached; the cap on the exponent avoids overflow.
        let exponent = min(max(failures, 0), 40)
        return min(maximum, initial * (Int64(1) << exponent))
    }

    /// The delay before the next attempt after one more failure, at least `atLeast` (a
    /// server's `Retry-After`).
    public mutating func nextDelay(atLeast floor: Duration? = nil) -> Duration {
        let ceiling = ceiling(afterFailures: failures)
        failures = min(failures + 1, 1_000)
        let delay = ceiling / 2 + (ceiling / 2) * unitInterval()
        if let floor, floor > delay { return floor }
        return delay
    }

    /// After a success: the next failure starts again at `initial`.
    public mutating func reset() {
        failures = 0
    }

    /// Uniform in [0, 1): the top 53 bits of one 64-bit draw.
    private mutating func unitInterval() -> Double {
        Double(random.next() >> 11) * 0x1p-53
    }
}
