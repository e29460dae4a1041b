import TestSupport
import EdgeDownlink
import Foundation
import Testing

/// The normal life of a session, event by event.
@Suite struct BayeuxSessionFlowTests {
    @Test func handshakeThenSubscribeThenConnectWithTimeoutZeroFirst() throws {
        var h = Harness(channels: ["/operations/1", "/operations/2"])
        h.session.start(now: h.now)

        let handshake = expectKind(h.run(), .handshake)
        let hs = try #require(messages(of: handshake).first)
        #expect(hs["channel"] as? String == "/meta/handshake" && hs["version"] as? String == "1.0")
        #expect(hs["supportedConnectionTypes"] as? [String] == ["long-polling"])
        #expect((hs["advice"] as? [String: Any])?["timeout"] as? Int == 240_000)
        #expect((hs["advice"] as? [String: Any])?["interval"] as? Int == 0)
        #expect(hs["clientId"] == nil && hs["id"] is String)
        #expect(h.sent.last?.deadline == h.now.advanced(by: .seconds(10)))  // margin only
        #expect(h.run() == nil)  // nothing else while the handshake is out

        h.answer(handshake, Reply.meta(handshake, clientID: "secret-client-id", advice: #"{"reconnect":"retry","interval":0,"timeout":60000}"#))
        let subscribe = expectKind(h.run(), .subscribe)
        #expect(subscribe.subscriptions == ["/operations/1", "/operations/2"])
        #expect(messages(of: subscribe).map { $0["clientId"] as? String } == ["secret-client-id", "secret-client-id"])
        #expect(h.run() == nil)  // the first connect waits for the subscribe answer

        h.answer(subscribe, Reply.meta(subscribe))
        let first = expectKind(h.run(), .connect)
        let c1 = try #require(messages(of: first).first)
        #expect(c1["connectionType"] as? String == "long-polling" && c1["clientId"] as? String == "secret-client-id")
        #expect((c1["advice"] as? [String: Any])?["timeout"] as? Int == 0)
        #expect(h.sent.last?.deadline == h.now.advanced(by: .seconds(70)))  // granted 60 s + margin
        #expect(h.session.status().phase == .unconnected)

        h.answer(first, Reply.meta(first, advice: #"{"reconnect":"retry","interval":0,"timeout":300000}"#))
        let second = expectKind(h.run(), .connect)
        // The requested 240 s (below the 300 s the server allows).
        #expect((messages(of: second).first?["advice"] as? [String: Any])?["timeout"] as? Int == 240_000)
        h.answer(second, Reply.meta(second, advice: #"{"reconnect":"retry","interval":0,"timeout":60000}"#))
        let third = expectKind(h.run(), .connect)
        // Never more than the server advises: Faye loses a session whose connect asks for more.
        #expect((messages(of: third).first?["advice"] as? [String: Any])?["timeout"] as? Int == 60_000)
        #expect(h.session.outstandingRequests.map(\.kind) == [.connect])

        // Every message id is unique; the reports walked handshaking → unconnected → connected.
        let ids = h.sent.flatMap(\.request.messageIDs)
        #expect(Set(ids).count == ids.count)
        #expect(h.reports.map(\.phase.name) == ["handshaking", "unconnected", "connected"])
        #expect(h.gaps.isEmpty)  // no gap marker after the first handshake

        let status = h.session.status()
        #expect(status.phase == .connected && status.grantedTimeout == .seconds(60) && status.requestedTimeout == .seconds(240))
        #expect(status.subscribedChannels == ["/operations/1", "/operations/2"] && status.reconnects == 0 && status.handshakes == 1)
        #expect(status.sessionFingerprint?.count == 8)
        #expect(!String(describing: status).contains("secret-client-id"))
        #expect(!h.reports.map(\.description).joined().contains("secret-client-id"))
    }

    @Test func eventsOnASubscribeAnswerAreStoredBeforeTheFirstConnect() {
        var h = Harness()
        h.autoCommit = false
        h.session.start(now: h.now)
        let handshake = expectKind(h.run(), .handshake)
        h.answer(handshake, Reply.meta(handshake, clientID: "c"))
        let subscribe = expectKind(h.run(), .subscribe)
        // Events before and after the meta reply.
        h.answer(subscribe, [Reply.operation("1", bayeuxID: "a")], Reply.meta(subscribe), [Reply.operation("2", bayeuxID: "b")])

        #expect(h.run() == nil)
        #expect(h.stores.count == 1 && h.stores[0].notifications.map(\.key.dataID) == ["1", "2"])
        #expect(h.sent.count == 2)  // no connect yet
        #expect(h.session.nextAction(now: h.now) == .idle)
        h.advance(.seconds(3))
        #expect(h.session.nextAction(now: h.now) == .idle)  // still nothing: the commit comes first

        h.commit()
        expectKind(h.run(), .connect)
    }

    @Test func eventsOnAConnectAnswerAreStoredBeforeTheNextConnect() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.autoCommit = false
        h.answer(poll, [Reply.operation("5")], Reply.meta(poll))
        #expect(h.run() == nil)
        #expect(h.stores.last?.notifications.map(\.key.dataID) == ["5"])
        #expect(h.session.outstandingRequests.isEmpty)
        let sentBefore = h.sent.count
        h.commit()
        expectKind(h.run(), .connect)
        #expect(h.sent.count == sentBefore + 1)
        #expect(h.session.status().notificationsReceived == 1 && h.session.status().lastNotificationAt == h.now)
    }

    @Test func aFailedCommitIsRetriedBeforeAnyConnect() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.autoCommit = false
        h.answer(poll, [Reply.operation("5")], Reply.meta(poll))
        #expect(h.run() == nil && h.stores.count == 1)
        h.storeInFlight = false
        h.session.storeFailed(now: h.now)
        #expect(h.run() == nil)  // the same batch again after a backoff, no connect
        #expect(h.stores.count == 2 && h.stores[1].notifications == h.stores[0].notifications)
        #expect(h.waits.last == .milliseconds(500))
        #expect(h.sentKinds.last == .connect && h.sent.count == 4)
        h.commit()
        expectKind(h.run(), .connect)
    }

    @Test func heartbeatsThenJSONAndASingleObjectAreNormalAnswers() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        let object = Reply.meta(poll)[0]
        h.answer(poll, bytes(String(repeating: " ", count: 500) + "\n" + "[" + Reply.operation("9") + "," + object + "]"))
        let next = expectKind(h.run(), .connect)
        #expect(h.notifications.map(\.key.dataID) == ["9"])
        h.answer(next, bytes("   " + Reply.meta(next)[0]))  // one object, not an array
        expectKind(h.run(), .connect)
        #expect(h.session.status().consecutiveFailures == 0 && h.waits.isEmpty)
    }

    @Test func intervalIsWaitedBetweenConnects() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.advance(.seconds(30))
        h.answer(poll, Reply.meta(poll, advice: #"{"reconnect":"retry","interval":5000,"timeout":60000}"#))
        let answeredAt = h.now
        let next = expectKind(h.run(), .connect)
        #expect(h.waits == [.seconds(5)])
        #expect(h.sent.last?.at == answeredAt.advanced(by: .seconds(5)))
        #expect(h.sent.last?.deadline == h.now.advanced(by: .seconds(70)))
        // The newest advice replaces the older one as a whole: no timeout now, so the
        // requested hold time is back in force, and no interval.
        h.answer(next, Reply.meta(next, advice: #"{"reconnect":"retry"}"#))
        expectKind(h.run(), .connect)
        #expect(h.waits == [.seconds(5)])
        #expect(h.sent.last?.deadline == h.now.advanced(by: .seconds(250)))
    }

    @Test func aNegativeIntervalStopsLoudly() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.answer(poll, Reply.meta(poll, advice: #"{"reconnect":"retry","interval":-1}"#))
        #expect(h.run() == nil)
        #expect(h.stopped == .negativeInterval(milliseconds: -1))
        #expect(h.session.status().phase == .stopped(.negativeInterval(milliseconds: -1)))
        #expect(h.reports.last?.severity == .error && h.reports.last?.phase.name == "stopped")
        let count = h.sent.count
        h.advance(.seconds(86_400))
        #expect(h.session.nextAction(now: h.now) == .stopped(.negativeInterval(milliseconds: -1)))
        #expect(h.sent.count == count)
    }

    @Test func theConnectDeadlineIsTheGrantedTimeoutPlusTheMargin() {
        // From the handshake advice, then from the connect advice.
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect(handshakeAdvice: #"{"timeout":30000}"#, connectAdvice: #"{"timeout":45000,"reconnect":"retry"}"#)
        #expect(h.sent.map { $0.at.duration(to: $0.deadline) } == [.seconds(10), .seconds(10), .seconds(40), .seconds(55)])
        #expect(h.session.status().grantedTimeout == .seconds(45))
        // A server that advises 90 min (Cumulocity's default): the requested 240 s stay in
        // force, so a server that holds longer anyway is cut at 250 s (the firewall on the way
        // would not keep the poll that long).
        h.answer(poll, Reply.meta(poll, advice: #"{"timeout":5400000,"interval":0,"reconnect":"retry"}"#))
        expectKind(h.run(), .connect)
        #expect(h.sent.last.map { $0.at.duration(to: $0.deadline) } == .seconds(250))
        #expect(h.session.status().grantedTimeout == .seconds(240))

        // No advice anywhere: the requested hold time.
        var plain = Harness()
        plain.session.start(now: plain.now)
        _ = plain.connect()
        #expect(plain.sent.last.map { $0.at.duration(to: $0.deadline) } == .seconds(250))

        // `timeout: 0` in advice (an echo of the first connect's) is not a grant.
        var echo = Harness()
        echo.session.start(now: echo.now)
        _ = echo.connect(connectAdvice: #"{"timeout":0,"reconnect":"retry"}"#)
        #expect(echo.sent.last.map { $0.at.duration(to: $0.deadline) } == .seconds(250))
    }

    @Test func stopDisconnectsTheSession() throws {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect(clientID: "c9")
        h.session.stop(now: h.now)
        let disconnect = expectKind(h.run(), .disconnect)
        #expect(h.cancelled == [poll.id])  // the long poll is aborted
        #expect(messages(of: disconnect).first?["clientId"] as? String == "c9")
        #expect(h.session.status().phase == .disconnecting)
        // A late answer of the cancelled poll still has its events stored.
        h.answer(poll, [Reply.operation("8")], Reply.meta(poll))
        h.answer(disconnect, Reply.meta(disconnect))
        #expect(h.run() == nil)
        #expect(h.notifications.map(\.key.dataID) == ["8"])
        #expect(h.stopped == .requested && h.session.status().phase == .disconnected)
        #expect(h.sentKinds.last == .disconnect)
    }

    @Test func stopWhileHandshakingSendsNothingMore() {
        var h = Harness()
        h.session.start(now: h.now)
        let handshake = expectKind(h.run(), .handshake)
        h.session.stop(now: h.now)
        #expect(h.run() == nil)
        #expect(h.cancelled == [handshake.id] && h.stopped == .requested && h.sent.count == 1)
    }

    @Test func channelsCanChangeWhileConnected() {
        var h = Harness(channels: ["/operations/1"])
        h.session.start(now: h.now)
        let poll = h.connect()
        h.session.setChannels(["/operations/2"], now: h.now)
        let unsubscribe = expectKind(h.run(), .unsubscribe)
        #expect(unsubscribe.subscriptions == ["/operations/1"])
        // Events piggy-backed on the unsubscribe answer are stored too.
        h.answer(unsubscribe, [Reply.operation("3")], Reply.meta(unsubscribe))
        let subscribe = expectKind(h.run(), .subscribe)
        #expect(subscribe.subscriptions == ["/operations/2"])
        h.answer(subscribe, Reply.meta(subscribe))
        #expect(h.run() == nil)
        #expect(h.notifications.map(\.key.dataID) == ["3"])
        #expect(h.session.status().subscribedChannels == ["/operations/2"])
        #expect(h.session.outstandingRequests.map(\.id) == [poll.id])  // the long poll went on untouched
    }

    /// Started on an inbox an earlier run used (a restart, a crash): the first successful
    /// handshake stores one gap marker with the given reason, before the subscribe; a failed
    /// first handshake does not use it up; it is not counted as a reconnect.
    @Test func aRestartLeavesOneGapMarkerAtTheFirstSuccessfulHandshake() throws {
        var h = Harness()
        h.session.start(now: h.now, earlierSession: "edgebuf started again")
        let refused = expectKind(h.run(), .handshake)
        h.fail(refused, .httpStatus(503))
        #expect(h.gaps.isEmpty)
        let handshake = expectKind(h.run(), .handshake)
        h.answer(handshake, Reply.meta(handshake, clientID: "client-1"))
        let subscribe = expectKind(h.run(), .subscribe)
        #expect(h.gaps == [SessionGap(reason: "edgebuf started again", session: 1)])
        #expect(h.stores.count == 1 && h.stores[0].notifications.isEmpty)
        h.answer(subscribe, Reply.meta(subscribe))
        let first = expectKind(h.run(), .connect)
        h.answer(first, Reply.meta(first))
        _ = expectKind(h.run(), .connect)
        #expect(h.gaps.count == 1)
        #expect(h.session.status().reconnects == 0)

        // Without an earlier session: no marker.
        var fresh = Harness()
        fresh.session.start(now: fresh.now)
        _ = fresh.connect()
        #expect(fresh.gaps.isEmpty)
    }
}
