import Foundation
import TestSupport
import Testing

/// No space for the database while all three paths write to it: an application enqueues
/// (`enqueue --jsonl --ack`), the uplink drains to the simulator (each data request held
/// 50 ms, so the application outruns it), and the downlink takes notifications published into
/// the simulator's Bayeux endpoint into the inbox. Then space returns under a running daemon,
/// which must pick up by itself.
///
/// Afterwards: no acknowledged record is lost and nothing unacknowledged was stored; every
/// refused enqueue exited 76 with a clear message and acknowledged none of the lines it names
/// as not stored; the downlink, which polls nothing while a received batch cannot be stored,
/// polls again (a notification published after the recovery arrives) and the uplink sends a
/// record enqueued after it; every delivered notification is stored once or covered by a gap
/// marker; the audit chain verifies and holds a row for every data request the platform
/// answered, except those a daemon logged, as it stopped while full, it could not write; the
/// daemon never stopped by itself, and SIGTERM stops it with 0.
///
/// Two ways to run out of space:
/// - `[database] max_file_bytes` (SQLite's `max_page_count`, reported exactly like a full
///   disk), filled by the device's own backlog. Outbox, inbox and audit rows all count against
///   it. For a few seconds the platform answers 503, so that nothing frees pages and neither
///   the downlink's batches nor the audit rows of the refused requests find room; meanwhile a
///   service manager restarts the daemon (SIGTERM must exit 0, and a daemon started on a full
///   file must stay up). Space returns as it does there: the application stops (it was told
///   exit 76) and the drain frees the pages of what the platform accepted.
///   Raising the limit would need a rewritten configuration and a restart, which tests the
///   restart rather than the daemon riding out the full file. The full phase is kept short on
///   purpose: audit rows (no retention) and inbox rows (whose retention runs inside the very
///   transaction that fails) keep growing, and given long enough they alone fill the file,
///   after which the drain can free nothing (seen with a 256 KB limit).
/// - A real full file system: the database on a 16 MiB tmpfs in a private mount namespace,
///   filled by another file. In WAL mode nothing can be written then, not even the delete of
///   delivered records. Space returns as an operator gives it back: the other file is deleted
///   under the running processes.
@Suite struct DiskFullAllPathsTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func aFullFileDuringEnqueueDrainAndIntakeLosesNothingAndEverythingResumes() throws {
        let device = Device(label: "edgebuf-full-all")
        device.sections["database"] = ["max_file_bytes": Device.quoted("1MB")]
        let run = try FullDiskRun(device: device)
        defer { run.stop() }

        // Full while draining: enqueue is refused while records are acknowledged and delivered.
        let filled = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            run.refusals.count >= 3 && run.producer.acked.count >= 200
        }
        // The platform stops answering for a while (503), as it does on a device that goes
        // offline: nothing frees pages, and neither the downlink's next batches nor the audit
        // rows of the refused requests find room.
        try run.simulator.control("DELETE", "/_sim/faults")
        try run.simulator.fault(["count": 1_000_000, "status": 503, "path": simulatorDataPaths])
        let inboxFull = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            run.failedInboxStores >= 3 && run.deferredUplinkAudits >= 1
        }
        let status = try device.eb(["status", "--json"])
        let fileBytes = (try? parseObject(status.stdoutText))?.int("file_bytes")
        // A service manager restarts the daemon meanwhile: SIGTERM exits 0 although a
        // received batch is waiting for room, and a daemon started on the full file stays up.
        try run.restart(tag: "run-2")
        sleep(.seconds(2))
        try run.simulator.control("DELETE", "/_sim/faults")
        try run.simulator.fault(["count": 1_000_000, "action": "pass", "delay": 0.05, "path": simulatorDataPaths])
        sleep(.seconds(2))

        // Space returns: the application stops, the drain frees what the platform accepted.
        run.producer.stop()
        let evidence = run.evidence()
        // A batch received but not stored when SIGTERM came is gone with that process; the
        // restarted daemon's first handshake stores a gap marker in front of what follows.
        try run.finish()

        print("disk full (max_file_bytes 1 MiB), all paths: \(evidence); file \(fileBytes ?? -1) bytes when full; \(run.summary)")
        // The premises: every path met the limit while data flowed both ways.
        #expect(filled, "the file filled while the drain went on: \(evidence)")
        #expect(inboxFull, "received batches could not be stored, nor the audit row of a refused request: \(evidence)")
        #expect(fileBytes == 1 << 20, "the file was at its limit: \(fileBytes ?? -1) bytes; \(status.stdoutText.prefix(1000))")
        #expect(evidence.refused >= 5 && evidence.failedInboxStores >= 3 && evidence.acked >= 200, "\(evidence)")
        #expect(run.storedNotifications >= 20, "only \(run.storedNotifications) notifications stored")
    }

    @Test(.enabled(if: SmallFileSystem.isAvailable, "needs root: a tmpfs in a private mount namespace"))
    func aFullFileSystemDuringEnqueueDrainAndIntakeLosesNothingAndEverythingResumes() throws {
        let device = Device(label: "edgebuf-full-fs", databaseName: "data/edgebuf.db")
        let fileSystem = try SmallFileSystem(directory: device.directory.file("data"), bytes: 16 << 20, log: device.directory.file("tmpfs"))
        device.launcher = fileSystem.launcher
        let run = try FullDiskRun(device: device)
        defer { run.stop() }
        let flowing = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            run.producer.acked.count >= 40 && ((try? run.simulator.accepted()) ?? []).count >= 20
        }
        #expect(flowing, "records flowed before the disk filled: \(run.daemon.stderrText.suffix(1000))")

        // Something else fills the disk, to the last 256 KiB; the device's writes take those.
        try fileSystem.fill(leaving: 256 << 10)
        let sawFull = poll(timeout: .seconds(45), interval: .milliseconds(100)) {
            run.refusals.count >= 3 && run.failedInboxStores >= 2 && run.failedUplinkCommits >= 1
        }
        let available = try fileSystem.availableBytes()
        sleep(.seconds(1))
        let fullEvidence = run.evidence()

        // Space returns under the running processes; the application goes on until an enqueue
        // succeeds again, then stops.
        try fileSystem.makeRoom()
        let roomAt = ContinuousClock.now
        let enqueueResumed = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            run.producer.all.contains { $0.started > roomAt && $0.result.exitCode == 0 }
        }
        #expect(enqueueResumed, "enqueue works again once space returned")
        run.producer.stop()
        let evidence = run.evidence()
        try run.finish()

        print("disk full (tmpfs), all paths: \(fullEvidence) while full (\(available ?? -1) bytes available); \(evidence) in all; \(run.summary)")
        #expect(sawFull, "every path met the full disk: \(fullEvidence)")
        #expect((available ?? Int.max) < 64 << 10, "the file system was full: \(available ?? -1) bytes available")
        // A delivered request whose result could not be committed was not sent again.
        #expect(run.duplicates == 0, "records accepted twice: \(run.summary)")
        #expect(run.storedNotifications >= 10, "only \(run.storedNotifications) notifications stored")
    }
}
