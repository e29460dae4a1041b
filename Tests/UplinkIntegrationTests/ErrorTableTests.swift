import Foundation
import TestSupport
import Testing

/// Every row of the uplink's error table, injected with the simulator's faults and checked
/// through the outcome: what the simulator accepted, the outbox, the dead letters, the audit.
extension Uplink {
    @Suite struct ErrorTableTests {
        static let propertiesPath = "/sys/properties/report$"
        static let dataPaths = "/sys/(properties/report|messages/up|gateway/sub-devices/properties/report)$"

        /// A fresh simulator (HTTP) and an edgebuf configured for it.
        static func setUp(extra: [String: String] = [:], simulatorArguments: [String] = []) throws -> (Simulator, Workspace) {
            let simulator = try Simulator(extra: simulatorArguments)
            let ws = try Workspace(Workspace.Uplink(simulator: simulator, extra: extra))
            return (simulator, ws)
        }

        /// Flushes; the outbox must be drained.
        @discardableResult
        static func flushDrains(_ ws: Workspace, timeout: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) throws -> Double {
            let (result, seconds) = try ws.flush(timeout: timeout, extra: ["--log-level", "notice"])
            #expect(result.status == 0, "flush: \(result.stdout) \(result.stderr.suffix(3000))", sourceLocation: sourceLocation)
            #expect(try ws.outbox().isEmpty, "outbox drained", sourceLocation: sourceLocation)
            #expect(try ws.auditIntact(), sourceLocation: sourceLocation)
            return seconds
        }

        /// Each seq of `seqs` accepted exactly once, and nothing else.
        static func expectAcceptedOnce(_ simulator: Simulator, _ seqs: some Sequence<Int>, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let counts = acceptedCounts(try simulator.accepted())
            let expected = Set(seqs)
            #expect(Set(counts.keys) == expected, "missing \(expected.subtracting(counts.keys).sorted()), unexpected \(Set(counts.keys).subtracting(expected).sorted())", sourceLocation: sourceLocation)
            #expect(counts.values.allSatisfy { $0 == 1 }, "duplicates: \(counts.filter { $0.value > 1 }.keys.sorted())", sourceLocation: sourceLocation)
        }

        // MARK: Transient

        @Test func serviceUnavailableIsRetriedWithBackoffThenDelivered() throws {
            let (simulator, ws) = try Self.setUp()
            try simulator.fault(["count": 1, "status": 503, "path": Self.propertiesPath])
            try ws.enqueue((1...5).map { Line.property(seq: $0) })
            try Self.flushDrains(ws)
            try Self.expectAcceptedOnce(simulator, 1...5)
            let rows = try ws.auditRequests()
            #expect(rows.map { $0.string("outcome") ?? "" } == ["retry", "delivered"])
            #expect(rows.map { $0.int("attempt") ?? 0 } == [1, 2])
            #expect(rows.first?.int("http_status") == 503)
            #expect(rows.first?.string("body_sha256") == rows.last?.string("body_sha256"), "the same request went again")
            #expect(rows.allSatisfy { $0.int("records") == 5 && $0.int("first_id") == 1 && $0.int("last_id") == 5 })
        }

        @Test func retryAfterIsHonoured() throws {
            // backoff_max is 500 ms: only Retry-After can explain a 2 s pause.
            let (simulator, ws) = try Self.setUp()
            try simulator.fault(["count": 1, "status": 503, "retry_after": 2, "path": Self.propertiesPath])
            try ws.enqueue((1...3).map { Line.property(seq: $0) })
            let seconds = try Self.flushDrains(ws)
            #expect(seconds >= 2)
            try Self.expectAcceptedOnce(simulator, 1...3)
            let rows = try ws.auditRequests()
            #expect(rows.map { $0.string("outcome") ?? "" } == ["retry", "delivered"])
            let first = parseTimestamp(rows.first?.string("at") ?? ""), second = parseTimestamp(rows.last?.string("at") ?? "")
            let gap = (second ?? .distantPast).timeIntervalSince(first ?? .distantFuture)
            #expect(gap >= 1.99, "the resend came \(gap) s after the 503 with Retry-After: 2")
        }

        // MARK: Refused content

        @Test func poisonRecordIsDeadLetteredAndTheRestDelivered() throws {
            let (simulator, ws) = try Self.setUp()
            try ws.enqueue((1...16).map { Line.property(seq: $0, extra: $0 == 7 ? ["poison": true] : ["v": $0]) })
            try Self.flushDrains(ws)
            try Self.expectAcceptedOnce(simulator, (1...16).filter { $0 != 7 })
            let letters = try ws.deadLetters()
            #expect(letters.count == 1)
            let letter = try #require(letters.first)
            #expect(letter.object("payload")?.object("properties")?.int("seq") == 7)
            #expect(letter.int("http_status") == 400)
            #expect(letter.string("error_code") == "IOTDA.000006")
            #expect(letter.string("error_message")?.contains("poison") == true, "\(letter.string("error_message") ?? "nil")")
            let rows = try ws.auditRequests()
            #expect(rows.filter { $0.string("outcome") == "dead-lettered" }.map { $0.int("records") } == [1])
            #expect(rows.filter { $0.string("outcome") == "split" }.allSatisfy { $0.int("http_status") == 400 && $0.string("error_code") == "IOTDA.000006" })
            #expect(rows.filter { $0.string("outcome") == "delivered" }.reduce(0) { $0 + ($1.int("records") ?? 0) } == 15)
        }

        enum TooLarge: String, CaseIterable, Sendable { case iotda021105, http413 }

        @Test(arguments: TooLarge.allCases)
        func tooLargeIsSplitThenDelivered(variant: TooLarge) throws {
            let (simulator, ws) = try Self.setUp()
            switch variant {
            case .iotda021105:
                // The platform's limit is lower than edgebuf believes: a real 403 IOTDA.021105.
                try simulator.configure(["max_body_bytes": 4_000])
            case .http413:
                try simulator.fault(["count": 1, "status": 413, "path": Self.propertiesPath])
            }
            try ws.enqueue((1...10).map { Line.property(seq: $0, extra: ["pad": String(repeating: "p", count: 900)]) })
            try Self.flushDrains(ws)
            try Self.expectAcceptedOnce(simulator, 1...10)
            #expect(try ws.deadLetters().isEmpty)
            let rows = try ws.auditRequests()
            let first = try #require(rows.first)
            #expect(first.string("outcome") == "split")
            #expect(first.int("records") == 10)
            switch variant {
            case .iotda021105:
                #expect(first.int("http_status") == 403 && first.string("error_code") == "IOTDA.021105")
                #expect(try simulator.dataRequests().filter { $0.int("status") == 200 }.allSatisfy { ($0.int("body_bytes") ?? .max) <= 4_000 })
            case .http413:
                #expect(first.int("http_status") == 413)
                #expect(rows.count == 3, "one split, two halves delivered")
            }
            #expect(rows.last?.string("outcome") == "delivered")
        }

        @Test(arguments: [403, 400])
        func tooManyChildrenIsSplit(status: Int) throws {
            let (simulator, ws) = try Self.setUp()
            try simulator.configure(["max_children": 10, "children_limit_status": status])
            try ws.enqueue((1...30).map { Line.child(seq: $0, child: String(format: "child-%02d", $0)) })
            try Self.flushDrains(ws)
            try Self.expectAcceptedOnce(simulator, 1...30)
            #expect(try ws.deadLetters().isEmpty)
            let rows = try ws.auditRequests()
            let splits = rows.filter { $0.string("outcome") == "split" }
            #expect(!splits.isEmpty)
            #expect(splits.allSatisfy { $0.int("http_status") == status && $0.string("error_code") == "IOTDA.021103" })
            #expect(rows.filter { $0.string("outcome") == "delivered" }.allSatisfy { ($0.int("records") ?? .max) <= 10 })
        }

        @Test func missingChildIsDeadLetteredAlone() throws {
            let (simulator, ws) = try Self.setUp()
            try simulator.configure(["missing_children": ["child-07"]])
            var lines: [String] = []
            var seq = 0
            for round in 0..<2 {
                for c in 0..<20 {
                    seq += 1
                    lines.append(Line.child(seq: seq, child: String(format: "child-%02d", c), extra: ["round": round]))
                }
            }
            try ws.enqueue(lines)
            try Self.flushDrains(ws)
            // child-07 carries seq 8 and 28.
            try Self.expectAcceptedOnce(simulator, (1...40).filter { $0 != 8 && $0 != 28 })
            let letters = try ws.deadLetters()
            #expect(Set(letters.compactMap { $0.object("payload")?.object("properties")?.int("seq") }) == [8, 28])
            #expect(letters.allSatisfy { $0.string("child") == "child-07" && $0.int("http_status") == 400 && $0.string("error_code") == "IOTDA.021104" })
            #expect(letters.allSatisfy { $0.string("error_message")?.contains("child-07") == true })
            let rows = try ws.auditRequests()
            #expect(rows.filter { $0.string("outcome") == "dead-lettered" }.allSatisfy { $0.string("error_code") == "IOTDA.021104" })
        }

        // MARK: Credentials

        @Test func revokedTokenIsRenewedAndTheRequestResent() throws {
            let (simulator, ws) = try Self.setUp()
            try ws.enqueue((1...3).map { Line.property(seq: $0) })
            let daemon = try ws.startRun()
            defer { daemon.kill9() }
            #expect(poll(timeout: .seconds(10)) { ((try? simulator.accepted()) ?? []).count == 3 })
            try simulator.configure(["revoke_tokens": true])
            try ws.enqueue((4...6).map { Line.property(seq: $0) })
            #expect(poll(timeout: .seconds(10)) { ((try? simulator.accepted()) ?? []).count == 6 }, "delivered after the revocation")
            daemon.send(SIGTERM)
            #expect(daemon.wait(timeout: .seconds(5)) == 0, "run: \(daemon.stderrText.suffix(2000))")
            try Self.expectAcceptedOnce(simulator, 1...6)
            #expect(try simulator.stats().object("auths")?.int("ok") == 2, "authenticated once more after the revocation")
            let events = try ws.audit().map { row -> String in
                let detail = row.object("detail") ?? [:]
                return row.string("event") == "request" ? "\(detail.string("outcome") ?? "?")/\(detail.int("http_status") ?? 0)/\(detail.string("error_code") ?? "-")" : row.string("event") ?? "?"
            }
            #expect(events == ["authenticated", "delivered/200/-", "retry/403/IOTDA.000004", "authenticated", "delivered/200/-"], "\(events)")
            #expect(try ws.outbox().isEmpty)
        }

        @Test func wrongSecretGivesUpQuicklyAndKeepsEverything() throws {
            let (simulator, ws) = try Self.setUp()
            var uplink = Workspace.Uplink(simulator: simulator, extra: ["unauthorized_backoff": "\"60s\""])
            uplink.secret = "not-the-secret"
            try ws.write(uplink)
            try ws.enqueue((1...5).map { Line.property(seq: $0) })
            let (result, seconds) = try ws.flush(timeout: 2)
            #expect(result.status == 69, "flush --timeout 2 exited \(result.status) after \(seconds) s (137: killed by the test, still running 5 s past its timeout)")
            #expect(seconds < 6, "flush gave up after \(seconds) s")
            #expect(result.stderr.contains("uplink unauthorized"), "\(result.stderr.suffix(1500))")
            let answer = try? parseObject(result.stdout)
            #expect(answer?.bool("emptied") == false)
            #expect(answer?.int("remaining_records") == 5)
            #expect(answer?.string("last_error")?.contains("IOTDA.000002") == true, "\(String(describing: answer))")
            let state = try ws.uplinkState()
            #expect(state?.string("phase") == "unauthorized", "\(String(describing: state))")
            #expect(state?.string("last_error")?.contains("IOTDA.000002") == true)
            #expect(try ws.outbox().count == 5, "nothing lost")
            #expect(try simulator.accepted().isEmpty)
            let auths = try simulator.stats().object("auths")
            #expect(auths?.int("failed") == 1, "one attempt, then the long unauthorized backoff: \(String(describing: auths))")
            #expect(try ws.audit().filter { $0.string("event") == "authentication_failed" }.count == 1)
            #expect(!result.stderr.contains("not-the-secret") && !result.stdout.contains("not-the-secret"))
            #expect(try ws.auditIntact())
        }

        // MARK: Rate limiting

        @Test func rateLimitSlowsDownAndStillDelivers() throws {
            let (simulator, ws) = try Self.setUp()
            try simulator.configure(["rate_limit_per_second": 4])
            try ws.enqueue((1...24).map { Line.message(seq: $0) })
            let (result, _) = try ws.flush(timeout: 60, extra: ["--log-level", "notice"])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))")
            try Self.expectAcceptedOnce(simulator, 1...24)
            let rows = try ws.auditRequests()
            let limited = rows.filter { $0.string("error_code") == "IOTDA.021101" }
            #expect(!limited.isEmpty, "the platform rate-limited us")
            #expect(limited.allSatisfy { $0.string("outcome") == "retry" && $0.int("http_status") == 403 })
            #expect(result.stderr.contains("uplink rate limited"), "the engine lowered its rate")
            // Not hammering: from a loopback burst (hundreds of requests a second) halving finds
            // 4/s in about eight refusals; a client that keeps returning to its burst rate is
            // refused again after every few deliveries.
            #expect(limited.count <= 16, "\(limited.count) requests were rate-limited for 24 deliveries")
            #expect(try ws.outbox().isEmpty)
        }

        // MARK: Broken answers

        enum Breakage: String, CaseIterable, Sendable {
            case close, reset, truncate, garbage502 = "garbage", hang
            /// The answer one byte per 300 ms: the request timeout (1 s) ends it.
            case slowDrip = "slow_drip"
            /// 8 MiB of valid JSON with 200: over the 4 MiB response cap, aborted, not held.
            case huge
        }

        @Test(arguments: Breakage.allCases)
        func brokenAnswerIsRetriedAndNothingIsLost(breakage: Breakage) throws {
            let (simulator, ws) = try Self.setUp(extra: ["request_timeout": "1"])
            var fault: JSONDict = ["count": 2, "action": breakage.rawValue, "path": Self.dataPaths]
            if breakage == .garbage502 { fault["status"] = 502 }
            if breakage == .slowDrip { fault["drip_interval"] = 0.3 }
            try simulator.fault(fault)
            try ws.enqueue((1...4).map { Line.property(seq: $0) } + (5...6).map { Line.message(seq: $0) })
            try Self.flushDrains(ws)
            try Self.expectAcceptedOnce(simulator, 1...6)
            // The simulator saw both broken exchanges, then three good requests.
            let data = try simulator.dataRequests()
            #expect(data.count == 5)
            switch breakage {
            case .slowDrip:
                // The simulator notices the client gone only at its next byte.
                #expect(data.prefix(2).allSatisfy { $0.string("outcome") != "answered" })
            default:
                let expected = [.garbage502, .huge].contains(breakage) ? "answered" : breakage.rawValue
                #expect(data.prefix(2).allSatisfy { $0.string("outcome") == expected })
            }
            #expect(data.suffix(3).allSatisfy { $0.string("outcome") == "answered" })
            #expect(data.suffix(3).allSatisfy { $0.int("status") == 200 })
            let rows = try ws.auditRequests()
            let retries = rows.filter { $0.string("outcome") == "retry" }
            // Both broken exchanges are the engine's own attempts, each audited: libcurl does
            // not send a request again by itself when a kept-alive connection dies under it.
            #expect(retries.count == 2, "\(retries)")
            #expect(rows.filter { $0.string("outcome") == "delivered" }.count == 3)
            if breakage == .garbage502 {
                #expect(retries.allSatisfy { $0.int("http_status") == 502 })
            } else if breakage == .huge {
                #expect(retries.allSatisfy { ($0.string("detail") ?? "").contains("exceeded the limit") }, "\(retries)")
            } else {
                #expect(retries.allSatisfy { $0.isNull("http_status") })
            }
        }

        /// A 200 whose body is an HTML page (a captive portal, a misrouted proxy) is not the
        /// platform's "200, empty body": the simulator recorded nothing.
        @Test func htmlAnswerWithStatus200IsNotTakenForDelivery() throws {
            let (simulator, ws) = try Self.setUp()
            try simulator.fault(["count": 1, "action": "garbage", "path": Self.propertiesPath])
            try ws.enqueue((1...4).map { Line.property(seq: $0) })
            try Self.flushDrains(ws)
            try Self.expectAcceptedOnce(simulator, 1...4)
        }

        @Test func answerLostAfterAcceptanceDuplicatesOnlyThatBatch() throws {
            let (simulator, ws) = try Self.setUp()
            try simulator.fault(["count": 1, "action": "close", "accept": true, "path": Self.propertiesPath])
            try ws.enqueue((1...10).map { Line.property(seq: $0) } + (11...13).map { Line.message(seq: $0) })
            try Self.flushDrains(ws)
            let counts = acceptedCounts(try simulator.accepted())
            #expect(Set(counts.keys) == Set(1...13))
            #expect(counts.filter { $0.value > 1 }.keys.sorted() == Array(1...10), "only the batch whose answer was lost")
            #expect(counts.values.allSatisfy { $0 <= 2 })
            let data = try simulator.dataRequests()
            #expect(data.first?.string("outcome") == "close")
            #expect(data.count == 5, "the lost answer's batch twice, then three messages")
            let rows = try ws.auditRequests()
            #expect(rows.filter { $0.int("first_id") == 1 }.last?.string("outcome") == "delivered")
            #expect(rows.allSatisfy { $0.string("outcome") == "delivered" || $0.string("outcome") == "retry" })
        }
    }
}
