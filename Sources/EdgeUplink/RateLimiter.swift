/// The uplink's pace: `max_requests_per_second` and `max_bytes_per_second`.
public struct PacingConfiguration: Sendable, Equatable {
    /// Requests per second; nil or 0: unlimited.
    public var maxRequestsPerSecond: Double?
    /// Body bytes per second; nil or 0: unlimited.
    public var maxBytesPerSecond: Double?
    /// The request rate never drops below this when the platform rate-limits us.
    public var minimumRequestsPerSecond: Double
    /// After a slow-down, each delivered request raises the rate by 1/`recoverySteps` of the
    /// rate to recover, so `recoverySteps` successes restore it from zero.
    public var recoverySteps: Int

    public init(maxRequestsPerSecond: Double? = nil, maxBytesPerSecond: Double? = nil,
                minimumRequestsPerSecond: Double = 0.1, recoverySteps: Int = 20) {
        self.maxRequestsPerSecond = maxRequestsPerSecond
        self.maxBytesPerSecond = maxBytesPerSecond
        self.minimumRequestsPerSecond = minimumRequestsPerSecond
        self.recoverySteps = recoverySteps
    }
}

/// Token buckets for requests and bytes, so that after an outage the backlog drains at the
/// configured pace, plus an adaptive request rate that halves when the platform rate-limits
/// us (down to a floor) and climbs back by steps on each success (AIMD). Pure: time is passed in.
///
/// A bucket holds one second of its rate (at least one request); it starts full. A request
/// larger than the byte bucket may go when the bucket is full and leaves it in debt, so the
/// average stays at the configured rate.
public struct RateLimiter<Instant: InstantProtocol & Sendable>: Sendable where Instant.Duration == Duration {
    struct Bucket: Sendable {
        var rate: Double
        var tokens: Double
        var updated: Instant?

        var capacity: Double { max(1, rate) }

        func level(at now: Instant) -> Double {
            guard let updated else { return tokens }
            let elapsed = max(0, seconds(updated.duration(to: now)))
            return min(capacity, tokens + elapsed * rate)
        }

        /// When a cost of `cost` may go (debt allowed past a full bucket).
        func earliest(cost: Double, now: Instant) -> Instant {
            let need = min(cost, capacity)
            let have = level(at: now)
            guard have < need else { return now }
            return now.advanced(by: .seconds((need - have) / rate))
        }

        mutating func take(_ cost: Double, at now: Instant) {
            tokens = level(at: now) - cost
            updated = now
        }

        mutating func setRate(_ newRate: Double, at now: Instant) {
            tokens = level(at: now)
            updated = now
            rate = newRate
            tokens = min(tokens, capacity)
        }
    }

    public let configuration: PacingConfiguration
    private var requests: Bucket?
    private var bytes: Bucket?
    /// The request rate imposed after rate limiting; nil when not slowed down.
    public private(set) var adaptiveRate: Double?
    private var recoveryTarget: Double?
    private var recentSends: [Instant] = []

    public init(configuration: PacingConfiguration = PacingConfiguration()) {
        self.configuration = configuration
        if let rate = Self.limit(configuration.maxRequestsPerSecond) {
            requests = Bucket(rate: rate, tokens: max(1, rate))
        }
        if let rate = Self.limit(configuration.maxBytesPerSecond) {
            bytes = Bucket(rate: rate, tokens: max(1, rate))
        }
    }

    /// The request rate in force (configured or lowered), nil when unlimited.
    public var requestRate: Double? { requests?.rate }

    /// The earliest instant a request of `bodyBytes` may be sent; `now` if it may go now.
    public func earliestStart(bodyBytes: Int, now: Instant) -> Instant {
        var start = now
        if let requests { start = max(start, requests.earliest(cost: 1, now: now)) }
        if let bytes { start = max(start, bytes.earliest(cost: Double(bodyBytes), now: now)) }
        return start
    }

    /// Takes the tokens of a request sent at `now`.
    public mutating func consume(bodyBytes: Int, at now: Instant) {
        requests?.take(1, at: now)
        bytes?.take(Double(bodyBytes), at: now)
        recentSends.append(now)
        if recentSends.count > 16 { recentSends.removeFirst() }
    }

    /// The platform rate-limited us: halve the request rate (from the rate in force, or the
    /// rate observed over the last sends when unlimited), not below the floor. Returns the new rate.
    @discardableResult
    public mutating func slowDown(now: Instant) -> Double {
        let base = requests?.rate ?? observedRate() ?? 1
        let lowered = max(min(configuration.minimumRequestsPerSecond, base), base / 2)
        if recoveryTarget == nil { recoveryTarget = Self.limit(configuration.maxRequestsPerSecond) ?? base }
        adaptiveRate = lowered
        if requests == nil {
            requests = Bucket(rate: lowered, tokens: 0, updated: now)
        } else {
            requests!.setRate(lowered, at: now)
        }
        return lowered
    }

    /// A request was delivered: climb back towards the rate before the slow-down, by
    /// 1/recoverySteps of the current rate per success (multiplicative: a step sized from the
    /// old rate, which may have been a loopback burst of hundreds per second, would undo the
    /// slow-down at once); once there, the configured limit (or none) applies again.
    public mutating func recordSuccess(now: Instant) {
        guard let current = adaptiveRate, let target = recoveryTarget else { return }
        let raised = current * (1 + 1 / Double(max(1, configuration.recoverySteps)))
        if raised >= target {
            adaptiveRate = nil
            recoveryTarget = nil
            if let configured = Self.limit(configuration.maxRequestsPerSecond) {
                requests!.setRate(configured, at: now)
            } else {
                requests = nil
            }
        } else {
            adaptiveRate = raised
            requests!.setRate(raised, at: now)
        }
    }

    /// Requests per second over the last (up to 16) sends, if they span any time.
    func observedRate() -> Double? {
        guard recentSends.count >= 2, let first = recentSends.first, let last = recentSends.last else { return nil }
        let span = seconds(first.duration(to: last))
        guard span > 0 else { return nil }
        return Double(recentSends.count - 1) / span
    }

    static func limit(_ value: Double?) -> Double? {
        guard let value, value > 0, value.isFinite else { return nil }
        return value
    }
}

/// A duration in seconds, as a Double.
func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
}
