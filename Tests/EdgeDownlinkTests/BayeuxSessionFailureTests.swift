import TestSupport
import EdgeDownlink
import Foundation
import Testing

/// The failure cases of shared/reference/bayeux-client.md, one exchange at a time.
@Suite struct BayeuxSessionFailureTests {
    // MARK: Unusable answers

    static let garbage: [String] = [
        "",
        "          ",
        "<html><body>502 Bad Gateway</body></html>",
        #"[{"channel":"/meta/connect","succ"#,
        "\u{00}\u{01}\u{02}garbage",
        "[1,2]",
        "[]",
    ]

    @Test(arguments: garbage)
    func anUnusableConnectAnswerBacksOffAndRetriesTheConnect(_ body: String) {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.answer(poll, bytes(body))
        let retry = expectKind(h.run(), .connect)  // a connect again, not a handshake
        #expect(h.waits == [.milliseconds(500)])   // the first backoff: half of 1 s with FixedRandom(0)
        #expect(retry.id != poll.id)
        let status = h.session.status()
        #expect(status.consecutiveFailures == 1 && status.phase == .unconnected && status.lastError != nil)
        // It keeps going: a second unusable answer doubles the ceiling.
        h.answer(retry, bytes(body))
        expectKind(h.run(), .connect)
        #expect(h.waits == [.milliseconds(500), .seconds(1)])
    }

    @Test func aConnectReplyWithAnotherMessageIdIsNotTheReply() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.answer(poll, Reply.meta(poll, id: "9999"))
        expectKind(h.run(), .connect)
        #expect(h.session.status().consecutiveFailures == 1 && h.waits.count == 1)
    }

    @Test func transportFailuresAndHTTPErrorsRetryTheConnectWithBackoff() {
        var h = Harness()
        h.session.start(now: h.now)
        var poll = h.connect()
        for failure in [BayeuxFailure.transport("connection_closed"), .httpStatus(502), .httpStatus(400)] {
            h.fail(poll, failure)
            poll = expectKind(h.run(), .connect)
        }
        #expect(h.waits == [.milliseconds(500), .seconds(1), .seconds(2)])
        // Retry-After is a floor.
        h.fail(poll, .httpStatus(429, retryAfter: .seconds(30)))
        expectKind(h.run(), .connect)
        #expect(h.waits.last == .seconds(30))
    }

    // MARK: Advice

    @Test func reconnectNoneOnConnectStopsAndNothingIsSentAgain() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.answer(poll, Reply.meta(poll, successful: false, error: "402::Unknown client", advice: #"{"reconnect":"none"}"#))
        #expect(h.run() == nil)
        let reason = BayeuxStopReason.serverAdvisedNone(request: .connect, error: BayeuxServerError("402::Unknown client"))
        #expect(h.stopped == reason)
        #expect(h.session.status().phase == .stopped(reason))
        #expect(h.reports.last?.severity == .error)
        #expect(reason.description.contains("will not reconnect"))
        let count = h.sent.count
        for _ in 0..<10 {
            h.advance(.seconds(3600))
            #expect(h.session.nextAction(now: h.now) == .stopped(reason))
        }
        #expect(h.sent.count == count)
    }

    @Test func reconnectNoneOnASuccessfulConnectStopsToo() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.answer(poll, Reply.meta(poll, advice: #"{"reconnect":"none"}"#))
        #expect(h.run() == nil)
        #expect(h.stopped == .serverAdvisedNone(request: .connect, error: nil))
    }

    @Test func reconnectNoneOnHandshakeStops() {
        // Cumulocity's denied handshake: 403::Handshake denied with reconnect none.
        var h = Harness()
        h.session.start(now: h.now)
        let handshake = expectKind(h.run(), .handshake)
        h.answer(handshake, Reply.meta(handshake, successful: false, error: "403::Handshake denied", advice: #"{"reconnect":"none","interval":0}"#))
        #expect(h.run() == nil)
        #expect(h.stopped == .serverAdvisedNone(request: .handshake, error: BayeuxServerError("403::Handshake denied")))
        h.advance(.seconds(7200))
        #expect(h.run() == nil)
        #expect(h.sentKinds == [.handshake])
    }

    // MARK: Unknown client

    struct UnknownClient: Sendable, CustomTestStringConvertible {
        let label: String
        let error: String
        let advice: String?
        var testDescription: String { label }
    }

    static let unknownClient: [UnknownClient] = [
        UnknownClient(label: "CometD 402 without advice", error: "402::Unknown client", advice: nil),
        UnknownClient(label: "CometD 402 with reconnect handshake", error: "402::Unknown client", advice: #"{"reconnect":"handshake","interval":0}"#),
        UnknownClient(label: "402 even with reconnect retry", error: "402::Unknown client", advice: #"{"reconnect":"retry","interval":0}"#),
        UnknownClient(label: "Faye 401:<id>:Unknown client with reconnect handshake", error: "401:client-1:Unknown client", advice: #"{"reconnect":"handshake","interval":0,"timeout":25000}"#),
        UnknownClient(label: "403 unknown client, lower case", error: "403::unknown client", advice: nil),
        UnknownClient(label: "advice handshake without an error", error: "", advice: #"{"reconnect":"handshake"}"#),
    ]

    @Test(arguments: unknownClient)
    func anUnknownClientOnConnectReHandshakesResubscribesAndMarksAGap(_ row: UnknownClient) throws {
        var h = Harness(channels: ["/operations/1", "/operations/2"])
        h.session.start(now: h.now)
        let poll = h.connect()
        h.answer(poll, Reply.meta(poll, successful: false, error: row.error.isEmpty ? nil : row.error, advice: row.advice))
        let handshake = expectKind(h.run(), .handshake)
        #expect(h.session.status().phase == .handshaking)
        #expect(h.gaps.isEmpty)  // not before the new session exists
        #expect(messages(of: handshake).first?["clientId"] == nil)
        h.answer(handshake, Reply.meta(handshake, clientID: "client-2"))
        let subscribe = expectKind(h.run(), .subscribe)
        #expect(subscribe.subscriptions == ["/operations/1", "/operations/2"])
        #expect(messages(of: subscribe).first?["clientId"] as? String == "client-2")
        let gap = try #require(h.gaps.first)
        #expect(h.gaps.count == 1 && gap.session == 2)
        #expect(gap.reason.contains(row.error.isEmpty ? "advised" : row.error.replacingOccurrences(of: ":client-1:", with: "::")))
        #expect(!gap.reason.contains("client-1"))
        // The gap was stored before the subscribe went out.
        h.answer(subscribe, Reply.meta(subscribe))
        let first = expectKind(h.run(), .connect)
        #expect((messages(of: first).first?["advice"] as? [String: Any])?["timeout"] as? Int == 0)
        #expect(h.sentKinds == [.handshake, .subscribe, .connect, .connect, .handshake, .subscribe, .connect])
        #expect(h.session.status().reconnects == 1)
    }

    /// A server restart drops every device's session at once: 200 devices (each its own
    /// random source) meeting the 402 at the same instant spread their new handshakes over
    /// the backoff and `rehandshake_spread` (5 s), no 100 ms holding more than a tenth of them;
    /// without the spread they all fall within the backoff's half second.
    @Test func aFleetReHandshakesSpreadOutAfterAServerRestart() throws {
        func handshakeWaits(spread: Duration) -> [Double] {
            (0..<200).map { seed in
                var h = Harness(configure: { $0.rehandshakeSpread = spread }, random: SplitMix64(seed: UInt64(seed)))
                h.session.start(now: h.now)
                let poll = h.connect()
                h.answer(poll, Reply.meta(poll, successful: false, error: "402::Unknown client"))
                _ = expectKind(h.run(), .handshake)
                return seconds(h.waits.last ?? .zero)
            }
        }
        let spread = handshakeWaits(spread: .seconds(5))
        #expect(spread.allSatisfy { $0 >= 0.5 && $0 <= 6.0 }, "\(spread.min()!)...\(spread.max()!)")
        #expect(spread.max()! - spread.min()! > 4, "\(spread.min()!)...\(spread.max()!)")
        let busiest = Dictionary(grouping: spread) { Int($0 * 10) }.values.map(\.count).max()!
        #expect(busiest <= 20, "\(busiest) of 200 handshakes in one 100 ms")
        let together = handshakeWaits(spread: .zero)
        #expect(together.max()! - together.min()! <= 0.5, "without the spread: \(together.min()!)...\(together.max()!)")
    }

    @Test func storedAdviceIsClearedBeforeANewHandshake() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect(connectAdvice: #"{"reconnect":"retry","interval":3000,"timeout":45000}"#)
        #expect(h.session.status().grantedTimeout == .seconds(45) && h.waits == [.seconds(3)])
        h.answer(poll, Reply.meta(poll, successful: false, error: "402::Unknown client"))  // no advice
        let handshake = expectKind(h.run(), .handshake)
        #expect(h.waits == [.seconds(3), .milliseconds(3500)])  // the interval still in force, plus backoff
        #expect(h.session.status().grantedTimeout == .seconds(240))  // sending the handshake cleared it
        h.answer(handshake, Reply.meta(handshake, clientID: "client-2"))  // no advice either
        let subscribe = expectKind(h.run(), .subscribe)
        h.answer(subscribe, Reply.meta(subscribe))
        let first = expectKind(h.run(), .connect)
        h.answer(first, Reply.meta(first))
        expectKind(h.run(), .connect)
        #expect(h.waits.count == 2)  // no 3 s interval any more
        #expect(h.sent.last.map { $0.at.duration(to: $0.deadline) } == .seconds(250))
    }

    @Test func anUnknownClientOnSubscribeReHandshakes() {
        // Faye: the same error with no advice on subscribe.
        var h = Harness()
        h.session.start(now: h.now)
        let handshake = expectKind(h.run(), .handshake)
        h.answer(handshake, Reply.meta(handshake, clientID: "client-1"))
        let subscribe = expectKind(h.run(), .subscribe)
        h.answer(subscribe, Reply.meta(subscribe, successful: false, error: "402::Unknown client"))
        expectKind(h.run(), .handshake)
        #expect(h.waits == [.milliseconds(500)])
        #expect(h.session.outstandingRequests.map(\.kind) == [.handshake])
    }

    @Test func anUnknownClientOnALaterSubscribeCancelsTheLongPoll() {
        var h = Harness(channels: ["/operations/1"])
        h.session.start(now: h.now)
        let poll = h.connect()
        h.session.setChannels(["/operations/1", "/operations/2"], now: h.now)
        let subscribe = expectKind(h.run(), .subscribe)
        h.answer(subscribe, Reply.meta(subscribe, successful: false, error: "401:client-1:Unknown client"))
        let handshake = expectKind(h.run(), .handshake)
        #expect(h.cancelled == [poll.id])
        #expect(h.session.outstandingRequests.map(\.id) == [handshake.id])
        h.answer(handshake, Reply.meta(handshake, clientID: "client-2"))
        #expect(expectKind(h.run(), .subscribe).subscriptions == ["/operations/1", "/operations/2"])
    }

    @Test func aRefusedSubscriptionIsRetriedLaterWithoutBlockingTheConnect() {
        var h = Harness(channels: ["/operations/1", "/operations/2"])
        h.session.start(now: h.now)
        let handshake = expectKind(h.run(), .handshake)
        h.answer(handshake, Reply.meta(handshake, clientID: "c"))
        let subscribe = expectKind(h.run(), .subscribe)
        var replies = Reply.meta(subscribe)
        replies[1] = replies[1].replacingOccurrences(of: #""successful":true"#, with: #""successful":false,"error":"403:/operations/2:Forbidden""#)
        h.answer(subscribe, replies)
        let first = expectKind(h.run(), .connect)
        #expect(h.session.status().subscribedChannels == ["/operations/1"])
        #expect(h.reports.last?.severity == .error)
        h.answer(first, Reply.meta(first))
        expectKind(h.run(), .connect)  // the long poll
        #expect(h.run() == nil)        // the retry waits (minutes: a refusal)
        h.advance(.seconds(300))
        let again = expectKind(h.run(), .subscribe)
        #expect(again.subscriptions == ["/operations/2"])
    }

    // MARK: Handshake failures

    @Test func handshakeDeniedRepeatedlyBacksOffForMinutes() {
        var h = Harness(random: SplitMix64(seed: 11))
        h.session.start(now: h.now)
        let end = TestInstant.zero.advanced(by: .seconds(3600))
        var handshakes: [TestInstant] = []
        while let request = h.run(), h.now < end {
            #expect(request.kind == .handshake)
            handshakes.append(h.now)
            h.answer(request, Reply.meta(request, successful: false, error: "403::Handshake denied"))
        }
        #expect(handshakes.count >= 2 && handshakes.count < 10)
        let gaps = zip(handshakes, handshakes.dropFirst()).map { $0.duration(to: $1) }
        #expect(gaps.allSatisfy { $0 >= .seconds(150) })  // minutes, never a hot loop
        #expect(h.reports.contains { $0.severity == .error && ($0.reason ?? "").contains("credentials") })
        #expect(h.session.status().phase == .handshaking)
    }

    @Test func httpLevelCredentialRefusalsBackOffForMinutesToo() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.fail(poll, .httpStatus(401))
        let handshake = expectKind(h.run(), .handshake)
        #expect(h.waits == [.seconds(150)])
        h.fail(handshake, .httpStatus(403))
        expectKind(h.run(), .handshake)
        #expect(h.waits == [.seconds(150), .seconds(300)])
    }

    @Test func aFailedHandshakeWithoutAdviceHandshakesAgainWithGrowingBackoff() {
        var h = Harness()
        h.session.start(now: h.now)
        var handshake = expectKind(h.run(), .handshake)
        let failures: [(inout Harness, BayeuxRequest) -> Void] = [
            { $0.fail($1, .transport("connect_failed")) },
            { $0.answer($1, bytes("<html>503</html>")) },
            { $0.answer($1, Reply.meta($1, successful: false, error: "500::Internal error")) },
            { $0.answer($1, Reply.meta($1, successful: true)) },  // no clientId
            { $0.fail($1, .httpStatus(503)) },
        ]
        for fail in failures {
            fail(&h, handshake)
            handshake = expectKind(h.run(), .handshake)
        }
        #expect(h.waits == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8)])
        #expect(h.sentKinds.allSatisfy { $0 == .handshake })
        #expect(h.session.status().consecutiveFailures == 5)
    }

    // MARK: Dead polls and long outages

    @Test func aDeadPollIsCancelledAtItsDeadlineAndTheConnectRetried() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        let deadline = h.sent.last!.deadline
        h.advance(.seconds(249))
        #expect(h.session.nextAction(now: h.now) == .wait(until: deadline))
        h.now = deadline  // the server accepted and went silent
        let retry = expectKind(h.run(), .connect)
        #expect(h.cancelled == [poll.id])
        #expect(h.waits == [.milliseconds(500)])
        // The engine's own timeout report for the dead poll comes late: ignored.
        h.session.requestFailed(requestID: poll.id, failure: .deadlineExceeded, now: h.now)
        #expect(h.session.outstandingRequests.map(\.id) == [retry.id])
        #expect(h.run() == nil)
    }

    @Test func aDeadlineReportedByTheEngineIsAFailureToo() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.advance(.seconds(250))
        h.fail(poll, .deadlineExceeded)
        expectKind(h.run(), .connect)
        #expect(h.cancelled.isEmpty && h.session.status().consecutiveFailures == 1)
    }

    @Test func unconnectedLongerThanTheSessionLifetimeHandshakesInsteadOfConnecting() {
        var h = Harness()
        h.session.start(now: h.now)
        var poll = h.connect(handshakeAdvice: #"{"timeout":60000,"interval":0}"#, connectAdvice: #"{"timeout":60000,"interval":0,"reconnect":"retry"}"#)
        // Lifetime: 60 s timeout + 0 interval + 10 s margin.
        h.fail(poll, .transport("connect_failed"))
        let firstFailure = h.now
        var kinds: [BayeuxRequest.Kind] = []
        while true {
            let request = h.run()!
            kinds.append(request.kind)
            if request.kind == .handshake {
                #expect(firstFailure.duration(to: h.now) > .seconds(70))
                break
            }
            #expect(firstFailure.duration(to: h.now) <= .seconds(70))
            poll = request
            h.fail(poll, .transport("connect_failed"))
        }
        #expect(kinds.filter { $0 == .connect }.count >= 3)
        let handshake = h.sent.last!.request
        h.answer(handshake, Reply.meta(handshake, clientID: "client-2"))
        expectKind(h.run(), .subscribe)
        #expect(h.gaps.count == 1 && h.gaps[0].reason.contains("expired"))
    }

    @Test func aLongCommitOutageAlsoExpiresTheSession() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect()
        h.autoCommit = false
        h.answer(poll, [Reply.operation("1")], Reply.meta(poll))
        #expect(h.run() == nil)
        h.advance(.seconds(600))  // the disk was full for ten minutes
        h.commit()
        expectKind(h.run(), .handshake)
    }

    @Test func aStaleConnectAnswerIsIgnoredButItsEventsAreStored() {
        var h = Harness()
        h.session.start(now: h.now)
        let old = h.connect()
        h.now = h.sent.last!.deadline
        let current = expectKind(h.run(), .connect)  // old was declared dead
        // The old poll's answer arrives after all, with an event and a successful reply.
        h.answer(old, [Reply.operation("77")], Reply.meta(old, advice: #"{"reconnect":"none"}"#))
        #expect(h.run() == nil)
        #expect(h.notifications.map(\.key.dataID) == ["77"])
        #expect(h.session.outstandingRequests.map(\.id) == [current.id])  // no second connect
        #expect(h.stopped == nil)  // its advice was not taken
        #expect(h.session.status().staleAnswers == 1)
        h.answer(current, Reply.meta(current))
        expectKind(h.run(), .connect)
    }

    // MARK: Backoff

    @Test func backoffGrowsIsCappedAndResetsAfterASuccessfulConnect() {
        var h = Harness(random: FixedRandom(value: .max))
        h.session.start(now: h.now)
        var poll = h.connect(connectAdvice: #"{"timeout":600000,"reconnect":"retry"}"#)  // a long lifetime
        for _ in 0..<9 {
            h.fail(poll, .transport("connect_failed"))
            poll = expectKind(h.run(), .connect)
        }
        let waited = h.waits.map { seconds($0).rounded() }
        #expect(waited == [1, 2, 4, 8, 16, 32, 60, 60, 60])
        h.answer(poll, Reply.meta(poll))
        poll = expectKind(h.run(), .connect)
        #expect(h.session.status().consecutiveFailures == 0 && h.session.status().currentBackoff == nil)
        h.fail(poll, .transport("connect_failed"))
        expectKind(h.run(), .connect)
        #expect(seconds(h.waits.last!).rounded() == 1)
    }

    @Test(arguments: [UInt64(3), 17, 99])
    func backoffJitterStaysWithinBounds(seed: UInt64) {
        // A two-hour idle limit: the session outlives the twelve backoffs.
        var h = Harness(configure: { $0.networkIdleLimit = .seconds(7200) }, random: SplitMix64(seed: seed))
        h.session.start(now: h.now)
        var poll = h.connect(connectAdvice: #"{"timeout":3600000,"reconnect":"retry"}"#)
        for failure in 0..<12 {
            h.fail(poll, .httpStatus(503))
            poll = expectKind(h.run(), .connect)
            let ceiling = min(Duration.seconds(60), .seconds(1) * (1 << failure))
            #expect(h.waits.last! >= ceiling / 2 && h.waits.last! <= ceiling)
        }
    }
}

@Suite struct LostAnswerTests {
    /// A connect whose answer may have carried events and was lost leaves a gap marker, stored
    /// before the next connect; a connect that never reached the server does not.
    @Test(arguments: [
        (BayeuxFailure.deadlineExceeded, true), (.transport("response_too_large"), true), (.transport("connection_closed"), true),
        (.transport("connect_failed"), false), (.transport("dns_failed"), false), (.httpStatus(503), false),
    ])
    func aLostConnectAnswerLeavesAGapMarker(failure: BayeuxFailure, gap: Bool) {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect(connectAdvice: #"{"timeout":60000,"reconnect":"retry"}"#)
        h.fail(poll, failure)
        expectKind(h.run(), .connect)
        #expect(h.gaps.count == (gap ? 1 : 0))
        if gap { #expect(h.gaps.first?.reason.contains("answer was lost") == true) }
    }

    @Test func anUnreadableConnectAnswerLeavesAGapMarker() {
        var h = Harness()
        h.session.start(now: h.now)
        let poll = h.connect(connectAdvice: #"{"timeout":60000,"reconnect":"retry"}"#)
        h.answer(poll, Array(#"[{"channel":"/meta/connect","succ"#.utf8))
        expectKind(h.run(), .connect)
        #expect(h.gaps.count == 1)
    }

    @Test func aDeadPollAtItsDeadlineLeavesAGapMarker() {
        var h = Harness()
        h.session.start(now: h.now)
        _ = h.connect(connectAdvice: #"{"timeout":60000,"reconnect":"retry"}"#)
        h.advance(.seconds(75))
        expectKind(h.run(), .connect)
        #expect(h.gaps.count == 1)
    }
}
