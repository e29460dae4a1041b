/// The uplink's pace: `max_requests_per_second` and `max_bytes_per_second`.
public struct PacingConfiguration: Sendable, Equatable {
    /// Requests per second; nil or 0: unlimited.
    public var maxRequestsPerSecond: Double?
    /// Body bytes per second; nil or 0: unlimited.
    public var maxBytesPerSecond: Double?
    /// The request rate never drops below this when the platform rate-limits us.
    public var minimumRequestsPerSecond: Double
    /// While recovering from rate limiting, each raise goes to at most this multiple of the
    /// highest rate the platform accepted since it last refused one: a platform that keeps
    /// limiting never sees more than that multiple of the rate it last accepted.
    public var probeFactor: Double
    /// The least time between two raises (and at least two requests at the current rate).
    public var probeInterval: Duration

    public init(maxRequestsPerSecond: Double? = nil, maxBytesPerSecond: Double? = nil,
                minimumRequestsPerSecond: Double = 0.1, probeFactor: Double = 1.2,
                probeInterval: Duration = .seconds(1)) {
        self.maxRequestsPerSecond = maxRequestsPerSecond
        self.maxBytesPerSecond = maxBytesPerSecond
        self.minimumRequestsPerSecond = minimumRequestsPerSecond
        self.probeFactor = probeFactor
        self.probeInterval = probeInterval
    }
}

/// Token buckets for requests and bytes, so that after an outage the backlog drains at the
/// configured pace, plus an adaptive request rate for a platform that rate-limits us. Pure:
/// time is passed in.
///
/// The adaptive rate: the first refusal halves the rate (from the rate in force, or the rate
/// observed over the last sends when unlimited). Then, at most once per `probeInterval` and
/// after a delivery at the current rate, the rate rises to `probeFactor` times the highest
/// rate the platform accepted, until it is back where it was before the limiting began. A
/// refusal of a probe returns to the accepted rate; a refusal at the accepted rate (the
/// platform's budget shrank) halves again, down to `minimumRequestsPerSecond`. So a platform
/// that keeps limiting sees at most `probeFactor` times what it last accepted, and once it
/// stops, the rate grows by that factor a second: from an eighth of the old rate back to it in
/// about 12 s.
///
/// A bucket holds one second of its rate (at least one request); it starts full. While the
/// rate is adaptive the request bucket holds one request, so no second of it carries a burst
/// on top of the rate. A request larger than the byte bucket may go when the bucket is full
/// and leaves it in debt, so the average stays at the configured rate.
public struct RateLimiter<Instant: InstantProtocol & Sendable>: Sendable where Instant.Duration == Duration {
    struct Bucket: Sendable {
        var rate: Double
        var tokens: Double
        var updated: Instant?
        /// No burst beyond one request (the adaptive rate).
        var smooth = false

        var capacity: Double { smooth ? 1 : max(1, rate) }

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
    /// The rate before the limiting began: reaching it again ends the adaptation.
    private var recoveryTarget: Double?
    /// The highest adaptive rate the platform accepted since its last refusal.
    private var acceptedRate: Double?
    /// When the adaptive rate last changed.
    private var changed: Instant?
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

    /// The platform rate-limited us: back to the accepted rate after a refused probe, else
    /// halve (not below the floor). Returns the new rate.
    @discardableResult
    public mutating func slowDown(now: Instant) -> Double {
        let current = adaptiveRate ?? requests?.rate ?? observedRate() ?? 1
        if recoveryTarget == nil { recoveryTarget = Self.limit(configuration.maxRequestsPerSecond) ?? current }
        let lowered: Double
        if let accepted = acceptedRate, current > accepted {
            lowered = accepted
        } else {
            lowered = current / 2
            acceptedRate = nil
        }
        setAdaptive(max(min(configuration.minimumRequestsPerSecond, current), lowered), at: now)
        return adaptiveRate!
    }

    /// A request was delivered: the current rate is accepted; once `probeInterval` (and two
    /// requests' time) has passed since the last change, probe `probeFactor` higher; back at
    /// the rate before the limiting, the configured limit (or none) applies again.
    public mutating func recordSuccess(now: Instant) {
        guard let current = adaptiveRate, let target = recoveryTarget else { return }
        let accepted = max(acceptedRate ?? 0, current)
        acceptedRate = accepted
        let step = max(seconds(configuration.probeInterval), 2 / current)
        if let changed, seconds(changed.duration(to: now)) < step { return }
        let raised = accepted * max(1, configuration.probeFactor)
        if raised >= target {
            adaptiveRate = nil
            recoveryTarget = nil
            acceptedRate = nil
            changed = nil
            if let configured = Self.limit(configuration.maxRequestsPerSecond) {
                requests!.smooth = false
                requests!.setRate(configured, at: now)
            } else {
                requests = nil
            }
        } else {
            setAdaptive(raised, at: now)
        }
    }

    private mutating func setAdaptive(_ rate: Double, at now: Instant) {
        adaptiveRate = rate
        changed = now
        if requests == nil {
            requests = Bucket(rate: rate, tokens: 0, updated: now, smooth: true)
        } else {
            requests!.smooth = true
            requests!.setRate(rate, at: now)
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
