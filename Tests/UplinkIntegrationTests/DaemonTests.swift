import EdgeStore
import Foundation
import TestSupport
import Testing

/// `edgebuf run` as a daemon: kill -9 during a drain, graceful stop, wake-up on enqueue.
extension Uplink {
    @Suite struct DaemonTests {
        static let dataPaths = "/sys/(properties/report|messages/up|gateway/sub-devices/properties/report)$"

        /// 20 × kill -9 at random moments of a drain of 20,000 records (16 KB bodies, 150 ms per
        /// request): afterwards every record was delivered at least once, and the duplicates
        /// are no more than one request per kill.
        ///
        /// The premise, from the simulator's request log: each daemon is killed 0 to 250 ms
        /// after the simulator saw its first data request, and at most kills a data request
        /// is open there (unanswered) just before the kill. The engine sends one request at a
        /// time, so the simulator's delay is a floor on the drain time whatever the machine's
        /// speed: a cycle of at most 250 ms after its first request lets through at most 3
        /// requests, 20 cycles at most 60 of the ~90 the backlog needs (~215 records of ~76
        /// bytes per body), so every kill comes mid-drain.
        @Test func kill9DuringDrainLosesNothing() throws {
            let simulator = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: simulator, extra: ["max_body_bytes": "16384"]))
            let total = 20_000
            try ws.enqueue((1...total).map { Line.property(seq: $0) })
            try simulator.fault(["count": 1_000_000, "action": "pass", "delay": 0.15, "path": Self.dataPaths])

            var generator = SystemRandomNumberGenerator()
            var moments: [Int] = []
            let kills = 20
            var seenSeq = 0
            var killsDuringRequest = 0
            var inFlightAtKills: Set<Int> = []
            func openData(after seq: Int) -> [JSONDict] {
                ((try? simulator.dataRequests()) ?? []).filter { ($0.int("seq") ?? 0) > seq && $0.bool("done") == false }
            }
            for cycle in 0..<kills {
                let daemon = try ws.startRun(logLevel: "warning", tag: "run-\(cycle)")
                let started = poll(timeout: .seconds(30), interval: .milliseconds(5)) { !openData(after: seenSeq).isEmpty }
                #expect(started, "cycle \(cycle): the daemon sent no data request within 30 s: \(daemon.stderrText.suffix(500))")
                let moment = Int.random(in: 0...250, using: &generator)
                moments.append(moment)
                sleep(.milliseconds(moment))
                let log = (try? simulator.requests()) ?? []
                #expect(daemon.isRunning, "run exited early in cycle \(cycle): \(daemon.stderrText.suffix(500))")
                daemon.kill9()
                let open = log.filter { entry in
                    (entry.int("seq") ?? 0) > seenSeq && entry.bool("done") == false && entry.string("path") != "/v5/device-auth"
                }
                if !open.isEmpty { killsDuringRequest += 1 }
                inFlightAtKills.formUnion(open.compactMap { $0.int("seq") })
                seenSeq = log.compactMap { $0.int("seq") }.max() ?? seenSeq
            }
            let left = try ws.outbox().count
            #expect(left > 0, "every kill came during the drain (\(left) records left)")
            #expect(killsDuringRequest >= kills / 2, "only \(killsDuringRequest) of \(kills) kills came while the simulator held a data request open")
            #expect(try ws.auditIntact(), "the audit survived \(kills) kills")

            _ = try simulator.control("DELETE", "/_sim/faults")
            let (result, _) = try ws.flush(timeout: 120)
            #expect(result.status == 0, "\(result.stderr.suffix(1500))")
            #expect(try ws.outbox().isEmpty)

            let accepted = try simulator.accepted()
            let counts = acceptedCounts(accepted)
            let missing = Set(1...total).subtracting(counts.keys)
            #expect(missing.isEmpty, "lost: \(missing.sorted().prefix(20)) (kill moments \(moments) ms after each daemon's first request)")
            var perRequest: [Int: Int] = [:]
            var firstRequest: [Int: Int] = [:]
            for record in accepted {
                let request = record.int("request") ?? -1
                perRequest[request, default: 0] += 1
                if let seq = seqOf(record), firstRequest[seq] == nil { firstRequest[seq] = request }
            }
            let largest = perRequest.values.max() ?? 0
            let duplicates = counts.values.reduce(0) { $0 + $1 - 1 }
            #expect(duplicates <= kills * largest, "\(duplicates) duplicates, more than \(kills) requests of up to \(largest) records")
            // Only a request accepted whose deletion a kill cut off is sent again: one at a time.
            let duplicatingRequests = Set(counts.filter { $0.value > 1 }.compactMap { firstRequest[$0.key] })
            #expect(duplicatingRequests.count <= kills, "\(duplicatingRequests.count) requests were accepted again, more than the \(kills) kills")
            #expect(try ws.auditIntact())
            print("kill -9 test: \(kills) kills at \(moments) ms after each daemon's first data request; \(killsDuringRequest) with a data request open at the simulator; \(left) records left after the kills; \(duplicates) duplicates from \(duplicatingRequests.count) requests (\(duplicatingRequests.intersection(inFlightAtKills).count) seen open at a kill; bound \(kills) × \(largest) records)")
        }

        /// `[audit] max_rows`: `edgebuf run` removes the oldest audit rows beyond it (at start,
        /// then once a minute) with an `audit_purged` row, the chain still verifies, and the
        /// requests it sends are audited on top.
        @Test func runKeepsTheAuditWithinMaxRows() throws {
            let simulator = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: simulator, extra: ["max_body_bytes": "2048"]))
            let config = try String(contentsOfFile: ws.config, encoding: .utf8) + "\n[audit]\nmax_rows = 1000\n"
            try config.write(toFile: ws.config, atomically: true, encoding: .utf8)
            do {  // 1,500 rows of history
                let connection = try Database.open(path: ws.db)
                try connection.transaction {
                    for n in 1...1500 {
                        var detail = JSONObject()
                        detail.add("n", n)
                        try AuditLog(connection).append("history", detail)
                    }
                }
            }
            try ws.enqueue((1...100).map { Line.property(seq: $0) })
            let daemon = try ws.startRun(logLevel: "info")
            defer { daemon.kill9() }
            let done = poll(timeout: .seconds(30)) {
                ((try? simulator.accepted()) ?? []).count == 100 && ((try? ws.audit()) ?? []).contains { $0.string("event") == "audit_purged" }
            }
            #expect(done, "run: \(daemon.stderrText.suffix(1500))")
            daemon.send(SIGTERM)
            #expect(daemon.wait(timeout: .seconds(10)) == 0, "run: \(daemon.stderrText.suffix(1500))")

            let audit = try ws.audit()
            let purge = try #require(audit.first { $0.string("event") == "audit_purged" }?.object("detail"))
            let through = try #require(purge.int("through_seq"))
            // The rows beyond max_rows went, the oldest first; the history after them stayed.
            #expect(through >= 501 && purge.int("first_seq") == 1 && purge.int("rows") == through)
            #expect(audit.first?.int("seq") == through + 1)
            #expect(audit.filter { $0.string("event") == "history" }.count == 1500 - through)
            let events = Dictionary(grouping: audit.compactMap { $0.string("event") }, by: { $0 }).mapValues(\.count)
            let written = audit.count - (events["history"] ?? 0) - (events["audit_purged"] ?? 0)  // by this run
            #expect(audit.count <= 1000 + written, "\(audit.count) rows: \(events)")
            #expect(acceptedCounts(try simulator.accepted()) == Dictionary(uniqueKeysWithValues: (1...100).map { ($0, 1) }))
            #expect(try ws.auditIntact())
        }

        @Test func sigtermWhileIdleExitsPromptly() throws {
            let simulator = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: simulator))
            try ws.enqueue((1...3).map { Line.property(seq: $0) })
            let daemon = try ws.startRun()
            defer { daemon.kill9() }
            #expect(poll(timeout: .seconds(10)) { ((try? simulator.accepted()) ?? []).count == 3 })
            #expect(poll(timeout: .seconds(5)) { (try? ws.uplinkState()?.string("phase")) == "idle" })
            let started = ContinuousClock.now
            daemon.send(SIGTERM)
            let status = daemon.wait(timeout: .seconds(5))
            let took = ContinuousClock.now - started
            #expect(status == 0, "run: \(daemon.stderrText.suffix(1500))")
            #expect(took < .seconds(10), "stopped after \(took)")
            #expect(try ws.outbox().isEmpty)
            #expect(acceptedCounts(try simulator.accepted()) == [1: 1, 2: 1, 3: 1])
            #expect(try ws.auditIntact())
        }

        @Test func sigtermWhileARequestHangsExitsPromptlyAndDeletesNothing() throws {
            let simulator = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: simulator))  // request_timeout 20 s
            try simulator.fault(["count": 1, "action": "hang", "path": Self.dataPaths])
            try ws.enqueue((1...5).map { Line.property(seq: $0) })
            let daemon = try ws.startRun()
            defer { daemon.kill9() }
            let hanging = poll(timeout: .seconds(10)) {
                ((try? simulator.dataRequests()) ?? []).contains { $0.bool("done") == false }
            }
            #expect(hanging, "a request is hanging")
            let started = ContinuousClock.now
            daemon.send(SIGTERM)
            let status = daemon.wait(timeout: .seconds(10))
            let took = ContinuousClock.now - started
            #expect(status == 0, "run: \(daemon.stderrText.suffix(1500))")
            #expect(took < .seconds(10), "stopped after \(took)")
            #expect(try simulator.accepted().isEmpty)
            #expect(try ws.outbox().count == 5, "nothing deleted that was not accepted")
            #expect(try !ws.auditRequests().contains { $0.string("outcome") == "delivered" })
            #expect(try ws.auditIntact())
            // The next start sends them.
            let (result, _) = try ws.flush(timeout: 30)
            #expect(result.status == 0)
            #expect(acceptedCounts(try simulator.accepted()) == Dictionary(uniqueKeysWithValues: (1...5).map { ($0, 1) }))
        }

        /// An idle daemon picks up a record enqueued by another process at once (inotify on
        /// the WAL), not at its 30 s safety-net timeout.
        @Test func enqueueFromAnotherProcessWakesTheDaemon() throws {
            let simulator = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: simulator))
            try ws.enqueue([Line.property(seq: 0)])
            let daemon = try ws.startRun()
            defer { daemon.kill9() }
            // Warm up (device-auth, first delivery), then let it go idle.
            #expect(poll(timeout: .seconds(10)) { ((try? simulator.accepted()) ?? []).count == 1 })
            var latencies: [Double] = []
            for seq in 1...3 {
                #expect(poll(timeout: .seconds(5)) { (try? ws.uplinkState()?.string("phase")) == "idle" })
                sleep(.milliseconds(300))
                let enqueued = try ws.eb(["enqueue", "property", "--device", "gw-1", "--service", "S", "--properties", #"{"seq":\#(seq)}"#])
                #expect(enqueued.status == 0)
                let committed = ContinuousClock.now
                let arrived = poll(timeout: .seconds(5), interval: .milliseconds(5)) {
                    ((try? simulator.accepted()) ?? []).count == seq + 1
                }
                let latency = ContinuousClock.now - committed
                let ms = Double(latency.components.seconds) * 1000 + Double(latency.components.attoseconds) / 1e15
                latencies.append(ms)
                #expect(arrived, "record \(seq) never arrived")
                #expect(latency < .seconds(5), "record \(seq) arrived \(ms) ms after its enqueue")
            }
            print("wake-on-enqueue latency (enqueue exit to seen in /_sim/accepted): \(latencies.map { String(format: "%.0f ms", $0) })")
            daemon.send(SIGTERM)
            #expect(daemon.wait(timeout: .seconds(5)) == 0)
        }
    }
}
