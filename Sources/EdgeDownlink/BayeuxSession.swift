import EdgeBuffer

/// The downlink's Bayeux long-polling client as a pure state machine: no sockets, no clock
/// reads, no sleeping. Time comes in as a monotonic instant of whatever clock the engine runs
/// on; randomness (backoff jitter) from an injected generator.
///
/// The engine feeds it inputs (`start`, `answerStreamed` or `answerReceived`, `answerArriving`,
/// `requestFailed`, `storeCommitted`, `storeFailed`, `stop`) and pulls actions:
///
/// ```
/// session.start(now: clock.now)
/// loop: switch session.nextAction(now: clock.now) {
/// case .send(let r, let deadline): POST r.body on the long-poll handle if r.kind.usesLongPollConnection,
///                                  else on the control handle; abort it at `deadline`.
///                                  200 → answerStreamed(requestID: r.id, remainder:, now:) once a
///                                  BayeuxAnswerStream has read the body (its bytes → answerArriving;
///                                  answerReceived(body:) for a body held whole)
///                                  anything else → requestFailed(requestID: r.id, failure, received:, now:)
/// case .cancel(let id):            abort that request; report nothing for it (a late report is ignored).
/// case .store(let events, let gap): ONE transaction: the gap marker (if any), then the events
///                                  (raw JSON, channel, local receive time, insert-or-ignore on key)
///                                  → storeCommitted(now:) / storeFailed(now:)
/// case .report(let r):             log at r.severity; update status.
/// case .wait(let until):           sleep until `until` or until an answer/failure arrives.
/// case .idle:                      wait for an input (the store commit).
/// case .stopped(let reason):       the downlink is over (status shows why).
/// }
/// ```
///
/// Guarantees (shared/reference/bayeux-client.md):
/// - **Persist before you poll again**: while a `.store` is not acknowledged by
///   `storeCommitted`, no request of any kind is returned. Events from every answer
///   (connect, subscribe, unsubscribe, stale ones too) go through `.store` first.
/// - At most one connect outstanding, never two handshakes, and never a connect and a
///   handshake at once. At most one other request (subscribe, unsubscribe, disconnect) on the
///   control connection besides the connect.
/// - Advice: the newest (from a handshake or connect reply) replaces the older as a whole;
///   it is cleared when a handshake is sent. `retry` → connect after `interval` (+ backoff when
///   the connect failed); `handshake` → handshake, never retry the connect; `none` → stop,
///   loudly; a negative `interval` → stop. Without advice a failed connect is retried and a
///   failed handshake repeated. An unknown client (`402::Unknown client`, Faye's
///   `401:<id>:Unknown client`, `403`) re-handshakes even without advice; refused credentials
///   (`403::Handshake denied`, HTTP 401/403) wait the long credentials backoff.
/// - The first connect after a handshake asks `timeout: 0`; later ones the hold time in
///   force: the requested one, capped by the newest advice's `timeout`. A connect's deadline
///   is that hold time plus the margin; other requests get the margin. The machine itself treats a
///   request still outstanding at its deadline as failed (dead poll) and cancels it.
/// - After every successful handshake every wanted channel is subscribed again; after every
///   successful RE-handshake a gap marker is stored before anything else of the new session;
///   so after the first one when `start` was told of an earlier session (a restart).
/// - Unconnected (since the first failure after the last successful connect) for longer than
///   granted timeout + interval + margin: the server has dropped the session, so the next
///   attempt is a handshake instead of a connect.
/// - Failures back off exponentially with equal jitter up to a cap; a successful connect
///   resets the backoff.
public struct BayeuxSession<Instant: InstantProtocol & Sendable>: Sendable where Instant.Duration == Duration {
    /// What the engine does next.
    public enum Action: Sendable, Equatable {
        /// POST this request; it is outstanding until its answer or failure is reported, and
        /// dead at `deadline`.
        case send(BayeuxRequest, deadline: Instant)
        /// Abort this request (dead poll, or the session it belongs to was abandoned).
        case cancel(BayeuxRequestID)
        /// Commit these in ONE transaction (the gap marker first), then call `storeCommitted`.
        /// Nothing is sent until then.
        case store(notifications: [InboxNotification], gap: SessionGap?)
        /// Tell the operator (log, status).
        case report(BayeuxReport)
        /// Nothing to do before this instant, unless an answer or failure arrives first.
        case wait(until: Instant)
        /// Nothing to do until an input arrives (the commit of the store in progress).
        case idle
        /// The session is over. Returned again on every later call.
        case stopped(BayeuxStopReason)
    }

    struct Outstanding: Sendable {
        var request: BayeuxRequest
        var deadline: Instant
    }

    enum Path: Sendable, Equatable {
        case notStarted
        /// A handshake goes at `due` (backoff, or at once).
        case handshake(due: Instant)
        case awaitingHandshake
        /// The first subscribe after a handshake is to be sent or in flight; the first connect
        /// follows its answer.
        case subscribing
        /// A connect goes at `due` (interval, backoff).
        case connect(due: Instant)
        case awaitingConnect
        /// `stop` was called: the disconnect is to be sent or in flight.
        case disconnecting
        case finished
    }

    struct Batch: Sendable {
        var notifications: [InboxNotification]
        var gap: SessionGap?
    }

    public let configuration: DownlinkConfiguration

    // Protocol state.
    var path: Path = .notStarted
    var terminal: BayeuxPhase?
    var poll: Outstanding?              // the handshake or the connect
    var control: Outstanding?           // a subscribe, unsubscribe or disconnect
    var clientID: String?
    var advice: BayeuxAdvice?
    var firstConnectPending = false
    var lastConnectSucceeded = false
    var unconnectedSince: Instant?
    var lastSessionContact: Instant?
    var gapCause: String?
    /// Set by `start(now:earlierSession:)` when an earlier process had a session on this
    /// inbox: the first successful handshake stores a gap marker with this reason.
    var restartCause: String?

    // Subscriptions.
    var wanted: [String]
    var subscribed: Set<String> = []
    var toSubscribe: [String] = []
    var toUnsubscribe: [String] = []
    var controlDue: Instant?

    // Persist before you poll again.
    var pendingStores: [Batch] = []
    var storeInFlight = false
    var storeDue: Instant?

    // Backoff.
    var backoff: BayeuxBackoff
    var credentialsBackoff: BayeuxBackoff
    var subscribeBackoff: BayeuxBackoff
    var storeBackoff: BayeuxBackoff

    // Identifiers.
    var nextRequestNumber: UInt64 = 0
    var nextMessageNumber: UInt64 = 0

    // Reports and status.
    var outbox: [Action] = []
    var reportedPhase: BayeuxPhase = .disconnected
    var pendingReason: (text: String, severity: BayeuxReport.Severity)?
    var successfulHandshakes = 0
    var handshakesSent = 0
    var reconnects = 0
    var consecutiveFailures = 0
    var currentBackoff: Duration?
    var lastError: String?
    var lastAnswerAt: Instant?
    var lastNotificationAt: Instant?
    var notificationsReceived = 0
    var staleAnswers = 0

    /// `random` drives the backoff jitter: a seeded generator in tests.
    public init(configuration: DownlinkConfiguration,
                random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        self.configuration = configuration
        var unique: [String] = []
        for channel in configuration.channels where !unique.contains(channel) { unique.append(channel) }
        self.wanted = unique
        // Each backoff gets a copy of the generator: a fixed or seeded source in tests gives
        // every backoff the same, predictable jitter.
        self.backoff = BayeuxBackoff(initial: configuration.backoffInitial, maximum: configuration.backoffMaximum, random: random)
        self.credentialsBackoff = BayeuxBackoff(initial: configuration.credentialsBackoffInitial,
                                                maximum: configuration.credentialsBackoffMaximum, random: random)
        self.subscribeBackoff = BayeuxBackoff(initial: configuration.backoffInitial, maximum: configuration.backoffMaximum, random: random)
        self.storeBackoff = BayeuxBackoff(initial: configuration.backoffInitial, maximum: configuration.backoffMaximum, random: random)
        self.spreadRandom = random
    }

    /// Drives the re-handshake spread (`DownlinkConfiguration.rehandshakeSpread`).
    var spreadRandom: any RandomNumberGenerator & Sendable

    /// A uniform random part of the re-handshake spread, added to the wait before a handshake
    /// after the server lost the session.
    mutating func rehandshakeSpread() -> Duration {
        configuration.rehandshakeSpread * (Double(spreadRandom.next() >> 11) * 0x1p-53)
    }

    // MARK: Inputs

    /// Starts the session: the first handshake goes at once. `earlierSession` says that an
    /// earlier process (or an earlier engine) had a session on the same inbox and why it may
    /// have left a hole: Bayeux keeps nothing across sessions, so what was published since, and
    /// an answer cut off by a crash before its commit, are gone. The first successful handshake
    /// then stores a gap marker with that reason, as a re-handshake does.
    public mutating func start(now: Instant, earlierSession: String? = nil) {
        guard path == .notStarted, terminal == nil else { return }
        restartCause = earlierSession
        path = .handshake(due: now)
        flushReport()
    }

    /// A 200 answer to request `requestID`. Its events are stored whatever the request (even a
    /// stale one, whose answer is otherwise ignored); a body that cannot be parsed counts as a
    /// failure of the request.
    public mutating func answerReceived(requestID: BayeuxRequestID, body: [UInt8], now: Instant) {
        let parsed: Result<[BayeuxMessage], BayeuxError>
        do {
            parsed = .success(try BayeuxMessage.parseAnswer(body))
        } catch {
            parsed = .failure(error)
        }
        let notifications = (try? parsed.get())?.filter { !$0.isMeta }.flatMap(\.notifications) ?? []
        received(requestID: requestID, parsed: parsed, notifications: notifications, committed: 0, bodyBytes: body.count, now: now)
    }

    /// Request `requestID` got HTTP 200 and its body was read by a `BayeuxAnswerStream`, which
    /// has committed all but `remainder.notifications` already. What remains is stored before
    /// the next request, as with `answerReceived`; an answer that turned out unusable (cut
    /// off, not JSON) fails the request as there, after the events read before the damage.
    public mutating func answerStreamed(requestID: BayeuxRequestID, remainder: BayeuxAnswerStream.Remainder, now: Instant) {
        let parsed: Result<[BayeuxMessage], BayeuxError> = remainder.error.map { .failure($0) } ?? .success(remainder.replies)
        received(requestID: requestID, parsed: parsed, notifications: remainder.notifications,
                 committed: remainder.committed, bodyBytes: remainder.bodyBytes, now: now)
    }

    private mutating func received(requestID: BayeuxRequestID, parsed: Result<[BayeuxMessage], BayeuxError>,
                                   notifications: [InboxNotification], committed: Int, bodyBytes: Int, now: Instant) {
        if case .success = parsed { lastAnswerAt = now }
        if !notifications.isEmpty {
            pendingStores.append(Batch(notifications: notifications, gap: nil))
        }
        if !notifications.isEmpty || committed > 0 {
            lastNotificationAt = now
            notificationsReceived += notifications.count + committed
        }
        guard let owner = detach(requestID) else {
            staleAnswers += 1
            flushReport()
            return
        }
        switch parsed {
        case .failure(let error):
            if owner.request.kind == .connect { answerLost("its answer could not be read: \(error.description)") }
            failed(owner, Trouble(summary: error.description), bodyBytes: bodyBytes, now: now)
        case .success(let messages):
            handle(owner, messages: messages, bodyBytes: bodyBytes, now: now)
        }
        flushReport()
    }

    /// Request `requestID`'s answer is arriving (a streamed body's bytes came): it is no dead
    /// poll, however long the answer takes. Its deadline moves to `until` if that is later;
    /// the transport's stall watchdog ends an answer that stops arriving.
    public mutating func answerArriving(requestID: BayeuxRequestID, until: Instant) {
        for lane in [\BayeuxSession.poll, \BayeuxSession.control] {
            guard var outstanding = self[keyPath: lane], outstanding.request.id == requestID else { continue }
            outstanding.deadline = max(outstanding.deadline, until)
            self[keyPath: lane] = outstanding
        }
    }

    /// Request `requestID` got no usable answer. Ignored if it is not outstanding (already
    /// cancelled, or a report of a request the machine gave up on). `received` are complete
    /// events a streamed answer delivered before it broke off: stored before the gap marker.
    public mutating func requestFailed(requestID: BayeuxRequestID, failure: BayeuxFailure, received: [InboxNotification] = [], now: Instant) {
        if !received.isEmpty {
            pendingStores.append(Batch(notifications: received, gap: nil))
            lastNotificationAt = now
            notificationsReceived += received.count
        }
        guard let owner = detach(requestID) else { return }
        if owner.request.kind == .connect, failure.mayHaveLostEvents { answerLost("\(failure)") }
        failed(owner, Trouble(failure), bodyBytes: 0, now: now)
        flushReport()
    }

    /// A connect's answer was lost after the server may have put events in it (a dead poll,
    /// an answer cut off, too large or unreadable): Bayeux servers do not send them again, so
    /// a gap marker tells consumers, as after a re-handshake.
    mutating func answerLost(_ why: String) {
        guard successfulHandshakes > 0 else { return }
        pendingStores.append(Batch(notifications: [], gap: SessionGap(reason: "a long poll's answer was lost (\(why)); notifications in it may be missing", session: successfulHandshakes)))
    }

    /// The last `.store` is committed: the next request may go.
    public mutating func storeCommitted(now: Instant) {
        guard storeInFlight else { return }
        storeInFlight = false
        pendingStores.removeFirst()
        storeBackoff.reset()
        storeDue = nil
        flushReport()
    }

    /// The last `.store` could not be committed: it is offered again after a backoff, and
    /// nothing is sent meanwhile (the session may expire; a handshake then follows).
    public mutating func storeFailed(now: Instant) {
        guard storeInFlight else { return }
        storeInFlight = false
        let delay = storeBackoff.nextDelay()
        storeDue = now.advanced(by: delay)
        lastError = "inbox commit failed; retrying in \(delay.readable)"
        note("could not store received notifications; nothing is polled until they are stored", .error)
        flushReport()
    }

    /// Stops the session: outstanding requests are cancelled and, if a session exists, a
    /// disconnect is sent (after pending stores). Ends with `.stopped(.requested)`.
    public mutating func stop(now: Instant) {
        guard terminal == nil, path != .disconnecting, path != .finished else { return }
        cancelAll()
        toSubscribe = []
        toUnsubscribe = []
        if sessionLive && clientID != nil {
            path = .disconnecting
        } else {
            finish(.disconnected)
        }
        flushReport()
    }

    /// Replaces the wanted channels: new ones are subscribed, dropped ones unsubscribed (now if
    /// a session exists, else after the next handshake).
    public mutating func setChannels(_ channels: [String], now: Instant) {
        var unique: [String] = []
        for channel in channels where !unique.contains(channel) { unique.append(channel) }
        wanted = unique
        guard clientID != nil, sessionLive else { return }
        let inFlight = control?.request.kind == .subscribe ? control!.request.subscriptions : []
        toSubscribe = toSubscribe.filter { wanted.contains($0) }
        for channel in wanted where !subscribed.contains(channel) && !toSubscribe.contains(channel) && !inFlight.contains(channel) {
            toSubscribe.append(channel)
        }
        for channel in subscribed.union(inFlight).sorted() where !wanted.contains(channel) && !toUnsubscribe.contains(channel) {
            toUnsubscribe.append(channel)
        }
    }

    // MARK: Actions

    /// What to do now. Call it after every input and whenever a `.wait` ends, until it answers
    /// `.wait`, `.idle` or `.stopped`.
    public mutating func nextAction(now: Instant) -> Action {
        for _ in 0..<8 {
            expireOverdue(now: now)
            flushReport()
            if !outbox.isEmpty { return outbox.removeFirst() }

            // Persist before you poll again.
            if storeInFlight { return waitForDeadlines() ?? .idle }
            if let batch = pendingStores.first {
                if let due = storeDue, now < due { return .wait(until: earliest([due, poll?.deadline, control?.deadline])!) }
                storeInFlight = true
                return .store(notifications: batch.notifications, gap: batch.gap)
            }

            if let terminal {
                if case .stopped(let reason) = terminal { return .stopped(reason) }
                return .stopped(.requested)
            }

            let before = path
            if let send = nextSend(now: now) { return send }
            if path != before || !outbox.isEmpty { continue }  // e.g. an expired session turned into a handshake
            break
        }
        if let until = earliest([pathDue, pendingControlDue, poll?.deadline, control?.deadline]) {
            return .wait(until: until)
        }
        return .idle
    }

    // MARK: Sending

    private mutating func nextSend(now: Instant) -> Action? {
        switch path {
        case .handshake(let due) where now >= due && poll == nil && control == nil:
            advice = nil  // clear stored advice before a new handshake
            handshakesSent += 1
            let request = BayeuxRequest.handshake(id: newRequestID(), messageID: newMessageID(),
                                                  timeout: configuration.requestedTimeout, ext: configuration.handshakeExt)
            path = .awaitingHandshake
            return send(request, lane: \.poll, deadline: now.advanced(by: configuration.pollDeadlineMargin))

        case .connect(let due) where now >= due && poll == nil:
            guard let clientID else {
                scheduleHandshake(due: now, cause: "no session")
                return nil
            }
            let reference = unconnectedSince ?? lastSessionContact
            if let reference, reference.duration(to: now) > sessionLifetime {
                let cause = "session presumed expired: no successful connect for \(reference.duration(to: now).readable) (longer than timeout + interval + margin, \(sessionLifetime.readable))"
                note(cause, .warning)
                scheduleHandshake(due: now, cause: cause)
                return nil
            }
            let timeout: Duration = firstConnectPending ? .zero : grantedTimeout
            let request = BayeuxRequest.connect(id: newRequestID(), messageID: newMessageID(), clientID: clientID, timeout: timeout)
            path = .awaitingConnect
            return send(request, lane: \.poll, deadline: now.advanced(by: grantedTimeout + configuration.pollDeadlineMargin))

        case .disconnecting where control == nil:
            guard let clientID else {
                finish(.disconnected)
                return nil
            }
            let request = BayeuxRequest.disconnect(id: newRequestID(), messageID: newMessageID(), clientID: clientID)
            return send(request, lane: \.control, deadline: now.advanced(by: configuration.pollDeadlineMargin))

        default:
            break
        }

        // The control connection: (un)subscriptions while the session lives.
        guard control == nil, sessionLive, let clientID else { return nil }
        if let due = controlDue, now < due { return nil }
        if !toUnsubscribe.isEmpty {
            let channels = toUnsubscribe
            toUnsubscribe = []
            let request = BayeuxRequest.unsubscribe(id: newRequestID(), messageIDs: channels.map { _ in newMessageID() },
                                                    clientID: clientID, channels: channels)
            return send(request, lane: \.control, deadline: now.advanced(by: configuration.pollDeadlineMargin))
        }
        if !toSubscribe.isEmpty {
            let channels = toSubscribe
            toSubscribe = []
            let request = BayeuxRequest.subscribe(id: newRequestID(), messageIDs: channels.map { _ in newMessageID() },
                                                  clientID: clientID, channels: channels)
            return send(request, lane: \.control, deadline: now.advanced(by: configuration.pollDeadlineMargin))
        }
        if path == .subscribing {
            // Nothing (left) to subscribe: go on to the first connect.
            path = .connect(due: now)
        }
        return nil
    }

    private mutating func send(_ request: BayeuxRequest, lane: WritableKeyPath<BayeuxSession, Outstanding?>, deadline: Instant) -> Action {
        self[keyPath: lane] = Outstanding(request: request, deadline: deadline)
        return .send(request, deadline: deadline)
    }

    // MARK: Helpers

    /// The hold time in force: what we ask for, but never more than the newest advice's
    /// positive `timeout`. Servers advise their maximum (Faye always its own timeout, whatever
    /// was asked), and a connect that asks for more than a server allows can lose the session
    /// silently (Faye answers it when the session dies). A server that holds longer than we
    /// asked is cut at our deadline: the network in between would not keep the poll anyway.
    /// (A `timeout: 0` in advice is ignored: it may echo our first connect's `timeout: 0` and
    /// would make every later poll look dead after the margin.)
    var grantedTimeout: Duration {
        if let timeout = advice?.timeout, timeout > .zero { return min(timeout, configuration.requestedTimeout) }
        return configuration.requestedTimeout
    }

    /// The advised interval, zero when absent (negative values stop the session before use).
    var interval: Duration {
        max(advice?.interval ?? .zero, .zero)
    }

    /// How long the server keeps a session without a connect: timeout + interval + margin.
    var sessionLifetime: Duration {
        grantedTimeout + interval + configuration.pollDeadlineMargin
    }

    /// A session exists and is in use (not handshaking, not ending).
    var sessionLive: Bool {
        switch path {
        case .subscribing, .connect, .awaitingConnect: return true
        default: return false
        }
    }

    private var pathDue: Instant? {
        switch path {
        case .handshake(let due), .connect(let due): return due
        default: return nil
        }
    }

    private var pendingControlDue: Instant? {
        guard control == nil, sessionLive, !(toSubscribe.isEmpty && toUnsubscribe.isEmpty) else { return nil }
        return controlDue
    }

    private func waitForDeadlines() -> Action? {
        earliest([poll?.deadline, control?.deadline]).map { .wait(until: $0) }
    }

    private func earliest(_ instants: [Instant?]) -> Instant? {
        instants.compactMap { $0 }.min()
    }

    mutating func newRequestID() -> BayeuxRequestID {
        nextRequestNumber += 1
        return BayeuxRequestID(nextRequestNumber)
    }

    mutating func newMessageID() -> String {
        nextMessageNumber += 1
        return String(nextMessageNumber)
    }

    /// Removes and returns the outstanding request with this id, nil if none (stale).
    mutating func detach(_ id: BayeuxRequestID) -> Outstanding? {
        if let outstanding = poll, outstanding.request.id == id {
            poll = nil
            return outstanding
        }
        if let outstanding = control, outstanding.request.id == id {
            control = nil
            return outstanding
        }
        return nil
    }

    /// A request still outstanding at its deadline is dead: cancel it and treat it as failed.
    private mutating func expireOverdue(now: Instant) {
        for lane in [\BayeuxSession.poll, \BayeuxSession.control] {
            guard let outstanding = self[keyPath: lane], outstanding.deadline <= now else { continue }
            self[keyPath: lane] = nil
            outbox.append(.cancel(outstanding.request.id))
            if outstanding.request.kind == .connect { answerLost("\(BayeuxFailure.deadlineExceeded)") }
            failed(outstanding, Trouble(.deadlineExceeded), bodyBytes: 0, now: now)
        }
    }

    /// Cancels every outstanding request (their late answers still get their events stored).
    mutating func cancelAll() {
        for outstanding in [poll, control].compactMap({ $0 }) {
            outbox.append(.cancel(outstanding.request.id))
        }
        poll = nil
        control = nil
    }

    mutating func finish(_ phase: BayeuxPhase) {
        cancelAll()
        terminal = phase
        path = .finished
        toSubscribe = []
        toUnsubscribe = []
    }

    /// The phase as `status` shows it.
    var phase: BayeuxPhase {
        if let terminal { return terminal }
        switch path {
        case .notStarted, .finished: return .disconnected
        case .handshake, .awaitingHandshake: return .handshaking
        case .subscribing: return .unconnected
        case .connect, .awaitingConnect: return lastConnectSucceeded ? .connected : .unconnected
        case .disconnecting: return .disconnecting
        }
    }

    /// Remembers why the next report happens (the loudest reason of this step wins).
    mutating func note(_ text: String, _ severity: BayeuxReport.Severity) {
        if let pending = pendingReason, pending.severity > severity { return }
        pendingReason = (text, severity)
    }

    /// Queues a `.report` if the phase changed or something loud happened.
    mutating func flushReport() {
        let current = phase
        guard current != reportedPhase || pendingReason != nil else { return }
        let severity: BayeuxReport.Severity
        if let pending = pendingReason {
            severity = pending.severity
        } else if case .stopped = current {
            severity = .error
        } else {
            severity = .info
        }
        outbox.append(.report(BayeuxReport(previous: reportedPhase, phase: current, reason: pendingReason?.text, severity: severity)))
        reportedPhase = current
        pendingReason = nil
    }
}

extension Duration {
    /// `1.5 s`, `4 min 10 s`: for messages.
    var readable: String {
        let (seconds, attoseconds) = components
        if seconds < 60 {
            let total = Double(seconds) + Double(attoseconds) * 1e-18
            let tenths = Int((total * 10).rounded())
            return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
        }
        let minutes = seconds / 60
        let rest = seconds % 60
        return rest == 0 ? "\(minutes) min" : "\(minutes) min \(rest) s"
    }
}
