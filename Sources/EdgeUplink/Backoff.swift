/// Exponential backoff with equal jitter: after the n-th consecutive failure (n from 0) the
/// delay is uniform in `c/2 ... c` with `c = min(maximum, initial * 2^n)`, and at least what
/// the server asked for with `Retry-After`. A success resets it. The random source is
/// injected, so tests are deterministic.
///
/// The jitter spreads a fleet of devices that lost the network together over half of each
/// ceiling, instead of having them all retry in the same second. Equal rather than full jitter
/// (`0 ... c`): with full jitter a device whose early draws were short piles up failures and so
/// ceilings (after a 60 s outage some of 200 waited 2-3.5 minutes more: tools/fleet and
/// BackoffTests), and it retries more often at the start of an outage. With the half-ceiling
/// floor the failures so far took at least half the current ceiling, so no device waits much
/// longer than the outage has lasted.
public struct Backoff: Sendable {
    /// The delays.
    public struct Policy: Sendable, Equatable {
        /// The ceiling after the first failure. Default 1 s.
        public var initial: Duration
        /// The largest ceiling. Default 5 min.
        public var maximum: Duration
        /// The wait in the `unauthorized` state (credentials refused). Default 15 min.
        public var unauthorized: Duration
        /// Equal jitter (the default). Off (`[uplink] backoff_jitter = false`) each delay is the
        /// ceiling itself: only for `tools/fleet`'s comparison of what a fleet does without it.
        public var jitter: Bool

        public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(300), unauthorized: Duration = .seconds(900),
                    jitter: Bool = true) {
            self.initial = initial
            self.maximum = maximum
            self.unauthorized = unauthorized
            self.jitter = jitter
        }
    }

    public let policy: Policy
    /// Consecutive failures so far (the exponent of the next ceiling).
    public private(set) var failures: Int = 0
    private var random: any RandomNumberGenerator & Sendable

    /// `random` defaults to the system generator; pass a seeded one in tests.
    public init(policy: Policy = Policy(), random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        self.policy = policy
        self.random = random
    }

    /// The jitter ceiling after `failures` consecutive failures: `min(maximum, initial * 2^failures)`.
    public func ceiling(afterFailures failures: Int) -> Duration {
        // Past 2^40 seconds every sane maximum is reached; the cap avoids overflow.
        let exponent = min(max(failures, 0), 40)
        let uncapped = policy.initial * (Int64(1) << exponent)
        return min(policy.maximum, uncapped)
    }

    /// The delay before the next attempt after one more failure, at least `retryAfter`.
    public mutating func nextDelay(retryAfter: Duration? = nil) -> Duration {
        let ceiling = ceiling(afterFailures: failures)
        failures += 1
        let jittered = policy.jitter ? ceiling / 2 + (ceiling / 2) * unitInterval() : ceiling
        if let retryAfter, retryAfter > jittered { return retryAfter }
        return jittered
    }

    /// The wait in the `unauthorized` state: the long fixed delay, or `retryAfter` if longer.
    public func unauthorizedDelay(retryAfter: Duration? = nil) -> Duration {
        max(policy.unauthorized, retryAfter ?? .zero)
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
