import Foundation
import TestSupport
import Testing

/// The whole daemon killed with `kill -9` again and again while all three paths are busy: an
/// application enqueues (`enqueue --jsonl --ack`, its acknowledgements recorded), the uplink
/// drains to the simulator (each data request held 100 ms, so kills land mid-request), and the
/// downlink takes notifications published into the simulator's Bayeux endpoint into the
/// inbox. After a last clean run: no acknowledged record is lost, duplicates come only from
/// requests in flight at a kill, every delivered notification is stored once or a gap marker
/// stands where it is missing, and the audit chain verifies.
@Suite struct CrashConsistencyTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    static let cycles = 50

    @Test func kill9OfTheWholeDaemonDuringEnqueueDrainAndIntakeLosesNothing() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["EDGEBUF_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        var random = SplitMix64(seed: seed)
        print("crash consistency: seed \(seed) (EDGEBUF_CRASH_SEED=\(seed) replays the kill times)")
        let simulator = try Simulator()
        try simulator.fault(["count": 1_000_000, "action": "pass", "delay": 0.1, "path": simulatorDataPaths])
        let device = Device(label: "edgebuf-crash")
        try device.useSimulator(simulator, extra: ["max_body_bytes": "8192"])
        try device.useDownlink(simulator)
        let producer = Producer(device: device, batch: 10, pause: .milliseconds(40))
        let publisher = Publisher(simulator: simulator, pause: .milliseconds(80))
        producer.attemptOnce()
        producer.start()
        publisher.start()
        defer {
            producer.stop()
            publisher.stop()
        }

        var kills = 0
        var killsDuringUplinkRequest = 0
        var killsDuringHeldPoll = 0
        var inFlightAtKills: Set<Int> = []
        var diedByThemselves: [String] = []
        var seenSeq = 0
        for cycle in 0..<Self.cycles {
            let daemon = try device.startRun(tag: "run-\(cycle)")
            let lifetime = 300 + Int(random.next() % 901)  // 0.3 to 1.2 s
            sleep(.milliseconds(lifetime))
            // What the simulator is serving this daemon right now, then the kill.
            let open = (try? simulator.requests(since: seenSeq)) ?? []
            guard daemon.isRunning else {
                diedByThemselves.append("cycle \(cycle): \(daemon.exitStatus ?? -1): \(daemon.stderrText.suffix(800))")
                continue
            }
            daemon.kill9()
            kills += 1
            let unfinished = open.filter { $0.bool("done") == false }
            let uplink = unfinished.filter { ($0.string("path") ?? "").range(of: simulatorDataPaths, options: .regularExpression) != nil }
            if !uplink.isEmpty { killsDuringUplinkRequest += 1 }
            inFlightAtKills.formUnion(uplink.compactMap { $0.int("seq") })
            if unfinished.contains(where: { $0.string("path") == "/notification/realtime" }) { killsDuringHeldPoll += 1 }
            // The next daemon's requests come after everything seen now.
            seenSeq = open.compactMap { $0.int("seq") }.max().map { $0 + 1 } ?? seenSeq
        }
        producer.stop()
        publisher.stop()
        #expect(diedByThemselves.isEmpty, "edgebuf run exited before it was killed: \(diedByThemselves.prefix(3))")

        // The last, clean run: drain everything, take the last notification, stop with SIGTERM.
        let last = try device.startRun(logLevel: "info", tag: "run-final")
        defer { last.kill9() }
        let drained = poll(timeout: .seconds(90), interval: .milliseconds(200)) { device.outboxIsEmpty }
        #expect(drained, "the outbox drained after the kills: \(last.stderrText.suffix(1500))")
        let connected = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            let state = device.runtimeState("downlink")
            return state?.string("phase") == "connected" && state?.int("pid") == Int(last.pid)
        }
        #expect(connected, "the downlink connected after the kills: \(last.stderrText.suffix(1500))")
        let final = 1_000_000
        try simulator.publishNotification(final)
        let arrived = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            ((try? device.inbox()) ?? []).contains { notificationNumber($0.object("data")) == final }
        }
        #expect(arrived, "a notification published after the kills arrives: \(last.stderrText.suffix(1500))")
        last.send(SIGTERM)
        #expect(last.wait(timeout: .seconds(15)) == 0, "run stops cleanly: \(last.stderrText.suffix(800))")

        // Uplink: every acknowledged record is somewhere, nothing unacknowledged was stored.
        let reconciliation = try Reconciliation(acked: producer.acked, simulator: simulator, device: device)
        print("crash consistency: \(kills) kills (\(killsDuringUplinkRequest) during an uplink request, \(killsDuringHeldPoll) during a held long poll); uplink: \(reconciliation)")
        #expect(reconciliation.lost.isEmpty, "\(reconciliation)")
        #expect(reconciliation.unacknowledged(attempted: producer.attempted).isEmpty)
        // Duplicates: only from a request accepted whose deletion a kill cut off. The uplink has
        // one data request out at a time: at most one such request per kill.
        let accepted = try simulator.accepted()
        var firstRequest: [Int: Int] = [:]
        for record in accepted {
            guard let seq = Records.seq(record), let request = record.int("request") else { continue }
            if firstRequest[seq] == nil { firstRequest[seq] = request }
        }
        let duplicated = reconciliation.acceptedCounts.filter { $0.value > 1 }.map(\.key)
        let duplicatingRequests = Set(duplicated.compactMap { firstRequest[$0] })
        print("crash consistency: \(duplicated.count) records accepted twice, from \(duplicatingRequests.count) requests (\(duplicatingRequests.intersection(inFlightAtKills).count) seen in flight at a kill)")
        #expect(duplicatingRequests.count <= kills, "\(duplicatingRequests.count) requests were accepted again, more than the \(kills) kills")

        // Downlink: stored once, or a gap marker where it is missing.
        let inbox = try InboxReconciliation(simulator: simulator, device: device)
        print("crash consistency: published \(publisher.count); inbox: \(inbox)")
        #expect(inbox.storedTwice.isEmpty, "stored twice: \(inbox.storedTwice.prefix(20))")
        let uncovered = inbox.uncovered
        // An answer a kill cut off between the server writing it and the commit is covered by
        // the gap marker the restarted daemon stores at its first handshake.
        #expect(uncovered.isEmpty, "lost without a gap marker (\(uncovered.filter { inbox.inLastAnswerOfASession.contains($0) }.count) of them in an answer a kill cut off): \(inbox)")
        #expect(try device.auditIntact())

        // The premise: the kills really landed mid-request and mid-poll, and data flowed.
        #expect(kills >= Self.cycles - 2, "only \(kills) kills")
        #expect(killsDuringUplinkRequest >= 10, "only \(killsDuringUplinkRequest) of \(kills) kills landed during an uplink request")
        #expect(killsDuringHeldPoll >= 10, "only \(killsDuringHeldPoll) of \(kills) kills landed during a held long poll")
        #expect(reconciliation.acked.count >= 500, "only \(reconciliation.acked.count) records acknowledged")
        #expect(inbox.firstDelivery.count >= 50, "only \(inbox.firstDelivery.count) notifications delivered")
    }
}
