import EdgeBuffer
import EdgeStore
import EdgeTransport
import Foundation
import Logging
import ServiceLifecycle

/// Drains the outbox to the platform: reads a window of records in drain order, packs them,
/// and lets `SyncStateMachine` decide what to send and what each answer means. Every store
/// change (delete after a 2xx, dead-letter) commits together with its request's audit row.
///
/// While the last queued request is sent and committed, the next window is read ahead on a
/// second connection (`WindowReader`), after the records still queued; it is used only if
/// every queued request is delivered, and read afresh otherwise.
///
/// A Service: `run()` returns on graceful shutdown or cancellation; a request in flight is
/// abandoned (curl aborts it) and nothing is deleted for it, so it is sent again next time.
public actor SyncEngine: Service {
    public let configuration: UplinkConfiguration
    let databasePath: String
    let databaseOptions: DatabaseOptions
    let logger: Logger
    let wake: WakeSignal
    let client: HTTPClient
    let packer: Packer
    private var machine: SyncStateMachine<ContinuousClock.Instant>
    private var connection: Connection?
    private var reader: WindowReader?
    /// The next window, read while the last request of the queue is sent and committed (see
    /// `readAhead()`).
    private var readAheadWindow: Task<Packer.Result, any Error>?
    private let clock = ContinuousClock()
    /// Wall-clock ms of the last delivery, for status.
    private var lastSuccessAt: Int64?
    private var lastErrorText: String?
    private var delivered: Int64 = 0
    private var deliveredBytes: Int64 = 0
    private var stopReason: String?
    /// Audit rows that changed nothing in the outbox (a retry, a split, an authentication) and
    /// could not be written for a full disk: written, oldest first, with the next commit that
    /// succeeds (`appendAudit`). Lost (and logged as such) if edgebuf stops first.
    private var deferredAudit: [AuditRow] = []

    /// Counters a caller (flush) can read.
    public struct Progress: Sendable {
        public var deliveredRecords: Int64
        public var deliveredBytes: Int64
        public var phase: String
        public var lastError: String?
    }

    public init(configuration: UplinkConfiguration, databasePath: String, databaseOptions: DatabaseOptions,
                wake: WakeSignal = WakeSignal(), logger: Logger) throws {
        self.configuration = configuration
        self.databasePath = databasePath
        self.databaseOptions = databaseOptions
        self.logger = logger
        self.wake = wake
        self.client = try HTTPClient(configuration: configuration.transport, logger: logger)
        self.packer = Packer(limits: configuration.limits)
        self.machine = SyncStateMachine(configuration: configuration.sync, random: SystemRandomNumberGenerator())
    }

    /// The kinds this uplink's platform carries; other kinds stay in the outbox.
    var kinds: [RecordKind] { RecordKind.allCases.filter { Platform(for: $0) == configuration.platform } }

    public func progress() -> Progress {
        Progress(deliveredRecords: delivered, deliveredBytes: deliveredBytes,
                 phase: machine.status(now: clock.now).phase.name, lastError: lastErrorText)
    }

    /// Runs until cancelled or shut down gracefully.
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await self.loop(untilEmpty: false)
        }
        await client.shutdown()
    }

    /// Drains until the outbox holds none of this platform's records; returns true then, or
    /// false when cancelled first.
    public func drain() async throws -> Bool {
        let emptied = try await loop(untilEmpty: true)
        await client.shutdown()
        return emptied
    }

    private func db() throws -> Connection {
        if let connection { return connection }
        let opened = try Database.open(path: databasePath, options: databaseOptions)
        connection = opened
        return opened
    }

    /// The reading connection, opened once `db()` has checked and migrated the file.
    private func windowReader() throws -> WindowReader {
        if let reader { return reader }
        _ = try db()
        let opened = try WindowReader(databasePath: databasePath, options: databaseOptions, packer: packer)
        reader = opened
        return opened
    }

    @discardableResult
    private func loop(untilEmpty: Bool) async throws -> Bool {
        wake.watch(databasePath: databasePath)
        if !wake.isWatching {
            logger.warning("cannot watch the database for other processes' commits (inotify unavailable: fs.inotify.max_user_instances used up?); looking for new records once a second instead")
        }
        defer {
            wake.stop()
            discardReadAhead()
        }
        logger.info("uplink started", metadata: ["edgebuf.uplink.platform": "\(configuration.platform.rawValue)"])
        while !Task.isCancelled {
            let step = machine.nextStep(now: clock.now)
            switch step {
            case .needRecords:
                var packed = try await nextWindow()
                if packed.requests.contains(where: { $0.kind == .operationStatus }) {
                    packed.requests = try withholdOutOfOrderStatuses(packed.requests)
                    if packed.requests.isEmpty && packed.oversized.isEmpty { continue }
                }
                if packed.requests.isEmpty && packed.oversized.isEmpty {
                    if wake.isPaused {
                        // Watch other processes' commits again, then read once more: one
                        // committed while the watch was paused is found by that read.
                        wake.resume()
                        continue
                    }
                    try saveStateUnlessFull()
                    if untilEmpty { return true }
                    // Idle: sleep until an enqueue (here or in another process) wakes us. The
                    // timeout is only a safety net, not how new records are found, unless
                    // the watch could not be set up: then it is how they are found.
                    await wake.wait(timeout: wake.isWatching ? .seconds(30) : .seconds(1))
                    continue
                }
                // Draining: our own commits must not wake the watcher for every WAL write.
                wake.pause()
                if !packed.oversized.isEmpty { try deadLetterOversized(packed.oversized) }
                machine.enqueue(packed.requests)
            case .authenticate(let deviceID):
                try await authenticate(deviceID)
            case .send(let request, let attempt, let token):
                if attempt == 1 && readAheadWindow == nil && machine.queuedRequests.count == 1 { try readAhead() }
                try await send(request, attempt: attempt, token: token)
            case .wait(let until):
                try saveStateUnlessFull()
                try? await clock.sleep(until: until)
            case .busy:
                await Task.yield()
            }
        }
        try? saveState()
        if !deferredAudit.isEmpty {
            let requests = deferredAudit.filter { $0.event == "request" }.count
            logger.error("uplink stopped with the audit rows of \(requests) requests and \(deferredAudit.count - requests) authentications not written: the disk or the file limit stayed full")
        }
        return false
    }

    /// The oldest records of the most urgent class that has any, packed as they are read, up
    /// to the first full request past the window's budget: the window read ahead if there is
    /// one, read now otherwise. IoTDA: only the configured device's records (a gateway's
    /// children travel under its id); records for other devices wait in the outbox, visible
    /// in `status`, blocking nothing.
    private func nextWindow() async throws -> Packer.Result {
        if let readAheadWindow {
            self.readAheadWindow = nil
            return try await readAheadWindow.value
        }
        return try await startReading(after: [:]).value
    }

    /// Starts reading a window on the reader's connection.
    private func startReading(after: [RecordClass: Int64]) throws -> Task<Packer.Result, any Error> {
        let reader = try windowReader()
        let kinds = self.kinds
        let target = configuration.platform == .iotda ? configuration.deviceID : nil
        let budget = Packer.Window.Budget(maxRecords: configuration.windowRecords, maxBytes: configuration.windowBytes)
        return Task.detached {
            try await reader.nextWindow(kinds: kinds, target: target, budget: budget, after: after)
        }
    }

    /// Starts reading the window after the queued requests (the last of which is about to be
    /// sent for the first time; a retry reads nothing ahead): it runs on the reader's
    /// connection while this one sends and commits. Per class, it starts after the newest
    /// record queued, so no record is read twice and each device's order holds (requests
    /// leave the queue oldest first).
    private func readAhead() throws {
        var after: [RecordClass: Int64] = [:]
        for request in machine.queuedRequests {
            after[request.recordClass] = max(after[request.recordClass] ?? 0, request.recordIDs.max() ?? 0)
        }
        readAheadWindow = try startReading(after: after)
    }

    /// Drops the window read ahead: a queued request was not delivered (it is retried, split
    /// or dead-lettered, and its window may be older than what waits by then), or the loop ends.
    private func discardReadAhead() {
        readAheadWindow?.cancel()
        readAheadWindow = nil
    }

    /// Applies `OperationStatusOrder` to the window's operation statuses, on the facts as
    /// committed now (the window may have been read ahead, before the last delivery): the
    /// ones it withholds are dead-lettered with its reason, in one transaction; the others
    /// are returned, in order.
    private func withholdOutOfOrderStatuses(_ requests: [UplinkRequest]) throws -> [UplinkRequest] {
        let db = try db()
        let store = OperationStore(db)
        var kept: [UplinkRequest] = []
        var withheld: [(Int64, String)] = []
        for request in requests {
            guard request.kind == .operationStatus, let id = request.recordIDs.first,
                  let status = OperationStatus(payload: request.body), let operation = request.operationID else {
                kept.append(request)
                continue
            }
            let decision = OperationStatusOrder.decide(recordID: id, status: status, waiting: try store.pendingStatuses(of: operation),
                                                       delivered: try store.deliveredFinal(of: operation))
            switch decision {
            case .send: kept.append(request)
            case .withhold(let reason): withheld.append((id, reason))
            }
        }
        if !withheld.isEmpty {
            try db.transaction {
                for (id, reason) in withheld {
                    try DeadLetterStore(db).deadLetter(ids: [id], because: RejectionReason(reason: reason), now: Timestamp.nowMilliseconds())
                }
            }
            logger.notice("uplink withheld \(withheld.count) operation status(es) that would break the operation's order (dead-lettered with the reason)")
        }
        return kept
    }

    private func deadLetterOversized(_ records: [StoredRecord]) throws {
        let db = try db()
        try db.transaction {
            for record in records {
                try DeadLetterStore(db).deadLetter(ids: [record.id], because: packer.oversizeReason(record), now: Timestamp.nowMilliseconds())
            }
        }
    }

    // MARK: Authentication (IoTDA)

    private func authenticate(_ deviceID: String) async throws {
        guard deviceID == configuration.deviceID, let secret = configuration.secret else {
            // No credentials for this device: its records cannot be sent by this configuration.
            let result = ExchangeResult.response(PlatformResponse(status: 401, body: Array(#"{"error_code":"IOTDA.000002","error_msg":"no secret configured for this device"}"#.utf8)))
            apply(machine.authenticationFailed(deviceID: deviceID, result: result, now: clock.now))
            lastErrorText = "no credentials configured for device \(deviceID): set [uplink] device_id and secret"
            return
        }
        let auth = IoTDAAuth.request(deviceID: deviceID, secret: secret, signType: configuration.signType, now: Timestamp.nowMilliseconds())
        let request = HTTPRequest(method: .post, url: configuration.url + auth.path, headers: auth.headers, body: auth.body)
        let started = clock.now
        let result = await exchange(request)
        var detail = JSONObject()
        detail.add("platform", configuration.platform.rawValue)
        detail.add("path", auth.path)
        detail.add("device_id", deviceID)
        if case .response(let response) = result {
            detail.add("http_status", response.status)
            if response.status == 200, let token = try? IoTDAAuth.parseAnswer(response.body) {
                detail.add("outcome", "authenticated")
                apply(machine.authenticated(deviceID: deviceID, token: token, now: clock.now))
                try audit("authenticated", detail, started: started)
                return
            }
        }
        detail.add("outcome", "failed")
        let actions = machine.authenticationFailed(deviceID: deviceID, result: result, now: clock.now)
        // The classification keeps the platform's error code and message (IOTDA.000002 is what
        // says the device id or secret is wrong); the bare status ("HTTP 401") does not.
        lastErrorText = "authentication of \(deviceID) failed: \(Classification.classify(result, platform: .iotda).summary)"
        logger.warning("uplink authentication failed", metadata: ["edgebuf.uplink.error": "\(lastErrorText ?? "")"])
        apply(actions)
        try audit("authentication_failed", detail, started: started)
    }

    /// Audits an authentication. On a full disk the row waits, like a retry's, for the next
    /// commit that fits (it is not waited for here: the drain that would free the space comes
    /// after the authentication, and the exchange sent no record).
    private func audit(_ event: String, _ detail: JSONObject, started: ContinuousClock.Instant) throws {
        var detail = detail
        detail.add("duration_ms", Self.milliseconds(clock.now - started))
        let row = AuditRow(event: event, detail: detail, at: Timestamp.nowMilliseconds())
        let db = try db()
        do {
            let written = try db.transaction { try appendAudit(row, db, withDeferred: true) }
            deferredAudit.removeFirst(written)
        } catch let error as DatabaseError where error.isDiskFull {
            deferredAudit.append(row)
            logger.error("uplink could not audit an authentication: the disk or the file limit is full; the row is written with the next commit that succeeds",
                         metadata: ["edgebuf.uplink.error": "\(error)"])
        }
    }

    // MARK: Sending

    private func send(_ request: UplinkRequest, attempt: Int, token: AccessToken?) async throws {
        var headers = request.platform.headers(accessToken: token, kind: request.kind)
        if request.platform == .cumulocity, let user = configuration.username, let password = configuration.password {
            let credentials = Data("\(user):\(password.value)".utf8).base64EncodedString()
            headers.append(("Authorization", "Basic \(credentials)"))
        }
        let http = HTTPRequest(method: HTTPRequest.Method(rawValue: request.method), url: configuration.url + request.path, headers: headers, body: request.body)
        let started = clock.now
        let result = await exchange(http)
        if Task.isCancelled { return }  // abandoned: nothing deleted, the records go again next time
        guard let decision = machine.requestFinished(request, result: result, attempt: attempt, now: clock.now) else {
            discardReadAhead()
            return
        }
        if decision.outcome.result != .delivered { discardReadAhead() }
        let row = AuditRow(event: "request", detail: auditDetail(decision.outcome, request: request, duration: clock.now - started), at: Timestamp.nowMilliseconds())
        let changesOutbox = decision.actions.contains { action in
            switch action {
            case .delete, .deadLetter, .deadLetterChild: return true
            default: return false
            }
        }
        if !changesOutbox {
            // Only an audit row to write (a retry, a split): on a full disk it waits for the
            // next commit that succeeds, and the uplink goes on; a drain must not wait for
            // space that only the drain can free.
            do {
                try commit(decision, request: request, row: row, withDeferred: true)
            } catch let error as DatabaseError where error.isDiskFull {
                deferredAudit.append(row)
                logger.error("uplink could not audit a request: the disk or the file limit is full; the row is written with the next commit that succeeds",
                             metadata: ["edgebuf.uplink.error": "\(error)"])
            }
            apply(decision.actions)
            return
        }
        // The platform has answered: what its answer means for the outbox is committed, not
        // the request sent again, however long the disk stays full. (Stopped meanwhile, the
        // records are still in the outbox and go again at the next start: at least once.)
        let committed = try await retryingWhileFull("the result of a request") {
            do {
                try commit(decision, request: request, row: row, withDeferred: true)
            } catch let error as DatabaseError where error.isDiskFull && !deferredAudit.isEmpty {
                // The waiting rows may be what does not fit: this request's own changes first.
                try commit(decision, request: request, row: row, withDeferred: false)
            }
        }
        guard committed else { return }
        apply(decision.actions)
    }

    /// An audit row of a request, written with the commit of its result.
    struct AuditRow {
        var event: String
        var detail: JSONObject
        var at: Int64
    }

    /// Runs `write` until it does not fail for a full disk (or `max_file_bytes`), waiting the
    /// uplink's backoff between attempts: a full file is a state the daemon waits out (other
    /// deletes free pages, an operator frees the disk), not a reason to stop. Other errors are
    /// thrown. False when shut down before it succeeded.
    private func retryingWhileFull(_ what: String, _ write: () throws -> Void) async throws -> Bool {
        var delay = configuration.sync.backoff.initial
        while true {
            do {
                try write()
                return true
            } catch let error as DatabaseError where error.isDiskFull {
                lastErrorText = "could not store \(what): \(error)"
                logger.error("uplink could not store \(what): the disk or the file limit is full; retrying in \(Self.milliseconds(delay)) ms",
                             metadata: ["edgebuf.uplink.error": "\(error)"])
            }
            try? await clock.sleep(for: delay)
            if Task.isCancelled { return false }
            delay = min(delay * 2, configuration.sync.backoff.maximum)
        }
    }

    /// The audit detail of a request and its outcome.
    private func auditDetail(_ outcome: RequestOutcome, request: UplinkRequest, duration: Duration) -> JSONObject {
        var detail = JSONObject()
        detail.add("platform", request.platform.rawValue)
        detail.add("path", request.path)
        detail.add("records", request.recordIDs.count)
        detail.add("first_id", request.recordIDs.first)
        detail.add("last_id", request.recordIDs.last)
        detail.add("body_bytes", request.body.count)
        detail.add("body_sha256", request.bodySHA256)
        if request.kind == .operationStatus {
            detail.add("operation_id", request.operationID)
            detail.add("status", OperationStatus(payload: request.body)?.rawValue)
        }
        detail.add("http_status", outcome.httpStatus)
        detail.add("error_code", outcome.errorCode)
        detail.add("duration_ms", Self.milliseconds(duration))
        detail.add("outcome", outcome.result.rawValue)
        detail.add("attempt", outcome.attempt)
        if outcome.result != .delivered { detail.add("detail", outcome.detail) }
        return detail
    }

    /// Applies the store actions and writes the request's audit row (after the rows that
    /// waited for space, with `withDeferred`), in one transaction.
    private func commit(_ decision: SyncDecision, request: UplinkRequest, row: AuditRow, withDeferred: Bool) throws {
        let db = try db()
        let now = Timestamp.nowMilliseconds()
        let outcome = decision.outcome
        let written = try db.transaction {
            for action in decision.actions {
                switch action {
                case .delete(let ids):
                    // The request holds the records it carries: range deletes, and the totals
                    // from their classes and sizes.
                    if ids == request.recordIDs {
                        try OutboxStore(db).removeDelivered(request.delivered())
                    } else {
                        try OutboxStore(db).removeDelivered(request.delivered(only: Set(ids)))
                    }
                    if request.kind == .operationStatus, let operation = request.operationID, let id = ids.first,
                       let status = OperationStatus(payload: request.body) {
                        // With the delete: from now on nothing may follow a final status.
                        try OperationStore(db).noteDelivered(operationID: operation, status: status, recordID: id, now: now)
                    }
                case .deadLetter(let ids, let reason), .deadLetterChild(_, let ids, let reason):
                    try DeadLetterStore(db).deadLetter(ids: ids, because: reason, now: now)
                default:
                    break
                }
            }
            let written = try appendAudit(row, db, withDeferred: withDeferred)
            try writeState(db, now: now)
            return written
        }
        deferredAudit.removeFirst(written)
        if outcome.result == .delivered {
            lastSuccessAt = now
            delivered += Int64(request.recordIDs.count)
            deliveredBytes += Int64(request.body.count)
        } else if outcome.result == .retry {
            lastErrorText = outcome.detail
        }
    }

    /// Appends the rows that waited for space (with `withDeferred`), oldest first, then `row`.
    /// Inside the caller's transaction; returns how many waiting rows it wrote, to drop from
    /// `deferredAudit` once that transaction has committed.
    private func appendAudit(_ row: AuditRow, _ db: Connection, withDeferred: Bool) throws -> Int {
        let waiting = withDeferred ? deferredAudit : []
        let audit = AuditLog(db)
        for earlier in waiting { try audit.append(earlier.event, earlier.detail, at: earlier.at) }
        try audit.append(row.event, row.detail, at: row.at)
        return waiting.count
    }

    /// Logs what the state machine decided (the store actions were committed already).
    private func apply(_ actions: [SyncAction]) {
        for action in actions {
            switch action {
            case .retryAfter(let delay):
                logger.notice("uplink backing off", metadata: ["edgebuf.uplink.backoff_ms": "\(Self.milliseconds(delay))"])
            case .unauthorized(let retryIn):
                logger.error("uplink credentials refused; nothing is sent until they are fixed", metadata: ["edgebuf.uplink.retry_in_s": "\(retryIn.components.seconds)"])
            case .slowDown(let rate):
                logger.notice("uplink rate limited", metadata: ["edgebuf.uplink.requests_per_second": "\(rate)"])
            default:
                break
            }
        }
    }

    /// One HTTP exchange, mapped to what the state machine understands.
    private func exchange(_ request: HTTPRequest) async -> ExchangeResult {
        do {
            let response = try await client.send(request)
            return .response(PlatformResponse(status: response.status, retryAfter: response.retryAfter(), body: response.body))
        } catch {
            logger.warning("uplink transport failure", metadata: ["edgebuf.uplink.error": "\(error.label)"])
            return .transportFailure(TransportFailure(reason: error.description, isTimeout: error.kind == .timedOut))
        }
    }

    // MARK: Status

    private func saveState() throws {
        let db = try db()
        try db.transaction { try writeState(db, now: Timestamp.nowMilliseconds()) }
    }

    /// `saveState`, except that a full disk only costs a stale `status` (logged), not the
    /// daemon.
    private func saveStateUnlessFull() throws {
        do {
            try saveState()
        } catch let error as DatabaseError where error.isDiskFull {
            logger.warning("uplink could not write its state: the disk or the file limit is full", metadata: ["edgebuf.uplink.error": "\(error)"])
        }
    }

    private func writeState(_ db: Connection, now: Int64) throws {
        let status = machine.status(now: clock.now)
        var state = JSONObject()
        state.add("platform", configuration.platform.rawValue)
        state.add("phase", status.phase.name)
        state.add("last_success", lastSuccessAt.map { Timestamp.format(milliseconds: $0) })
        state.add("last_error", status.lastError ?? lastErrorText)
        state.add("consecutive_failures", status.consecutiveFailures)
        state.add("current_backoff_ms", status.currentBackoff.map { Self.milliseconds($0) })
        state.add("delivered_records", delivered)
        state.add("pid", Int(getpid()))
        try RuntimeState.save(db, component: "uplink", state: state, at: now)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
