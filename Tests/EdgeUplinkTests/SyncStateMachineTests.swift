import TestSupport
import EdgeStore
import EdgeUplink
import Testing

@Suite struct SyncStateMachineTests {
    let packer = Packer()

    // MARK: The error table, one exchange per row

    struct Row: Sendable, CustomTestStringConvertible {
        enum Shape: Sendable { case properties(Int), children, measurements }
        let label: String
        let shape: Shape
        let result: ExchangeResult
        let actions: [String]
        let outcome: RequestOutcome.Result
        var testDescription: String { label }
    }

    static func error(_ status: Int, _ code: String, extra: String = "") -> ExchangeResult {
        Fixture.iotdaError(status, code, extra: extra)
    }

    static func status(_ status: Int, _ body: String = "") -> ExchangeResult {
        .response(PlatformResponse(status: status, body: Array(body.utf8)))
    }

    static let rows: [Row] = [
        Row(label: "200 delivered", shape: .properties(2), result: status(200), actions: ["delete"], outcome: .delivered),
        Row(label: "000002 re-authenticate", shape: .properties(2), result: error(401, "IOTDA.000002"), actions: ["reauthenticate"], outcome: .retry),
        Row(label: "000004 re-authenticate", shape: .properties(2), result: error(403, "IOTDA.000004"), actions: ["reauthenticate"], outcome: .retry),
        Row(label: "000006 bisect", shape: .properties(2), result: error(400, "IOTDA.000006"), actions: ["bisect"], outcome: .split),
        Row(label: "000006 alone dead-letter", shape: .properties(1), result: error(400, "IOTDA.000006"), actions: ["deadLetter"], outcome: .deadLettered),
        Row(label: "021101 slow down", shape: .properties(2), result: error(403, "IOTDA.021101"), actions: ["slowDown", "retryAfter"], outcome: .retry),
        Row(label: "021102 slow down", shape: .properties(2), result: error(403, "IOTDA.021102"), actions: ["slowDown", "retryAfter"], outcome: .retry),
        Row(label: "021103/400 split", shape: .children, result: error(400, "IOTDA.021103"), actions: ["split"], outcome: .split),
        Row(label: "021103/403 split", shape: .children, result: error(403, "IOTDA.021103"), actions: ["split"], outcome: .split),
        Row(label: "021104 dead-letter child", shape: .children, result: error(400, "IOTDA.021104", extra: #","device_id":"c2""#), actions: ["deadLetterChild"], outcome: .deadLettered),
        Row(label: "021105 split", shape: .properties(2), result: error(403, "IOTDA.021105"), actions: ["split"], outcome: .split),
        Row(label: "413 split", shape: .properties(2), result: status(413, "<html>413</html>"), actions: ["split"], outcome: .split),
        Row(label: "413 alone dead-letter", shape: .properties(1), result: status(413), actions: ["deadLetter"], outcome: .deadLettered),
        Row(label: "429 slow down", shape: .properties(2), result: status(429), actions: ["slowDown", "retryAfter"], outcome: .retry),
        Row(label: "500 retry", shape: .properties(2), result: status(500), actions: ["retryAfter"], outcome: .retry),
        Row(label: "502 retry", shape: .properties(2), result: status(502, "<html>bad gateway</html>"), actions: ["retryAfter"], outcome: .retry),
        Row(label: "503 retry", shape: .properties(2), result: status(503), actions: ["retryAfter"], outcome: .retry),
        Row(label: "504 retry", shape: .properties(2), result: status(504), actions: ["retryAfter"], outcome: .retry),
        Row(label: "408 retry", shape: .properties(2), result: status(408), actions: ["retryAfter"], outcome: .retry),
        Row(label: "timeout retry", shape: .properties(2), result: .transportFailure(TransportFailure(reason: "timeout", isTimeout: true)), actions: ["retryAfter"], outcome: .retry),
        Row(label: "connection refused retry", shape: .properties(2), result: .transportFailure(TransportFailure(reason: "refused")), actions: ["retryAfter"], outcome: .retry),
        Row(label: "Cumulocity 201", shape: .measurements, result: status(201), actions: ["delete"], outcome: .delivered),
        Row(label: "Cumulocity 401 unauthorized", shape: .measurements, result: status(401), actions: ["unauthorized"], outcome: .retry),
        Row(label: "Cumulocity 422 bisect", shape: .measurements, result: status(422, #"{"error":"x","message":"y"}"#), actions: ["bisect"], outcome: .split),
        Row(label: "Cumulocity 503 retry", shape: .measurements, result: status(503), actions: ["retryAfter"], outcome: .retry),
    ]

    @Test(arguments: rows)
    func everyErrorTableRowGivesItsAction(row: Row) throws {
        let records: [StoredRecord]
        switch row.shape {
        case .properties(let count): records = (1...count).map { Fixture.property(Int64($0)) }
        case .children: records = [Fixture.child(1, child: "c1"), Fixture.child(2, child: "c2"), Fixture.child(3, child: "c1")]
        case .measurements: records = [Fixture.measurement(1), Fixture.measurement(2)]
        }
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack(records).requests)
        let value1 = harness.nextSend()
        let (request, attempt, token) = try #require(value1)
        #expect(attempt == 1)
        #expect((token != nil) == (request.platform == .iotda))
        let value2 = harness.machine.requestFinished(request, result: row.result, attempt: attempt, now: harness.now)
        let decision = try #require(value2)
        #expect(decision.actions.map(name) == row.actions)
        #expect(decision.outcome.result == row.outcome)
        #expect(decision.outcome.attempt == 1)
        #expect(decision.outcome.recordIDs == request.recordIDs)
        if row.label.hasPrefix("021104") {
            #expect(decision.actions == [.deadLetterChild(child: "c2", ids: [2], reason: RejectionReason(
                reason: "unknown child device", httpStatus: 400, errorCode: "IOTDA.021104", errorMessage: "error"))])
            // The rest of the request (c1's records) goes next.
            #expect(harness.machine.queuedRequests.map(\.recordIDs) == [[1, 3]])
        }
    }

    // MARK: Bisect, unknown child

    @Test func bisectIsolatesOnePoisonRecordAmongSixteenAndDeliversTheRest() {
        let records = (1...16).map { Fixture.property(Int64($0), service: "S\($0)") }
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack(records).requests)
        #expect(harness.machine.queuedRequests.count == 1)
        let log = harness.drain { request in
            request.recordIDs.contains(7) ? Fixture.iotdaError(400, "IOTDA.000006", "Invalid input data.") : Fixture.ok
        }
        #expect(log.deadLettered == [7])
        #expect(log.reasons == [RejectionReason(reason: "invalid input", httpStatus: 400, errorCode: "IOTDA.000006", errorMessage: "Invalid input data.")])
        #expect(log.deleted == (1...16).filter { $0 != 7 }.map { Int64($0) })  // in id order
        #expect(log.sends <= 1 + 2 * 4)  // one bad record costs about 2·log2(16) requests
        #expect(Set(log.outcomes.map(\.result)) == [.split, .delivered, .deadLettered])
    }

    @Test func unknownChildDeadLettersOnlyThatChild() {
        let records = [Fixture.child(1, child: "c1"), Fixture.child(2, child: "c2"), Fixture.child(3, child: "c3"), Fixture.child(4, child: "c2")]
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack(records).requests)
        var seen: [[Int64]] = []
        let log = harness.drain { request in
            seen.append(request.recordIDs)
            return request.children.contains("c2")
                ? Fixture.iotdaError(400, "IOTDA.021104", "The sub device c2 is not under the gateway gw.") : Fixture.ok
        }
        #expect(seen == [[1, 2, 4, 3], [1, 3]])
        #expect(log.deadLettered == [2, 4])
        #expect(log.deleted == [1, 3])
    }

    @Test func unknownChildNotNamedIsIsolatedByBisecting() {
        let records = [Fixture.child(1, child: "c1"), Fixture.child(2, child: "c2"), Fixture.child(3, child: "c3"), Fixture.child(4, child: "c2")]
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack(records).requests)
        let log = harness.drain { request in
            request.children.contains("c2") ? Fixture.iotdaError(400, "IOTDA.021104", "Sub device not found.") : Fixture.ok
        }
        #expect(log.deadLettered.sorted() == [2, 4])
        #expect(log.deleted.sorted() == [1, 3])
    }

    @Test func tooManyChildrenSplitsUntilThePlatformAccepts() {
        // A platform whose limit is lower than configured: 2 children.
        let records = (1...8).map { Fixture.child(Int64($0), child: "c\($0)") }
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack(records).requests)
        let log = harness.drain { $0.children.count > 2 ? Fixture.iotdaError(403, "IOTDA.021103") : Fixture.ok }
        #expect(log.deleted == (1...8).map { Int64($0) })
        #expect(log.deadLettered.isEmpty)
    }

    // MARK: Authentication

    @Test func tokenRejectedReauthenticatesOnceThenRetriesAndASecondRejectionIsUnauthorized() throws {
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack([Fixture.property(1)]).requests)
        #expect(harness.machine.nextStep(now: harness.now) == .authenticate(deviceID: "d1"))
        _ = harness.machine.authenticated(deviceID: "d1", token: AccessToken("first", expiresIn: .seconds(3600)), now: harness.now)
        guard case .send(let request, 1, let token?) = harness.machine.nextStep(now: harness.now) else { Issue.record(); return }
        #expect(token.headerValue == "first")

        let rejected = Fixture.iotdaError(403, "IOTDA.000004", "The access token is invalid.")
        let value3 = harness.machine.requestFinished(request, result: rejected, attempt: 1, now: harness.now)
        var decision = try #require(value3)
        #expect(decision.actions == [.reauthenticate(deviceID: "d1")])
        #expect(decision.outcome.result == .retry)
        #expect(harness.machine.nextStep(now: harness.now) == .authenticate(deviceID: "d1"))
        _ = harness.machine.authenticated(deviceID: "d1", token: AccessToken("second", expiresIn: .seconds(3600)), now: harness.now)
        guard case .send(let again, 2, let fresh?) = harness.machine.nextStep(now: harness.now) else { Issue.record(); return }
        #expect(fresh.headerValue == "second")
        #expect(again.recordIDs == [1])

        let value4 = harness.machine.requestFinished(again, result: rejected, attempt: 2, now: harness.now)
        decision = try #require(value4)
        #expect(decision.actions == [.unauthorized(retryIn: .seconds(900))])
        #expect(harness.machine.status(now: harness.now).phase == .unauthorized(until: TestInstant.zero.advanced(by: .seconds(900))))
        #expect(harness.machine.nextStep(now: harness.now) == .wait(until: TestInstant.zero.advanced(by: .seconds(900))))
        // After the long wait it authenticates again.
        #expect(harness.machine.nextStep(now: .zero.advanced(by: .seconds(900))) == .authenticate(deviceID: "d1"))
    }

    @Test func aDeliveryInBetweenAllowsAnotherReauthentication() throws {
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack([Fixture.message(1), Fixture.message(2)]).requests)
        let rejected = Fixture.iotdaError(403, "IOTDA.000004")
        let value5 = harness.nextSend()
        var (request, attempt, _) = try #require(value5)
        #expect(harness.machine.requestFinished(request, result: rejected, attempt: attempt, now: harness.now)?.actions == [.reauthenticate(deviceID: "d1")])
        let value6 = harness.nextSend()
        (request, attempt, _) = try #require(value6)
        #expect(harness.machine.requestFinished(request, result: Fixture.ok, attempt: attempt, now: harness.now)?.actions == [.delete(ids: [1])])
        let value7 = harness.nextSend()
        (request, attempt, _) = try #require(value7)
        #expect(harness.machine.requestFinished(request, result: rejected, attempt: attempt, now: harness.now)?.actions == [.reauthenticate(deviceID: "d1")])
        #expect(harness.authentications.count == 2)
    }

    @Test func refusedCredentialsOnAuthenticationAreUnauthorized() {
        var machine = Machine()
        machine.enqueue(packer.pack([Fixture.property(1)]).requests)
        #expect(machine.nextStep(now: .zero) == .authenticate(deviceID: "d1"))
        let actions = machine.authenticationFailed(deviceID: "d1", result: Fixture.iotdaError(401, "IOTDA.000002", "Authentication failed."), now: .zero)
        #expect(actions == [.unauthorized(retryIn: .seconds(900))])
        let status = machine.status(now: .zero)
        #expect(status.phase.name == "unauthorized")
        #expect(status.lastError == "authentication of d1: authentication failed (HTTP 401, IOTDA.000002: Authentication failed.)")
        #expect(machine.nextStep(now: .zero.advanced(by: .seconds(899))) == .wait(until: .zero.advanced(by: .seconds(900))))
    }

    @Test func transientAuthenticationFailureBacksOffAndTriesAgain() {
        var machine = Machine(random: FixedRandom(value: .max))
        machine.enqueue(packer.pack([Fixture.property(1)]).requests)
        #expect(machine.nextStep(now: .zero) == .authenticate(deviceID: "d1"))
        let actions = machine.authenticationFailed(deviceID: "d1", result: .transportFailure(TransportFailure(reason: "timeout", isTimeout: true)), now: .zero)
        guard case .retryAfter(let delay)? = actions.first else { Issue.record("\(actions)"); return }
        #expect(delay > .zero && delay <= .seconds(1))
        #expect(machine.nextStep(now: .zero.advanced(by: delay)) == .authenticate(deviceID: "d1"))
    }

    @Test func theTokenIsRefreshedBeforeItExpires() throws {
        var machine = Machine()
        machine.enqueue(packer.pack((1...3).map { Fixture.message(Int64($0)) }).requests)
        #expect(machine.nextStep(now: .zero) == .authenticate(deviceID: "d1"))
        let token = AccessToken("t", expiresIn: .seconds(86_399))
        #expect(token.refreshAfter == .seconds(86_099))  // 5 minutes early
        _ = machine.authenticated(deviceID: "d1", token: token, now: .zero)
        let beforeRefresh = TestInstant.zero.advanced(by: .seconds(86_098))
        guard case .send(let request, let attempt, _) = machine.nextStep(now: beforeRefresh) else { Issue.record(); return }
        _ = machine.requestFinished(request, result: Fixture.ok, attempt: attempt, now: beforeRefresh)
        #expect(machine.nextStep(now: .zero.advanced(by: .seconds(86_099))) == .authenticate(deviceID: "d1"))
        // A short token refreshes at 90 % of its life.
        #expect(AccessToken("t", expiresIn: .seconds(60)).refreshAfter == .seconds(54))
    }

    // MARK: Backoff, Retry-After, rate limits

    @Test func retryAfterIsHonoured() throws {
        var harness = SyncHarness(random: FixedRandom(value: 0))
        harness.machine.enqueue(packer.pack([Fixture.property(1)]).requests)
        let value8 = harness.nextSend()
        let (request, attempt, _) = try #require(value8)
        let busy = ExchangeResult.response(PlatformResponse(status: 503, retryAfter: .seconds(120)))
        let value9 = harness.machine.requestFinished(request, result: busy, attempt: attempt, now: harness.now)
        let decision = try #require(value9)
        #expect(decision.actions == [.retryAfter(.seconds(120))])
        #expect(harness.machine.nextStep(now: harness.now.advanced(by: .seconds(119))) == .wait(until: harness.now.advanced(by: .seconds(120))))
        guard case .send(_, 2, _) = harness.machine.nextStep(now: harness.now.advanced(by: .seconds(120))) else { Issue.record(); return }
    }

    @Test func backoffGrowsIsCappedAndResetsAfterSuccess() throws {
        var harness = SyncHarness(random: FixedRandom(value: .max))  // the longest jitter: just under the ceiling
        harness.machine.enqueue(packer.pack([Fixture.property(1), Fixture.property(2, device: "d2")]).requests)
        var delays: [Duration] = []
        for expectedAttempt in 1...12 {
            let value10 = harness.nextSend()
            let (request, attempt, _) = try #require(value10)
            #expect(attempt == expectedAttempt)
            let value11 = harness.machine.requestFinished(request, result: .transportFailure(TransportFailure(reason: "refused")), attempt: attempt, now: harness.now)
            let decision = try #require(value11)
            guard case .retryAfter(let delay) = decision.actions[0] else { Issue.record(); return }
            delays.append(delay)
        }
        let ceilings: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
        for (delay, ceiling) in zip(delays, ceilings) {
            #expect(seconds(delay) <= ceiling && seconds(delay) > ceiling * 0.999, "\(delay) vs \(ceiling)")
        }
        let status = harness.machine.status(now: harness.now)
        #expect(status.consecutiveFailures == 12)
        #expect(status.currentBackoff == delays.last)
        #expect(status.lastError == "transient failure: refused")

        let value12 = harness.nextSend()
        var (request, attempt, _) = try #require(value12)
        #expect(harness.machine.requestFinished(request, result: Fixture.ok, attempt: attempt, now: harness.now)?.outcome.attempt == 13)
        #expect(harness.machine.status(now: harness.now).consecutiveFailures == 0)
        #expect(harness.machine.status(now: harness.now).lastSuccess == harness.now)
        let value13 = harness.nextSend()
        (request, attempt, _) = try #require(value13)
        let value14 = harness.machine.requestFinished(request, result: Fixture.status503, attempt: attempt, now: harness.now)
        let decision = try #require(value14)
        guard case .retryAfter(let delay) = decision.actions[0] else { Issue.record(); return }
        #expect(delay <= .seconds(1))
    }

    @Test func rateLimitingHalvesTheRateAndItRecoversOnSuccess() throws {
        var harness = SyncHarness(configuration: SyncConfiguration(pacing: PacingConfiguration(maxRequestsPerSecond: 10)))
        harness.machine.enqueue(packer.pack((1...300).map { Fixture.message(Int64($0)) }).requests)
        let value15 = harness.nextSend()
        var (request, attempt, _) = try #require(value15)
        let limited = Fixture.iotdaError(403, "IOTDA.021101", "Device flow control.")
        let value16 = harness.machine.requestFinished(request, result: limited, attempt: attempt, now: harness.now)
        let decision = try #require(value16)
        #expect(decision.actions.first == .slowDown(requestsPerSecond: 5))
        #expect(harness.machine.status(now: harness.now).requestRate == 5)
        // A second limit halves again; the floor holds.
        let value17 = harness.nextSend()
        (request, attempt, _) = try #require(value17)
        _ = harness.machine.requestFinished(request, result: limited, attempt: attempt, now: harness.now)
        #expect(harness.machine.status(now: harness.now).requestRate == 2.5)

        var rates: [Double] = []
        let recovering = harness.now
        while rates.last != 10, rates.count < 200 {
            let value18 = harness.nextSend()
            (request, attempt, _) = try #require(value18)
            _ = harness.machine.requestFinished(request, result: Fixture.ok, attempt: attempt, now: harness.now)
            rates.append(harness.machine.status(now: harness.now).requestRate ?? .infinity)
        }
        #expect(zip(rates, rates.dropFirst()).allSatisfy { $0 <= $1 && $1 <= max($0 * 1.2, 10) + 1e-9 }, "\(rates)")
        #expect(rates.last == 10)  // back to the configured rate
        // x1.2 a second at most: 2.5 -> 10 takes eight raises, so at least 7 s, and no more than 12.
        let took = recovering.duration(to: harness.now)
        #expect(took >= .seconds(7) && took <= .seconds(12), "\(took)")
    }

    @Test func rateLimitingWhenUnlimitedHalvesTheObservedRateAndLiftsItAgain() throws {
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack((1...60).map { Fixture.message(Int64($0)) }).requests)
        for _ in 0..<8 {  // 4 requests per second
            let value19 = harness.nextSend()
            let (request, attempt, _) = try #require(value19)
            _ = harness.machine.requestFinished(request, result: Fixture.ok, attempt: attempt, now: harness.now)
            harness.now = harness.now.advanced(by: .milliseconds(250))
        }
        #expect(harness.machine.status(now: harness.now).requestRate == nil)
        let value20 = harness.nextSend()
        var (request, attempt, _) = try #require(value20)
        let value21 = harness.machine.requestFinished(request, result: Fixture.status429, attempt: attempt, now: harness.now)
        let decision = try #require(value21)
        guard case .slowDown(let rate) = decision.actions[0] else { Issue.record(); return }
        #expect(abs(rate - 2) < 0.01)
        for _ in 0..<20 {
            let value22 = harness.nextSend()
            (request, attempt, _) = try #require(value22)
            _ = harness.machine.requestFinished(request, result: Fixture.ok, attempt: attempt, now: harness.now)
        }
        #expect(harness.machine.status(now: harness.now).requestRate == nil)
    }

    // MARK: Status, outcomes, misuse

    @Test func statusShowsPhasesAndNoSecret() throws {
        var harness = SyncHarness()
        #expect(harness.machine.status(now: harness.now).phase == .idle)
        #expect(harness.machine.nextStep(now: harness.now) == .needRecords)
        harness.machine.enqueue(packer.pack([Fixture.property(1)]).requests)
        #expect(harness.machine.nextStep(now: harness.now) == .authenticate(deviceID: "d1"))
        #expect(harness.machine.status(now: harness.now).phase == .authenticating)
        #expect(harness.machine.nextStep(now: harness.now) == .busy)
        _ = harness.machine.authenticated(deviceID: "d1", token: AccessToken("sekrit-token", expiresIn: .seconds(3600)), now: harness.now)
        guard case .send(let request, _, _) = harness.machine.nextStep(now: harness.now) else { Issue.record(); return }
        #expect(harness.machine.status(now: harness.now).phase == .sending)
        #expect(harness.machine.status(now: harness.now).queuedRecords == 1)
        let value23 = harness.machine.requestFinished(request, result: Fixture.status503, attempt: 1, now: harness.now)
        let decision = try #require(value23)
        guard case .retryAfter(let delay) = decision.actions[0] else { Issue.record(); return }
        let status = harness.machine.status(now: harness.now)
        #expect(status.phase == .backoff(until: harness.now.advanced(by: delay)))
        #expect(status.lastError == "transient failure (HTTP 503)")
        #expect(!"\(status)".contains("sekrit"))
    }

    @Test func everyOutcomeCarriesItsAttemptNumber() throws {
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack([Fixture.property(1)]).requests)
        var results: [ExchangeResult] = [Fixture.status503, Fixture.status(429), Fixture.ok]
        let log = harness.drain { _ in results.removeFirst() }
        #expect(log.outcomes.map(\.result) == [.retry, .retry, .delivered])
        #expect(log.outcomes.map(\.attempt) == [1, 2, 3])
        #expect(log.outcomes.map(\.httpStatus) == [503, 429, 200])
    }

    @Test func aStaleReportIsIgnored() throws {
        var harness = SyncHarness()
        harness.machine.enqueue(packer.pack([Fixture.property(1), Fixture.property(2, device: "d2")]).requests)
        let value24 = harness.nextSend()
        let (request, _, _) = try #require(value24)
        #expect(harness.machine.requestFinished(request, result: Fixture.ok, attempt: 2, now: harness.now) == nil)
        let notInFlight = harness.machine.queuedRequests[1]
        #expect(harness.machine.requestFinished(notInFlight, result: Fixture.ok, attempt: 1, now: harness.now) == nil)
        #expect(harness.machine.requestFinished(request, result: Fixture.ok, attempt: 1, now: harness.now) != nil)
    }

    @Test func pacingDrainsABacklogAtTheConfiguredRequestRate() {
        var harness = SyncHarness(configuration: SyncConfiguration(pacing: PacingConfiguration(maxRequestsPerSecond: 2)))
        harness.machine.enqueue(packer.pack((1...10).map { Fixture.message(Int64($0)) }).requests)
        _ = harness.drain { _ in Fixture.ok }
        let sentAt = harness.sendTimes.map { seconds($0.offset) }
        // A full bucket of 2, then one every 0.5 s.
        #expect(sentAt.count == 10)
        for (index, time) in sentAt.enumerated() {
            #expect(abs(time - max(0, Double(index - 1) * 0.5)) < 1e-6, "\(sentAt)")
        }
    }
}

extension Fixture {
    static let status503 = ExchangeResult.response(PlatformResponse(status: 503))
    static let status429 = ExchangeResult.response(PlatformResponse(status: 429))
    static func status(_ code: Int) -> ExchangeResult { .response(PlatformResponse(status: code)) }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}
