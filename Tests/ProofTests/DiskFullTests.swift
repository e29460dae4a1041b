import Foundation
import TestSupport
import Testing

/// The database file at its size limit (`max_file_bytes`, SQLite's `max_page_count`, which
/// SQLite reports exactly like a full disk) while an application enqueues faster than the
/// daemon drains: a refused enqueue exits 76, says so and acknowledges nothing it did not
/// store; the daemon does not die; and every acknowledged record is delivered or still
/// waiting.
@Suite struct DiskFullTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func aFullDatabaseDuringEnqueueAndDrainLosesNothing() throws {
        let simulator = try Simulator()
        try simulator.fault(["count": 1_000_000, "action": "pass", "delay": 0.05, "path": simulatorDataPaths])
        let device = Device(label: "edgebuf-full")
        device.sections["database"] = ["max_file_bytes": Device.quoted("256KB")]
        try device.useSimulator(simulator, extra: ["max_body_bytes": "8192"])
        let producer = Producer(device: device, batch: 40, pad: 2000, pause: .milliseconds(10))
        producer.attemptOnce()
        let daemon = try device.startRun(tag: "run")
        defer {
            producer.stop()
            daemon.kill9()
        }
        producer.start()
        // Run until the file has been full several times while the drain went on.
        let sawFull = poll(timeout: .seconds(40), interval: .milliseconds(100)) {
            producer.all.filter { $0.result.exitCode == 76 }.count >= 5 && producer.acked.count >= 300
        }
        sleep(.seconds(2))
        producer.stop()
        let attempts = producer.all
        let full = attempts.filter { $0.result.exitCode == 76 }
        print("disk full: \(attempts.count) enqueue attempts, \(full.count) exited 76, \(attempts.filter { $0.result.exitCode == 0 }.count) stored everything; daemon \(daemon.exitStatus.map { "exited \($0)" } ?? "running")")
        #expect(sawFull, "the premise: the file filled up (\(full.count) refusals) while records were also stored")
        for attempt in attempts {
            #expect(attempt.result.exitCode == 0 || attempt.result.exitCode == 76, "enqueue: \(attempt.result.summary): \(attempt.result.stderrText.prefix(600))")
        }
        for attempt in full {
            #expect(attempt.result.stderrText.contains("full") && attempt.result.stderrText.contains("NOT stored"), "\(attempt.result.stderrText.prefix(600))")
            #expect(attempt.acked.count < producer.batch, "a refused enqueue acknowledged its whole input")
        }
        // The daemon must ride out a full file: draining is what frees the space.
        #expect(daemon.isRunning, "run stopped while the file was full: exit \(daemon.exitStatus ?? -1): \(daemon.stderrText.suffix(1500))")
        #expect(daemon.exitStatus.map { $0 < 128 } ?? true, "run was killed by a signal")
        var drainer = daemon
        if !daemon.isRunning { drainer = try device.startRun(tag: "run-2") }
        defer { drainer.kill9() }
        let drained = poll(timeout: .seconds(90), interval: .milliseconds(200)) { device.outboxIsEmpty }
        #expect(drained, "the outbox drained: \(drainer.stderrText.suffix(1000))")
        let reconciliation = try Reconciliation(acked: producer.acked, simulator: simulator, device: device)
        print("disk full: \(reconciliation)")
        #expect(reconciliation.lost.isEmpty, "\(reconciliation)")
        let unacknowledged = reconciliation.unacknowledged(attempted: producer.attempted)
        #expect(unacknowledged.isEmpty, "stored but never acknowledged (an exit-76 enqueue must acknowledge every line it did store): \(unacknowledged.count), e.g. \(unacknowledged.prefix(10))")
        #expect(try device.auditIntact())
        // Space is back: enqueue works again.
        #expect(try device.eb(["enqueue", "--jsonl"], stdin: Array((Records.property(9_999_999) + "\n").utf8)).exitCode == 0)
    }
}
