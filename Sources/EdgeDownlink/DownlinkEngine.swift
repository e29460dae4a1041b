import EdgeBuffer
import EdgeStore
import EdgeTransport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the Bayeux session over libcurl and commits what arrives to the inbox.
///
/// `BayeuxSession` decides everything; this actor only carries out its actions: POSTs on two
/// connections of their own (the long poll, and the control connection for subscribe and
/// disconnect, so they never queue behind a poll held for minutes), one SQLite transaction
/// per received batch before the next request, and status and audit rows. Timers run on the
/// monotonic clock; wall-clock time is read only to stamp rows.
///
/// A Service: graceful shutdown sends a disconnect (bounded by `shutdownGrace`) and returns;
/// cancellation returns at once. A session the server ended for good (`reconnect: none`)
/// keeps the engine alive but idle, reported in `status` and the audit, so the uplink in the
/// same daemon goes on.
public actor DownlinkEngine: Service {
    enum Input: Sendable {
        case answered(BayeuxRequestID, Result<HTTPResponse, TransportError>, BayeuxAnswerStream)
        /// A streamed answer's bytes are arriving.
        case arriving(BayeuxRequestID)
        case tick
        case shutdown
    }

    public let settings: DownlinkSettings
    let databasePath: String
    let databaseOptions: DatabaseOptions
    let logger: Logger
    let pollClient: HTTPClient
    let controlClient: HTTPClient
    /// How long a graceful shutdown may take to say goodbye to the server.
    let shutdownGrace: Duration = .seconds(3)

    private var session: BayeuxSession<ContinuousClock.Instant>
    private let clock = ContinuousClock()
    private nonisolated let inputs: AsyncStream<Input>
    private nonisolated let feed: AsyncStream<Input>.Continuation
    private var inflight: [BayeuxRequestID: Task<Void, Never>] = [:]
    private var connection: Connection?
    private var lastPurge: ContinuousClock.Instant?
    private var lastStateWrite: ContinuousClock.Instant?

    // Counters for status and callers.
    private var stored: Int64 = 0
    private var duplicates: Int64 = 0
    private var gaps: Int64 = 0
    private var lastStoredAt: Int64?
    private var storeError: String?

    public init(settings: DownlinkSettings, databasePath: String, databaseOptions: DatabaseOptions, logger: Logger) throws {
        self.settings = settings
        self.databasePath = databasePath
        self.databaseOptions = databaseOptions
        self.logger = logger
        self.pollClient = try HTTPClient(configuration: settings.pollTransport, logger: logger)
        self.controlClient = try HTTPClient(configuration: settings.controlTransport, logger: logger)
        self.session = BayeuxSession(configuration: settings.session)
        (inputs, feed) = AsyncStream<Input>.makeStream()
    }

    /// Counters a caller (tests, a benchmark) can read.
    public struct Progress: Sendable, Equatable {
        public var phase: String
        public var stored: Int64
        public var duplicates: Int64
        public var gaps: Int64
    }

    public func progress() -> Progress {
        Progress(phase: session.status().phase.name, stored: stored, duplicates: duplicates, gaps: gaps)
    }

    public func run() async throws {
        let feed = self.feed
        try await withGracefulShutdownHandler {
            try await self.loop()
        } onGracefulShutdown: {
            feed.yield(.shutdown)
        }
        for task in inflight.values { task.cancel() }
        inflight = [:]
        await pollClient.shutdown()
        await controlClient.shutdown()
    }

    // MARK: The loop

    private func loop() async throws {
        logger.info("downlink started", metadata: ["edgebuf.downlink.url": "\(TransportError.redact(url: settings.session.url))"])
        var iterator = inputs.makeAsyncIterator()
        var shutdownBy: ContinuousClock.Instant?
        session.start(now: clock.now, earlierSession: earlierSession())
        while !Task.isCancelled {
            if let shutdownBy, clock.now >= shutdownBy {
                logger.notice("downlink stopped without a clean disconnect (shutdown grace period over)")
                break
            }
            switch session.nextAction(now: clock.now) {
            case .send(let request, let deadline):
                launch(request, deadline: deadline)
            case .cancel(let id):
                inflight.removeValue(forKey: id)?.cancel()
            case .store(let notifications, let gap):
                if commit(notifications, gap: gap) {
                    session.storeCommitted(now: clock.now)
                } else {
                    session.storeFailed(now: clock.now)
                }
            case .report(let report):
                record(report)
            case .wait(let until):
                writeStateQuietly(force: false)  // what status shows while we wait (at most once a second)
                guard let input = await next(&iterator, until: earliest(until, shutdownBy)) else { return }
                if handle(input) { shutdownBy = shutdownBy ?? clock.now.advanced(by: shutdownGrace) }
            case .idle:
                guard let input = await next(&iterator, until: shutdownBy) else { return }
                if handle(input) { shutdownBy = shutdownBy ?? clock.now.advanced(by: shutdownGrace) }
            case .stopped(let reason):
                writeStateQuietly(force: true)
                if reason == .requested || shutdownBy != nil { return }
                // The server said not to reconnect: stay stopped (status and audit say why)
                // until edgebuf is shut down; the uplink in the same daemon goes on.
                while let input = await next(&iterator, until: nil) {
                    if case .shutdown = input { return }
                }
                return
            }
        }
        writeStateQuietly(force: true)
    }

    private func earliest(_ a: ContinuousClock.Instant, _ b: ContinuousClock.Instant?) -> ContinuousClock.Instant {
        guard let b else { return a }
        return min(a, b)
    }

    /// The next input, or a tick at `until`. Nil when the stream ended (cancellation).
    ///
    /// The tick is a Dispatch timer (`DispatchSleep`), not a sleeping task: while a long poll
    /// is held, a pending `clock.sleep` woke a thread every second (issue 12). A tick that
    /// comes early or late only makes the loop ask the session again at `clock.now`.
    private func next(_ iterator: inout AsyncStream<Input>.Iterator, until: ContinuousClock.Instant?) async -> Input? {
        var timer: DispatchWorkItem?
        if let until {
            let feed = self.feed
            timer = DispatchSleep.after(clock.now.duration(to: until)) { feed.yield(.tick) }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await iterator.next()
        } onCancel: { [feed] in
            feed.finish()
        }
    }

    /// Applies an input to the session; true for a shutdown request.
    private func handle(_ input: Input) -> Bool {
        switch input {
        case .tick:
            return false
        case .shutdown:
            session.stop(now: clock.now)
            return true
        case .arriving(let id):
            // No dead poll: bytes flow. An answer that stops arriving is ended by the
            // transport's low-speed watchdog; this deadline is only the backstop behind it.
            session.answerArriving(requestID: id, until: clock.now.advanced(by: settings.pollTransport.lowSpeedTime + settings.session.pollDeadlineMargin))
            return false
        case .answered(let id, let result, let stream):
            inflight[id] = nil
            let now = clock.now
            switch result {
            case .success(let response) where response.status == 200:
                session.answerStreamed(requestID: id, remainder: stream.finish(), now: now)
            case .success(let response):
                session.requestFailed(requestID: id, failure: .httpStatus(response.status, retryAfter: response.retryAfter()), now: now)
            case .failure(let error):
                switch error.kind {
                case .cancelled:
                    break  // we aborted it; the session already moved on (and the stream may still be in use)
                case .timedOut:
                    // curl's own deadline or the byte-idle watchdog: a dead poll.
                    session.requestFailed(requestID: id, failure: .deadlineExceeded, received: stream.finish().notifications, now: now)
                default:
                    session.requestFailed(requestID: id, failure: .transport(error.label), received: stream.finish().notifications, now: now)
                }
            }
            return false
        }
    }

    /// POSTs `request` on its connection; the answer comes back as an input.
    private func launch(_ request: BayeuxRequest, deadline: ContinuousClock.Instant) {
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ]
        if let username = settings.session.username, let password = settings.session.password {
            headers.append(("Authorization", "Basic " + Data("\(username):\(password.value)".utf8).base64EncodedString()))
        }
        // curl's own limit a second after the session's deadline: the session cancels first,
        // curl is the backstop.
        let timeout = max(clock.now.duration(to: deadline), .zero) + .seconds(1)
        let id = request.id
        let feed = self.feed
        let stream = BayeuxAnswerStream(maximumMessageBytes: settings.transport.maximumResponseBodyBytes,
                                        progress: { feed.yield(.arriving(id)) }) { [weak self] notifications, gapReason in
            guard let self else { return false }
            return Self.waiting { await self.commitStreamed(notifications, gapReason: gapReason) }
        }
        let http = HTTPRequest(method: .post, url: settings.session.url, headers: headers, body: request.body, timeout: timeout,
                               bodySink: StreamSink(stream))
        let client = request.kind.usesLongPollConnection ? pollClient : controlClient
        logger.debug("downlink request", metadata: ["edgebuf.downlink.request": "\(request.kind.rawValue)", "edgebuf.downlink.id": "\(id)"])
        inflight[id] = Task {
            let result: Result<HTTPResponse, TransportError>
            do throws(TransportError) {
                result = .success(try await client.send(http))
            } catch {
                result = .failure(error)
            }
            feed.yield(.answered(id, result, stream))
        }
    }

    /// Feeds a transfer's body to its answer stream.
    private final class StreamSink: ResponseBodySink {
        let stream: BayeuxAnswerStream
        init(_ stream: BayeuxAnswerStream) { self.stream = stream }
        func receive(_ bytes: UnsafeRawBufferPointer) -> Bool { stream.receive(bytes) }
    }

    /// Runs `work` on the cooperative pool and blocks this (transfer) thread until it is done.
    /// Only for threads of our own: the engine never waits synchronously for a transfer, so
    /// the actor is free to run the commit while the transfer waits for it.
    private static func waiting(_ work: @escaping @Sendable () async -> Bool) -> Bool {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex(false)
        Task {
            let value = await work()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLock { $0 }
    }

    /// Commits a chunk of a streamed answer, or the gap marker of a message dropped for its
    /// size, while the answer is still arriving.
    private func commitStreamed(_ notifications: [InboxNotification], gapReason: String?) -> Bool {
        commit(notifications, gap: gapReason.map { SessionGap(reason: $0, session: session.successfulHandshakes) })
    }

    // MARK: The inbox

    /// Why the first handshake of this engine must leave a gap marker: an earlier run kept
    /// its downlink state in this database, so it had (or was opening) a session whose last
    /// answer a crash may have cut off, and nothing published while no session was open is
    /// kept by the server. Nil for a database no downlink has used. A state that cannot be
    /// read counts as an earlier run: a needless marker costs a consumer one check, a missing
    /// one hides a loss.
    private func earlierSession() -> String? {
        let previous: (updatedAt: Int64, state: String)?
        do {
            previous = try RuntimeState.load(try db(), component: "downlink")
        } catch {
            connection = nil
            return "edgebuf started; whether an earlier run left a gap could not be read (\(error))"
        }
        guard let previous else { return nil }
        return "edgebuf started again; the previous run's downlink was last seen at \(Timestamp.format(milliseconds: previous.updatedAt)): notifications published since, or in an answer it had not stored, may be missing"
    }

    private func db() throws -> Connection {
        if let connection { return connection }
        let opened = try Database.open(path: databasePath, options: databaseOptions)
        connection = opened
        return opened
    }

    /// Commits one received batch (gap marker first), its audit row and the state; runs the
    /// retention purge at most once a minute in the same transaction. False when it failed.
    private func commit(_ notifications: [InboxNotification], gap: SessionGap?) -> Bool {
        let rows = notifications.map {
            InboxNotificationRow(channel: $0.channel, dedupeKey: $0.key.value, realtimeAction: $0.realtimeAction, data: $0.data)
        }
        do {
            let db = try db()
            let now = Timestamp.nowMilliseconds()
            let purgeDue = lastPurge.map { $0.duration(to: clock.now) >= .seconds(60) } ?? true
            let result = try db.transaction {
                let store = InboxStore(db)
                let result = try store.insert(rows, gap: gap.map { ($0.reason, $0.session) }, receivedAt: now)
                if purgeDue {
                    try store.purge(maxRecords: settings.retention.maxRecords, maxAgeMilliseconds: settings.retention.maxAgeMilliseconds, now: now)
                }
                return result
            }
            if purgeDue { lastPurge = clock.now }
            stored += Int64(result.stored)
            duplicates += Int64(result.duplicates)
            if result.gapID != nil { gaps += 1 }
            lastStoredAt = now
            storeError = nil
            if let gap {
                logger.warning("downlink session re-established: gap marker stored", metadata: ["edgebuf.downlink.reason": "\(gap.reason)"])
            }
            writeStateQuietly(force: false)
            return true
        } catch {
            storeError = "\(error)"
            connection = nil  // reopen next time (the file may have been fixed or replaced)
            logger.error("downlink could not store received notifications; nothing is polled until they are stored",
                         metadata: ["edgebuf.downlink.error": "\(error)"])
            return false
        }
    }

    // MARK: Reports and status

    private func record(_ report: BayeuxReport) {
        let metadata: Logger.Metadata = ["edgebuf.downlink.phase": "\(report.phase.name)", "edgebuf.downlink.reason": "\(report.reason ?? "")"]
        switch report.severity {
        case .info: logger.info("downlink \(report)", metadata: metadata)
        case .warning: logger.warning("downlink \(report)", metadata: metadata)
        case .error: logger.error("downlink \(report)", metadata: metadata)
        }
        // Loud events (refused credentials, a server that says not to reconnect) go to the
        // audit too: an operator can prove when and why the downlink stopped receiving.
        if report.severity == .error {
            do {
                let db = try db()
                var detail = JSONObject()
                detail.add("phase", report.phase.name)
                detail.add("previous", report.previous.name)
                detail.add("reason", report.reason ?? report.phase.description)
                try db.transaction { _ = try AuditLog(db).append("downlink_error", detail) }
            } catch {
                logger.error("downlink could not audit an error", metadata: ["edgebuf.downlink.error": "\(error)"])
            }
        }
        writeStateQuietly(force: true)
    }

    private func writeStateQuietly(force: Bool) {
        let now = clock.now
        if !force, let last = lastStateWrite, last.duration(to: now) < .seconds(1) { return }
        do {
            let db = try db()
            try db.transaction { try writeState(db) }
            lastStateWrite = now
        } catch {
            logger.warning("downlink could not write its state", metadata: ["edgebuf.downlink.error": "\(error)"])
        }
    }

    private func writeState(_ db: Connection) throws {
        let nowInstant = clock.now
        let nowWall = Timestamp.nowMilliseconds()
        func wall(_ instant: ContinuousClock.Instant?) -> String? {
            instant.map { Timestamp.format(milliseconds: nowWall - Self.milliseconds($0.duration(to: nowInstant))) }
        }
        let status = session.status()
        var state = JSONObject()
        state.add("url", TransportError.redact(url: settings.session.url))
        state.add("phase", status.phase.name)
        if case .stopped(let reason) = status.phase { state.add("stop_reason", reason.description) }
        state.add("granted_timeout_ms", Self.milliseconds(status.grantedTimeout))
        state.add("requested_timeout_ms", Self.milliseconds(status.requestedTimeout))
        state.add("interval_ms", Self.milliseconds(status.interval))
        state.add("subscribed", status.subscribedChannels)
        state.add("last_answer_at", wall(status.lastAnswerAt))
        state.add("last_notification_at", wall(status.lastNotificationAt))
        state.add("notifications_received", status.notificationsReceived)
        state.add("stored", stored)
        state.add("duplicates", duplicates)
        state.add("gap_markers", gaps)
        state.add("reconnects", status.reconnects)
        state.add("handshakes", status.handshakes)
        state.add("consecutive_failures", status.consecutiveFailures)
        state.add("current_backoff_ms", status.currentBackoff.map { Self.milliseconds($0) })
        state.add("next_attempt_in_ms", status.nextAttemptAt.map { max(Self.milliseconds(nowInstant.duration(to: $0)), 0) })
        state.add("last_error", storeError ?? status.lastError)
        state.add("session", status.sessionFingerprint)
        state.add("pid", Int(getpid()))
        try RuntimeState.save(db, component: "downlink", state: state, at: nowWall)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
