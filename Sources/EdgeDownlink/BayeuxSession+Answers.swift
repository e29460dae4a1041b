/// How the session reacts to answers and failures: the advice and error rules of
/// shared/reference/bayeux-client.md.
extension BayeuxSession {
    /// What went wrong with a request, secret-free.
    struct Trouble: Sendable {
        var summary: String
        var serverError: BayeuxServerError?
        /// The credentials were refused: wait the long credentials backoff.
        var credentials = false
        var retryAfter: Duration?

        init(summary: String, serverError: BayeuxServerError? = nil, credentials: Bool = false) {
            self.summary = summary
            self.serverError = serverError
            self.credentials = credentials
        }

        init(_ failure: BayeuxFailure) {
            summary = failure.description
            credentials = failure.refusesCredentials
            retryAfter = failure.retryAfter
        }
    }

    // MARK: Answers

    mutating func handle(_ owner: Outstanding, messages: [BayeuxMessage], bodyBytes: Int, now: Instant) {
        let request = owner.request
        switch request.kind {
        case .handshake:
            guard let reply = reply(to: request, in: messages) else {
                return pollFailed(.handshake, Trouble(summary: BayeuxError.missingReply(channel: request.kind.channel, bodyBytes: bodyBytes).description), now: now)
            }
            if let newer = reply.advice { advice = newer }
            if succeeded(reply), let id = reply.clientID, !id.isEmpty {
                handshakeSucceeded(clientID: id, now: now)
            } else {
                let summary = reply.error?.description ?? (succeeded(reply) ? "handshake reply without clientId" : "handshake unsuccessful")
                pollFailed(.handshake, Trouble(summary: summary, serverError: reply.error,
                                               credentials: reply.error?.isCredentialsRefusal ?? false), now: now)
            }

        case .connect:
            guard let reply = reply(to: request, in: messages) else {
                return pollFailed(.connect, Trouble(summary: BayeuxError.missingReply(channel: request.kind.channel, bodyBytes: bodyBytes).description), now: now)
            }
            if let newer = reply.advice { advice = newer }
            if succeeded(reply) {
                connectSucceeded(now: now)
            } else {
                pollFailed(.connect, Trouble(summary: reply.error?.description ?? "connect unsuccessful", serverError: reply.error), now: now)
            }

        case .subscribe, .unsubscribe:
            var failures: [(channel: String, error: BayeuxServerError?)] = []
            var replyAdvice: BayeuxAdvice?
            for (messageID, channel) in zip(request.messageIDs, request.subscriptions) {
                let candidates = messages.filter { $0.channel == request.kind.channel }
                let reply = candidates.first { $0.id == messageID }
                    ?? candidates.first { $0.id == nil && $0.subscriptions.contains(channel) }
                    ?? (request.subscriptions.count == 1 ? candidates.first { $0.id == nil } : nil)
                if let newer = reply?.advice { replyAdvice = newer }
                if let reply, succeeded(reply) {
                    if request.kind == .subscribe { subscribed.insert(channel) } else { subscribed.remove(channel) }
                } else {
                    failures.append((channel, reply?.error))
                }
            }
            subscriptionDone(request, failures: failures, replyAdvice: replyAdvice, transport: nil, now: now)

        case .disconnect:
            finish(.disconnected)
        }
    }

    /// The request got no usable answer (no answer, HTTP error, unparseable body, deadline).
    mutating func failed(_ owner: Outstanding, _ trouble: Trouble, bodyBytes: Int, now: Instant) {
        let request = owner.request
        switch request.kind {
        case .handshake, .connect:
            pollFailed(request.kind, trouble, now: now)
        case .subscribe, .unsubscribe:
            subscriptionDone(request, failures: request.subscriptions.map { ($0, nil) }, replyAdvice: nil, transport: trouble, now: now)
        case .disconnect:
            finish(.disconnected)
        }
    }

    /// The reply to `request` among the answer's messages: the one with its message id, else
    /// one on its channel without an id (the Cumulocity docs show replies without `id`).
    /// A reply carrying another id (a stale one) is not it.
    func reply(to request: BayeuxRequest, in messages: [BayeuxMessage]) -> BayeuxMessage? {
        let candidates = messages.filter { $0.channel == request.kind.channel }
        return candidates.first { $0.id.map(request.messageIDs.contains) ?? false } ?? candidates.first { $0.id == nil }
    }

    /// `successful: true`, or (lenient) no `successful` and no `error`.
    func succeeded(_ reply: BayeuxMessage) -> Bool {
        reply.successful ?? (reply.error == nil)
    }

    // MARK: Handshake and connect

    mutating func handshakeSucceeded(clientID id: String, now: Instant) {
        clientID = id
        successfulHandshakes += 1
        credentialsBackoff.reset()
        firstConnectPending = true
        lastConnectSucceeded = false
        lastSessionContact = now
        unconnectedSince = nil
        if successfulHandshakes > 1 || restartCause != nil {
            // Messages queued for the old session are gone: say so in the inbox, before
            // anything the new session receives.
            if successfulHandshakes > 1 { reconnects += 1 }
            let reason = gapCause ?? restartCause ?? "new session"
            pendingStores.append(Batch(notifications: [], gap: SessionGap(reason: reason, session: successfulHandshakes)))
            note("new session (\(reason)); a gap marker is stored: messages of the old session may be lost", .warning)
        }
        gapCause = nil
        restartCause = nil
        subscribed = []
        toSubscribe = wanted
        toUnsubscribe = []
        controlDue = nil
        subscribeBackoff.reset()
        path = .subscribing
    }

    mutating func connectSucceeded(now: Instant) {
        lastConnectSucceeded = true
        firstConnectPending = false
        unconnectedSince = nil
        lastSessionContact = now
        backoff.reset()
        consecutiveFailures = 0
        currentBackoff = nil
        if advice?.reconnect == BayeuxAdvice.Reconnect.none {
            return stopLoudly(.serverAdvisedNone(request: .connect, error: nil))
        }
        if let ms = advice?.intervalMilliseconds, ms < 0 {
            return stopLoudly(.negativeInterval(milliseconds: ms))
        }
        if advice?.reconnect == .handshake {
            note("the server advised a new handshake", .warning)
            return scheduleHandshake(due: now.advanced(by: interval + rehandshakeSpread()), cause: "the server advised a new handshake")
        }
        path = .connect(due: now.advanced(by: interval))
    }

    /// A handshake or connect failed: the advice decides, then the error, then the defaults
    /// (a failed connect is retried, a failed handshake repeated), always with backoff.
    mutating func pollFailed(_ kind: BayeuxRequest.Kind, _ trouble: Trouble, now: Instant) {
        consecutiveFailures += 1
        lastError = "\(kind.rawValue): \(trouble.summary)"
        if kind == .connect {
            lastConnectSucceeded = false
            if unconnectedSince == nil { unconnectedSince = now }
        }
        if advice?.reconnect == BayeuxAdvice.Reconnect.none {
            return stopLoudly(.serverAdvisedNone(request: kind, error: trouble.serverError))
        }
        if let ms = advice?.intervalMilliseconds, ms < 0 {
            return stopLoudly(.negativeInterval(milliseconds: ms))
        }
        if trouble.credentials {
            // A wrong password must not hammer the server: minutes, growing, never a hot loop.
            let delay = interval + credentialsBackoff.nextDelay(atLeast: trouble.retryAfter)
            currentBackoff = delay
            note("the server refused the credentials (\(trouble.summary)); check username and password; next handshake in \(delay.readable)", .error)
            return scheduleHandshake(due: now.advanced(by: delay), cause: "the credentials were refused (\(trouble.summary))")
        }
        let delay = interval + backoff.nextDelay(atLeast: trouble.retryAfter)
        currentBackoff = delay
        if kind == .handshake {
            note("handshake failed (\(trouble.summary)); next handshake in \(delay.readable)", .warning)
            scheduleHandshake(due: now.advanced(by: delay), cause: "handshake failed (\(trouble.summary))")
        } else if trouble.serverError?.isUnknownClient == true {
            let spread = delay + rehandshakeSpread()
            note("the server no longer knows the session (\(trouble.summary)); handshaking again in \(spread.readable)", .warning)
            scheduleHandshake(due: now.advanced(by: spread), cause: "the server dropped the session (\(trouble.summary))")
        } else if advice?.reconnect == .handshake {
            let spread = delay + rehandshakeSpread()
            note("connect failed (\(trouble.summary)) and the server advised a new handshake; handshaking in \(spread.readable)", .warning)
            scheduleHandshake(due: now.advanced(by: spread), cause: "the server advised a new handshake (\(trouble.summary))")
        } else {
            note("connect failed (\(trouble.summary)); retrying in \(delay.readable)", .warning)
            path = .connect(due: now.advanced(by: delay))
        }
    }

    // MARK: Subscriptions

    /// A subscribe or unsubscribe finished; `failures` lists the channels that did not succeed.
    mutating func subscriptionDone(_ request: BayeuxRequest, failures: [(channel: String, error: BayeuxServerError?)],
                                   replyAdvice: BayeuxAdvice?, transport: Trouble?, now: Instant) {
        defer {
            // The first connect follows the first subscribe's answer, whatever it said.
            if path == .subscribing { path = .connect(due: now) }
        }
        guard !failures.isEmpty else {
            if request.kind == .subscribe { subscribeBackoff.reset() }
            return
        }
        let errors = failures.compactMap(\.error)
        let summary = transport?.summary ?? errors.first?.description ?? "no reply"
        let channels = failures.map(\.channel).joined(separator: ", ")
        if replyAdvice?.reconnect == BayeuxAdvice.Reconnect.none {
            return stopLoudly(.serverAdvisedNone(request: request.kind, error: errors.first))
        }
        if errors.contains(where: \.isUnknownClient) || replyAdvice?.reconnect == .handshake {
            consecutiveFailures += 1
            let delay = interval + backoff.nextDelay() + rehandshakeSpread()
            currentBackoff = delay
            lastError = "\(request.kind.rawValue): \(summary)"
            note("the server no longer knows the session (\(request.kind.rawValue): \(summary)); handshaking again in \(delay.readable)", .warning)
            return scheduleHandshake(due: now.advanced(by: delay), cause: "the server dropped the session (\(request.kind.rawValue): \(summary))")
        }
        if request.kind == .subscribe {
            let retry = failures.map(\.channel).filter { wanted.contains($0) && !toSubscribe.contains($0) }
            toSubscribe.insert(contentsOf: retry, at: 0)
        } else {
            let retry = failures.map(\.channel).filter { !wanted.contains($0) && !toUnsubscribe.contains($0) }
            toUnsubscribe.insert(contentsOf: retry, at: 0)
        }
        var delay = subscribeBackoff.nextDelay(atLeast: transport?.retryAfter)
        let refused = transport?.credentials == true || errors.contains(where: \.isCredentialsRefusal)
        if refused { delay = max(delay, configuration.credentialsBackoffInitial) }
        controlDue = now.advanced(by: delay)
        lastError = "\(request.kind.rawValue) \(channels): \(summary)"
        note("\(request.kind.rawValue) of \(channels) failed (\(summary)); retrying in \(delay.readable)", refused ? .error : .warning)
    }

    // MARK: Transitions

    /// Abandons the session (if any) and handshakes at `due`. Outstanding requests are
    /// cancelled: a connect of the old session must not run beside the handshake.
    mutating func scheduleHandshake(due: Instant, cause: String) {
        cancelAll()
        clientID = nil
        subscribed = []
        toSubscribe = []
        toUnsubscribe = []
        controlDue = nil
        lastConnectSucceeded = false
        firstConnectPending = false
        // The first cause is the one the gap marker tells (later ones are failed retries).
        if gapCause == nil && successfulHandshakes > 0 { gapCause = cause }
        path = .handshake(due: due)
    }

    mutating func stopLoudly(_ reason: BayeuxStopReason) {
        lastError = reason.description
        note(reason.description, .error)
        finish(.stopped(reason))
    }
}
