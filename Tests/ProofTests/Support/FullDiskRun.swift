import Foundation
import TestSupport
import Testing

/// One daemon, one application and one platform publisher around a device whose database is
/// about to run out of space; `finish()` brings it to the end and checks it.
final class FullDiskRun {
    let simulator: Simulator
    let device: Device
    let producer: Producer
    let publisher: Publisher
    private(set) var daemon: ChildProcess
    /// Daemons stopped with SIGTERM by `restart`.
    private var stopped: [ChildProcess] = []
    private(set) var summary = ""
    private(set) var duplicates = 0
    private(set) var storedNotifications = 0

    /// Starts the simulator (data requests held 50 ms), `edgebuf run` with uplink and
    /// downlink, an application enqueueing batches of 40 records of ~2 KB, and a publisher
    /// sending a ~1.5 KB notification every 100 ms once the downlink is connected.
    init(device: Device, sourceLocation: SourceLocation = #_sourceLocation) throws {
        self.device = device
        simulator = try Simulator()
        try simulator.fault(["count": 1_000_000, "action": "pass", "delay": 0.05, "path": simulatorDataPaths])
        try device.useSimulator(simulator, extra: ["max_body_bytes": "8192"])
        try device.useDownlink(simulator)
        producer = Producer(device: device, batch: 40, pad: 2000, pause: .milliseconds(10), launcher: device.launcher)
        publisher = Publisher(simulator: simulator, pause: .milliseconds(100), pad: 1500)
        producer.attemptOnce()
        let daemon = try device.startRun(tag: "run")
        self.daemon = daemon
        let connected = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            let state = (try? parseObject(device.eb(["status", "--json"]).stdoutText))?.object("downlink")?.object("state")
            return state?.string("phase") == "connected" && state?.int("pid") == Int(daemon.pid)
        }
        #expect(connected, "the downlink connected: \(daemon.stderrText.suffix(1500))", sourceLocation: sourceLocation)
        producer.start()
        publisher.start()
    }

    /// Stops everything still running (for `defer`).
    func stop() {
        producer.stop()
        publisher.stop()
        daemon.kill9()
    }

    var refusals: [Producer.Attempt] { producer.all.filter { $0.result.exitCode == 76 } }
    var failedInboxStores: Int { logLines(containing: inboxStoreFailedLine) }
    var failedUplinkCommits: Int { logLines(containing: uplinkCommitFailedLine) }
    var deferredUplinkAudits: Int { logLines(containing: uplinkAuditDeferredLine) }

    /// Lines of every daemon's log (this one's and the ones stopped before) containing `text`.
    func logLines(containing text: String) -> Int {
        (stopped + [daemon]).map { $0.stderrLines(containing: text) }.reduce(0, +)
    }

    /// Audit rows of requests the daemons said, as they stopped, they could not write (the
    /// disk stayed full).
    var auditRowsLostAtStop: Int {
        (stopped + [daemon]).flatMap { $0.stderrText.split(separator: "\n") }.compactMap { line -> Int? in
            guard let range = line.range(of: uplinkAuditLostPrefix) else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }.reduce(0, +)
    }

    /// Stops the daemon with SIGTERM (it must still be running, and exit 0) and starts another.
    func restart(tag: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(daemon.isRunning, "run stopped by itself: exit \(daemon.exitStatus ?? -1): \(daemon.stderrText.suffix(1500))", sourceLocation: sourceLocation)
        daemon.send(SIGTERM)
        let status = daemon.wait(timeout: .seconds(15))
        #expect(status == 0, "run stops with 0 on SIGTERM while the disk is full: \(status.map { "exit \($0)" } ?? "still running"): \(daemon.stderrText.suffix(800))", sourceLocation: sourceLocation)
        daemon.kill9()
        stopped.append(daemon)
        daemon = try device.startRun(tag: tag)
    }

    struct Evidence: CustomStringConvertible {
        let attempts: Int
        let refused: Int
        let acked: Int
        let failedInboxStores: Int
        let failedUplinkCommits: Int
        let deferredUplinkAudits: Int
        var description: String {
            "\(attempts) enqueue attempts, \(refused) exited 76, \(acked) records acknowledged; \(failedInboxStores) inbox stores failed; \(failedUplinkCommits) commits of a delivered request failed (retried), \(deferredUplinkAudits) audit rows of a retried request waited for space"
        }
    }

    func evidence() -> Evidence {
        Evidence(attempts: producer.all.count, refused: refusals.count, acked: producer.acked.count,
                 failedInboxStores: failedInboxStores, failedUplinkCommits: failedUplinkCommits,
                 deferredUplinkAudits: deferredUplinkAudits)
    }

    /// With the application stopped and space back: the outbox drains, the downlink takes a
    /// notification published after everything before it, a new record is delivered, the
    /// daemon (which must still be running) stops with 0 on SIGTERM; then every check. A
    /// delivered notification missing without a gap marker always fails.
    func finish(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let drained = poll(timeout: .seconds(60), interval: .milliseconds(200)) { device.outboxIsEmpty }
        #expect(drained, "the outbox drained: \(daemon.stderrText.suffix(1500))", sourceLocation: sourceLocation)
        publisher.stop()
        let marker = 1_000_000
        try simulator.publishNotification(marker)
        let arrived = poll(timeout: .seconds(40), interval: .milliseconds(100)) {
            ((try? device.inbox()) ?? []).contains { notificationNumber($0.object("data")) == marker }
        }
        #expect(arrived, "a notification published after the recovery arrives: \(daemon.stderrText.suffix(1500))", sourceLocation: sourceLocation)
        let last = 9_999_999
        let after = try device.eb(["enqueue", "--jsonl"], stdin: Array((Records.property(last) + "\n").utf8))
        #expect(after.exitCode == 0, "enqueue once space returned: \(after.summary): \(after.stderrText)", sourceLocation: sourceLocation)
        let sent = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            ((try? simulator.accepted()) ?? []).contains { Records.seq($0) == last } && device.outboxIsEmpty
        }
        #expect(sent, "a record enqueued after the recovery is delivered: \(daemon.stderrText.suffix(1500))", sourceLocation: sourceLocation)

        #expect(daemon.isRunning, "run stopped by itself: exit \(daemon.exitStatus ?? -1): \(daemon.stderrText.suffix(1500))", sourceLocation: sourceLocation)
        daemon.send(SIGTERM)
        #expect(daemon.wait(timeout: .seconds(15)) == 0, "run stops cleanly with SIGTERM: \(daemon.stderrText.suffix(800))", sourceLocation: sourceLocation)

        // Enqueue: 0 or 76; a refusal says so clearly and acknowledges none of the lines it
        // names as not stored.
        let attempts = producer.all
        for attempt in attempts {
            #expect(attempt.result.exitCode == 0 || attempt.result.exitCode == 76, "enqueue: \(attempt.result.summary): \(attempt.result.stderrText.prefix(600))", sourceLocation: sourceLocation)
        }
        for attempt in attempts where attempt.result.exitCode == 76 {
            let text = attempt.result.stderrText
            #expect(text.contains("is full") && text.contains("max_file_bytes") && text.contains(device.db),
                    "the message names the file, says it is full and what to do: \(text.prefix(600))", sourceLocation: sourceLocation)
            guard let lines = RefusedLines(stderr: text) else {
                Issue.record("the message does not name the lines not stored: \(text.prefix(600))", sourceLocation: sourceLocation)
                continue
            }
            let acks = (try? Acks.parse(attempt.result.stdoutText)) ?? []
            let contradicted = acks.filter { lines.refuses($0.line) }
            #expect(contradicted.isEmpty, "acknowledged lines it says were NOT stored (\(lines)): \(contradicted.prefix(10))", sourceLocation: sourceLocation)
            #expect(acks.count < producer.batch, "a refused enqueue acknowledged its whole input", sourceLocation: sourceLocation)
        }

        // Uplink: every acknowledged record delivered or waiting, nothing unacknowledged stored.
        let reconciliation = try Reconciliation(acked: producer.acked, simulator: simulator, device: device)
        #expect(reconciliation.lost.isEmpty, "\(reconciliation)", sourceLocation: sourceLocation)
        let unacknowledged = reconciliation.unacknowledged(attempted: producer.attempted)
        #expect(unacknowledged.isEmpty, "stored but never acknowledged: \(unacknowledged.count), e.g. \(unacknowledged.prefix(10))", sourceLocation: sourceLocation)
        duplicates = reconciliation.duplicates

        // Downlink: stored once, or a gap marker where it is missing.
        let inbox = try InboxReconciliation(simulator: simulator, device: device)
        #expect(inbox.storedTwice.isEmpty, "stored twice: \(inbox.storedTwice.prefix(20))", sourceLocation: sourceLocation)
        #expect(inbox.uncovered.isEmpty, "lost without a gap marker: \(inbox)", sourceLocation: sourceLocation)
        storedNotifications = inbox.storedCounts.count
        #expect(try device.auditIntact(), sourceLocation: sourceLocation)
        // Every data request the platform answered has its audit row, also those whose row
        // had to wait for space.
        let platformRequests = try simulator.requests().filter { request in
            (request.string("path") ?? "").range(of: simulatorDataPaths, options: .regularExpression) != nil
        }
        let audited = try device.audit().filter { $0.string("event") == "request" }
        let unaudited = auditRowsLostAtStop
        #expect(audited.count + unaudited == platformRequests.count,
                "\(platformRequests.count) data requests, \(audited.count) audited, \(unaudited) logged as not audited at a stop", sourceLocation: sourceLocation)

        summary = "\(platformRequests.count) data requests (\(platformRequests.filter { $0.int("status") == 503 }.count) answered 503), \(audited.count) audited, \(unaudited) logged as not audited; published \(publisher.count); uplink: \(reconciliation); inbox: \(inbox)"
    }
}
