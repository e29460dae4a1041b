import EdgeStore

/// The uplink's decisions, event by event, with no I/O: no sockets, no clock, no sleep. Time
/// comes in as a monotonic instant of whatever clock the engine runs on.
///
/// It owns the queue of requests of the current window. The engine loops:
///
/// ```
/// switch machine.nextStep(now: clock.now) {
/// case .needRecords:            read a window, pack it, dead-letter `oversized`, machine.enqueue(requests)
///                               (nothing to read: wait for new records)
/// case .authenticate(let id):   POST IoTDAAuth.request(...) → machine.authenticated / authenticationFailed
/// case .send(let r, let n, let token): POST r.body to r.path with r.platform.headers(accessToken: token)
///                               → let decision = machine.requestFinished(r, result, attempt: n, now:)
///                               → apply decision.actions, write decision.outcome (with the store action)
/// case .wait(let until):        sleep until then (or shutdown)
/// case .busy:                   a bug: report the in-flight exchange first
/// }
/// ```
///
/// Rules (shared/reference/iotda-https.md): 2xx deletes; transient failures retry the same
/// request with exponential backoff and equal jitter, at least `Retry-After`; too large / too many
/// children split in two; invalid input bisects until the bad record is alone, which is
/// dead-lettered while the rest is delivered; an unknown child dead-letters that child's records
/// and resends the rest; a refused token re-authenticates once and resends (a second refusal
/// right after, or refused credentials, is `unauthorized` with the long backoff); rate limiting
/// lowers the request rate and backs off. Requests go one at a time, oldest first, and a failed
/// request is retried before anything behind it, so each device's records arrive in order.
public struct SyncStateMachine<Instant: InstantProtocol & Sendable>: Sendable where Instant.Duration == Duration {
    /// What the engine does next.
    public enum Step: Sendable, Equatable {
        /// Send this request (body, path, headers from `request.platform.headers(accessToken:)`).
        case send(UplinkRequest, attempt: Int, accessToken: AccessToken?)
        /// Authenticate this IoTDA device (`IoTDAAuth.request`), then report the answer.
        case authenticate(deviceID: String)
        /// Nothing to do before this instant (backoff, unauthorized, or pacing).
        case wait(until: Instant)
        /// The queue is empty: read and pack the next window of records, then `enqueue`.
        case needRecords
        /// A request or authentication is in flight: report its result first.
        case busy
    }

    /// What the uplink is doing, for `status`.
    public enum Phase: Sendable, Equatable {
        case idle
        case sending
        case authenticating
        case backoff(until: Instant)
        case unauthorized(until: Instant)

        /// `idle`, `sending`, `authenticating`, `backoff`, `unauthorized`.
        public var name: String {
            switch self {
            case .idle: return "idle"
            case .sending: return "sending"
            case .authenticating: return "authenticating"
            case .backoff: return "backoff"
            case .unauthorized: return "unauthorized"
            }
        }
    }

    /// The state shown by `status`. Holds no secret.
    public struct Status: Sendable, Equatable {
        public var phase: Phase
        /// When a request was last delivered.
        public var lastSuccess: Instant?
        /// The last failure, one secret-free line.
        public var lastError: String?
        /// Failed exchanges (any non-2xx or no answer, authentication included) since the last delivery.
        public var consecutiveFailures: Int
        /// The delay chosen at the last backoff; nil after a delivery.
        public var currentBackoff: Duration?
        /// The request rate in force, nil when unlimited.
        public var requestRate: Double?
        /// Requests and records waiting in the current window.
        public var queuedRequests: Int
        public var queuedRecords: Int
    }

    struct Pending: Sendable {
        var request: UplinkRequest
        var attempt: Int
    }

    enum InFlight: Sendable {
        case request(Pending)
        case authentication(deviceID: String)
    }

    struct HeldToken: Sendable {
        var token: AccessToken
        var refreshAt: Instant
    }

    public let configuration: SyncConfiguration
    private var queue: [Pending] = []
    private var inFlight: InFlight?
    private var tokens: [String: HeldToken] = [:]
    /// Set when a refused token made us re-authenticate; a second refusal before any delivery
    /// means the credentials are wrong. Cleared by a delivery.
    private var reauthenticatedAfterRejection = false
    private var backoffUntil: Instant?
    private var unauthorizedUntil: Instant?
    private var backoff: Backoff
    private var limiter: RateLimiter<Instant>
    private var lastSuccess: Instant?
    private var lastError: String?
    private var consecutiveFailures = 0
    private var currentBackoff: Duration?

    /// `random` drives the backoff jitter: a seeded generator in tests.
    public init(configuration: SyncConfiguration = SyncConfiguration(),
                random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        self.configuration = configuration
        self.backoff = Backoff(policy: configuration.backoff, random: random)
        self.limiter = RateLimiter(configuration: configuration.pacing)
    }

    // MARK: Queue

    /// Queues packed requests (in the order `Packer` returned them) behind any already queued.
    public mutating func enqueue(_ requests: [UplinkRequest]) {
        queue.append(contentsOf: requests.map { Pending(request: $0, attempt: 1) })
    }

    /// Drops the queued requests (not the one in flight), e.g. after the engine failed to write
    /// a result and wants to re-read the outbox. Their records stay in the outbox.
    public mutating func discardQueue() {
        if case .request(let pending) = inFlight {
            queue = queue.first.map { $0.request.recordIDs == pending.request.recordIDs ? [$0] : [] } ?? []
        } else {
            queue = []
        }
    }

    /// The requests waiting, head first (the head is the one in flight, if any).
    public var queuedRequests: [UplinkRequest] { queue.map(\.request) }

    // MARK: Steps

    /// What to do now.
    public mutating func nextStep(now: Instant) -> Step {
        if inFlight != nil { return .busy }
        if let until = unauthorizedUntil {
            if now < until { return .wait(until: until) }
            unauthorizedUntil = nil
        }
        if let until = backoffUntil {
            if now < until { return .wait(until: until) }
            backoffUntil = nil
        }
        guard let head = queue.first else { return .needRecords }
        var token: AccessToken? = nil
        if head.request.platform.usesAccessToken, let device = head.request.device {
            guard let held = tokens[device], now < held.refreshAt else {
                inFlight = .authentication(deviceID: device)
                return .authenticate(deviceID: device)
            }
            token = held.token
        }
        let start = limiter.earliestStart(bodyBytes: head.request.body.count, now: now)
        if start > now { return .wait(until: start) }
        limiter.consume(bodyBytes: head.request.body.count, at: now)
        inFlight = .request(head)
        return .send(head.request, attempt: head.attempt, accessToken: token)
    }

    // MARK: Authentication events

    /// The device authenticated (`IoTDAAuth.parseAnswer` read the 200 answer) at `now`.
    public mutating func authenticated(deviceID: String, token: AccessToken, now: Instant) -> [SyncAction] {
        guard case .authentication(let expected) = inFlight, expected == deviceID else { return [] }
        inFlight = nil
        tokens[deviceID] = HeldToken(token: token, refreshAt: now.advanced(by: token.refreshAfter))
        return []
    }

    /// Authentication got no usable answer. A 2xx here means the answer could not be read
    /// (treated as transient). Transient failures and rate limits back off and authenticate
    /// again; anything else (IOTDA.000002, 401, 400: the platform refuses the device id or
    /// secret) is `unauthorized`, with the long backoff.
    public mutating func authenticationFailed(deviceID: String, result: ExchangeResult, now: Instant) -> [SyncAction] {
        guard case .authentication(let expected) = inFlight, expected == deviceID else { return [] }
        inFlight = nil
        tokens[deviceID] = nil
        var verdict = Classification.classify(result, platform: .iotda)
        if verdict.responseClass == .delivered {
            verdict.responseClass = .transient
            verdict.errorMessage = "unreadable device-auth answer"
        }
        consecutiveFailures += 1
        lastError = "authentication of \(deviceID): \(verdict.summary)"
        switch verdict.responseClass {
        case .transient:
            return [.retryAfter(backOff(now: now, retryAfter: verdict.retryAfter))]
        case .rateLimited:
            let rate = limiter.slowDown(now: now)
            return [.slowDown(requestsPerSecond: rate), .retryAfter(backOff(now: now, retryAfter: verdict.retryAfter))]
        default:
            return [enterUnauthorized(now: now, retryAfter: verdict.retryAfter)]
        }
    }

    // MARK: Request events

    /// The request sent by the last `.send` step finished. Returns nil if `request`/`attempt`
    /// are not the ones in flight (a stale report, ignored).
    public mutating func requestFinished(_ request: UplinkRequest, result: ExchangeResult, attempt: Int, now: Instant) -> SyncDecision? {
        guard case .request(let pending) = inFlight, pending.attempt == attempt,
              pending.request.recordIDs == request.recordIDs,
              queue.first?.request.recordIDs == request.recordIDs else { return nil }
        inFlight = nil
        let verdict = Classification.classify(result, platform: request.platform, children: request.children)
        func outcome(_ result: RequestOutcome.Result) -> RequestOutcome {
            RequestOutcome(result: result, attempt: attempt, recordIDs: request.recordIDs, path: request.path,
                           bodyBytes: request.body.count, httpStatus: verdict.status, errorCode: verdict.errorCode,
                           detail: verdict.summary)
        }

        if verdict.responseClass == .delivered {
            queue.removeFirst()
            backoff.reset()
            consecutiveFailures = 0
            currentBackoff = nil
            lastSuccess = now
            reauthenticatedAfterRejection = false
            limiter.recordSuccess(now: now)
            return SyncDecision(outcome: outcome(.delivered), actions: [.delete(ids: request.recordIDs)])
        }

        consecutiveFailures += 1
        lastError = verdict.summary
        switch verdict.responseClass {
        case .delivered:
            preconditionFailure("handled above")

        case .transient:
            queue[0].attempt += 1
            return SyncDecision(outcome: outcome(.retry), actions: [.retryAfter(backOff(now: now, retryAfter: verdict.retryAfter))])

        case .rateLimited:
            queue[0].attempt += 1
            let rate = limiter.slowDown(now: now)
            let delay = backOff(now: now, retryAfter: verdict.retryAfter)
            return SyncDecision(outcome: outcome(.retry), actions: [.slowDown(requestsPerSecond: rate), .retryAfter(delay)])

        case .authenticationFailed, .tokenRejected:
            queue[0].attempt += 1
            guard request.platform.usesAccessToken, let device = request.device else {
                // Cumulocity: Basic credentials on every request, no token to refresh.
                return SyncDecision(outcome: outcome(.retry), actions: [enterUnauthorized(now: now, retryAfter: verdict.retryAfter)])
            }
            tokens[device] = nil
            if reauthenticatedAfterRejection {
                return SyncDecision(outcome: outcome(.retry), actions: [enterUnauthorized(now: now, retryAfter: verdict.retryAfter)])
            }
            reauthenticatedAfterRejection = true
            return SyncDecision(outcome: outcome(.retry), actions: [.reauthenticate(deviceID: device)])

        case .tooLarge, .tooManyChildren:
            if let (first, second) = Packer.split(request) {
                replaceHead(with: [first, second])
                return SyncDecision(outcome: outcome(.split), actions: [.split(first, second)])
            }
            queue.removeFirst()
            return SyncDecision(outcome: outcome(.deadLettered), actions: [.deadLetter(ids: request.recordIDs, reason: verdict.rejectionReason)])

        case .invalidInput:
            return bisect(request, verdict: verdict, outcome: outcome)

        case .unknownChild(let named):
            let child = named ?? (request.children.count == 1 ? request.children[0] : nil)
            guard let child else {
                // The answer does not say which child: isolate it like a bad record.
                return bisect(request, verdict: verdict, outcome: outcome)
            }
            let ids = request.recordIDs(ofChild: child)
            if let rest = request.removing(ids: Set(ids)) {
                replaceHead(with: [rest])
            } else {
                queue.removeFirst()
            }
            return SyncDecision(outcome: outcome(.deadLettered),
                                actions: [.deadLetterChild(child: child, ids: ids, reason: verdict.rejectionReason)])
        }
    }

    // MARK: Status

    /// The state for `status` at `now`.
    public func status(now: Instant) -> Status {
        let phase: Phase
        if case .authentication = inFlight {
            phase = .authenticating
        } else if inFlight != nil {
            phase = .sending
        } else if let until = unauthorizedUntil, now < until {
            phase = .unauthorized(until: until)
        } else if let until = backoffUntil, now < until {
            phase = .backoff(until: until)
        } else {
            phase = queue.isEmpty ? .idle : .sending
        }
        return Status(phase: phase, lastSuccess: lastSuccess, lastError: lastError,
                      consecutiveFailures: consecutiveFailures, currentBackoff: currentBackoff,
                      requestRate: limiter.requestRate, queuedRequests: queue.count,
                      queuedRecords: queue.reduce(0) { $0 + $1.request.recordCount })
    }

    // MARK: Helpers

    private mutating func bisect(_ request: UplinkRequest, verdict: Classification,
                                 outcome: (RequestOutcome.Result) -> RequestOutcome) -> SyncDecision {
        if let (first, second) = Packer.split(request) {
            replaceHead(with: [first, second])
            return SyncDecision(outcome: outcome(.split), actions: [.bisect(first, second)])
        }
        queue.removeFirst()
        return SyncDecision(outcome: outcome(.deadLettered), actions: [.deadLetter(ids: request.recordIDs, reason: verdict.rejectionReason)])
    }

    private mutating func replaceHead(with requests: [UplinkRequest]) {
        queue.replaceSubrange(0..<1, with: requests.map { Pending(request: $0, attempt: 1) })
    }

    private mutating func backOff(now: Instant, retryAfter: Duration?) -> Duration {
        let delay = backoff.nextDelay(retryAfter: retryAfter)
        backoffUntil = now.advanced(by: delay)
        currentBackoff = delay
        return delay
    }

    private mutating func enterUnauthorized(now: Instant, retryAfter: Duration?) -> SyncAction {
        let delay = backoff.unauthorizedDelay(retryAfter: retryAfter)
        unauthorizedUntil = now.advanced(by: delay)
        currentBackoff = delay
        return .unauthorized(retryIn: delay)
    }
}
