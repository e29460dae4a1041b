import Foundation
import TestSupport
import Testing

/// A database that cannot be written, while `edgebuf run` drains it and an application keeps
/// enqueueing: enqueue refuses with exit 77 and stores (and acknowledges) nothing, reading
/// still works, the daemon never dies by a signal, and once the file is writable again every
/// acknowledged record is delivered.
///
/// How the file is made read-only matters, because these tests run as root and file modes do
/// not stop root (CAP_DAC_OVERRIDE):
/// - `chattr +i` (the immutable attribute) stops root too: opening for writing fails with
///   EPERM, and so does a write through a descriptor opened before (Linux checks the flag on
///   every write), so the running daemon is hit as well.
/// - `setpriv --reuid=65534` runs the daemon and the producer as `nobody`, the way a service
///   user runs them; `chmod 0400` then gives EACCES to every new open for writing, while the
///   daemon's descriptors, opened before, keep working (POSIX).
/// - A read-only bind mount in a private mount namespace (`unshare -m`) gives EROFS to
///   whatever runs in that namespace. A running daemon cannot be switched to a read-only
///   mount: remounting read-only is refused (EBUSY) while files are open for writing.
@Suite(.enabled(if: geteuid() == 0, "needs root for chattr, setpriv and mount namespaces"))
struct ReadOnlyDatabaseTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    static let setpriv = (try? which("setpriv")).map { [$0, "--reuid=65534", "--regid=65534", "--clear-groups"] }

    static let canUnshareMount: Bool = {
        guard geteuid() == 0, let unshare = try? which("unshare") else { return false }
        return (try? runBounded(unshare, ["-m", "true"], timeout: .seconds(10)))?.exitCode == 0
    }()

    /// The simulator (each request takes 20 ms more), a device configured for it, `edgebuf run`
    /// and a producer, with records flowing.
    struct Flow {
        let simulator: Simulator
        let device: Device
        var daemon: ChildProcess
        let producer: Producer
    }

    static func startFlow(device: Device, launcher: [String] = []) throws -> Flow {
        let simulator = try Simulator()
        try simulator.fault(["count": 1_000_000, "action": "pass", "delay": 0.02, "path": simulatorDataPaths])
        try device.useSimulator(simulator)
        let producer = Producer(device: device, batch: 20, launcher: launcher)
        producer.attemptOnce()
        let daemon = try device.startRun(tag: "run-1", launcher: launcher)
        producer.start()
        let flowing = poll(timeout: .seconds(30)) { ((try? simulator.accepted()) ?? []).count >= 20 }
        guard flowing else {
            producer.stop()
            throw TestFailure("records did not flow: \(daemon.stderrText.suffix(2000))")
        }
        return Flow(simulator: simulator, device: device, daemon: daemon, producer: producer)
    }

    /// The enqueue attempts that started after `from` and ended before `to` all exited 77
    /// with a message naming the database, and none acknowledged anything.
    static func expectRefused(_ producer: Producer, db: String, from: ContinuousClock.Instant, to: ContinuousClock.Instant,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        let inside = producer.all.filter { $0.started > from && $0.ended < to }
        #expect(!inside.isEmpty, "the premise: the producer tried while the file was read-only", sourceLocation: sourceLocation)
        for attempt in inside {
            #expect(attempt.result.exitCode == 77, "enqueue on a read-only database: \(attempt.result.summary): \(attempt.result.stderrText.prefix(600))", sourceLocation: sourceLocation)
            #expect(attempt.acked.isEmpty, "acknowledged \(attempt.acked.count) records it could not store", sourceLocation: sourceLocation)
            #expect(attempt.result.stderrText.contains(db) && attempt.result.stderrText.contains("cannot be opened or written"),
                    "the message names the file and the problem: \(attempt.result.stderrText.prefix(600))", sourceLocation: sourceLocation)
        }
    }

    /// Stops the producer, lets the (running) daemon drain, and checks that every
    /// acknowledged record arrived and the audit is intact.
    static func drainAndReconcile(_ flow: Flow, sourceLocation: SourceLocation = #_sourceLocation) throws {
        flow.producer.stop()
        let drained = poll(timeout: .seconds(90), interval: .milliseconds(200)) { flow.device.outboxIsEmpty }
        #expect(drained, "the daemon drained the outbox after the fault: \(flow.daemon.stderrText.suffix(1500))", sourceLocation: sourceLocation)
        let reconciliation = try Reconciliation(acked: flow.producer.acked, simulator: flow.simulator, device: flow.device)
        print("read-only database: \(reconciliation)")
        #expect(reconciliation.lost.isEmpty, "\(reconciliation)", sourceLocation: sourceLocation)
        #expect(reconciliation.unacknowledged(attempted: flow.producer.attempted).isEmpty, "stored but never acknowledged", sourceLocation: sourceLocation)
        #expect(reconciliation.acked.count >= 40, "the premise: records were acknowledged (\(reconciliation.acked.count))", sourceLocation: sourceLocation)
        #expect(try flow.device.auditIntact(), sourceLocation: sourceLocation)
    }

    @Test func anImmutableDatabaseUnderARunningDaemonStoresNothingAndLosesNothing() throws {
        let device = Device(label: "edgebuf-immutable")
        var flow = try Self.startFlow(device: device)
        let files = [device.db, device.db + "-wal"].filter { FileManager.default.fileExists(atPath: $0) }
        var locked = false
        defer {
            if locked { _ = try? tool("chattr", ["-i"] + files) }
            flow.producer.stop()
            flow.daemon.kill9()
        }
        let acceptedBefore = try flow.simulator.accepted().count
        try tool("chattr", ["+i"] + files)
        locked = true
        let lockedAt = ContinuousClock.now
        sleep(.seconds(4))
        let unlockedAt = ContinuousClock.now
        let daemonStatus = flow.daemon.exitStatus
        let acceptedDuring = try flow.simulator.accepted().count - acceptedBefore
        try tool("chattr", ["-i"] + files)
        locked = false

        Self.expectRefused(flow.producer, db: device.db, from: lockedAt, to: unlockedAt)
        #expect(try device.eb(["status"]).exitCode == 0, "status still reads an immutable database")
        // The daemon's next commit (deleting delivered records, writing the audit) fails: it
        // must stop with a database error, not crash, and not pretend.
        print("immutable database: daemon \(daemonStatus.map { "exited \($0)" } ?? "still running") after 4 s; \(acceptedDuring) records accepted meanwhile; stderr: \(flow.daemon.stderrText.suffix(600))")
        if let daemonStatus {
            #expect(daemonStatus == 74 || daemonStatus == 77, "run exited \(daemonStatus): \(flow.daemon.stderrText.suffix(1500))")
            #expect(flow.daemon.stderrText.contains(device.db), "its message names the database: \(flow.daemon.stderrText.suffix(800))")
            flow.daemon = try device.startRun(tag: "run-2")
        }
        #expect(flow.daemon.isRunning)
        // Writable again: the producer's next attempts succeed.
        let resumed = poll(timeout: .seconds(30)) { flow.producer.all.contains { $0.started > unlockedAt && $0.result.exitCode == 0 } }
        #expect(resumed, "enqueue works again once the file is writable")
        try Self.drainAndReconcile(flow)
    }

    @Test(.enabled(if: Self.setpriv != nil, "needs setpriv"))
    func permissionDeniedToTheServiceUserExits77AndLosesNothing() throws {
        let launcher = Self.setpriv!
        let device = Device(label: "edgebuf-eacces", databaseName: "data/edgebuf.db")
        // nobody must reach the directory (mkdtemp makes it 0700 for root) and own data/.
        chmod(device.directory.path, 0o755)
        let data = device.directory.file("data")
        #expect(mkdir(data, 0o700) == 0 && chown(data, 65534, 65534) == 0)
        let made = try runBounded(launcher[0], Array(launcher.dropFirst()) + [edgebufBinary, "--db", device.db, "init"], timeout: .seconds(30))
        #expect(made.exitCode == 0, "init as nobody: \(made.stderrText)")
        var flow = try Self.startFlow(device: device, launcher: launcher)
        defer {
            flow.producer.stop()
            flow.daemon.kill9()
        }
        chmod(device.db, 0o400)
        let deniedAt = ContinuousClock.now
        sleep(.seconds(3))
        let allowedAt = ContinuousClock.now
        let status = try runBounded(launcher[0], Array(launcher.dropFirst()) + [edgebufBinary, "--db", device.db, "status", "--json"], timeout: .seconds(30))
        chmod(device.db, 0o600)

        Self.expectRefused(flow.producer, db: device.db, from: deniedAt, to: allowedAt)
        #expect(status.exitCode == 0, "status reads a database it may not write: \(status.stderrText)")
        // Descriptors opened before the chmod keep working: the daemon never noticed.
        #expect(flow.daemon.isRunning, "run: \(flow.daemon.stderrText.suffix(1500))")
        if !flow.daemon.isRunning { flow.daemon = try device.startRun(tag: "run-2", launcher: launcher) }
        let resumed = poll(timeout: .seconds(30)) { flow.producer.all.contains { $0.started > allowedAt && $0.result.exitCode == 0 } }
        #expect(resumed, "enqueue works again once the file is writable")
        try Self.drainAndReconcile(flow)
    }

    /// A directory the service user may not write: creating the database there is a
    /// permission problem (77), and nothing is created.
    @Test(.enabled(if: Self.setpriv != nil, "needs setpriv"))
    func creatingADatabaseInAForbiddenDirectoryExits77() throws {
        let launcher = Self.setpriv!
        let directory = TemporaryDirectory("edgebuf-eacces-dir")
        chmod(directory.path, 0o755)  // nobody may enter, not write
        for db in [directory.file("edgebuf.db"), directory.file("sub/edgebuf.db")] {
            let result = try runBounded(launcher[0], Array(launcher.dropFirst()) + [edgebufBinary, "--db", db, "init"], timeout: .seconds(30))
            #expect(result.exitCode == 77, "init in a directory nobody may write: \(result.summary): \(result.stderrText)")
            #expect(result.stderrText.contains(db), "the message names the file: \(result.stderrText)")
            #expect(!FileManager.default.fileExists(atPath: db))
        }
    }

    /// EROFS: the directory bind-mounted read-only in a private mount namespace, while the
    /// daemon outside it keeps draining.
    @Test(.enabled(if: Self.canUnshareMount, "needs a private mount namespace (CAP_SYS_ADMIN)"))
    func aReadOnlyFileSystemExits77ReadsStillWorkAndNothingIsCreated() throws {
        let device = Device(label: "edgebuf-erofs", databaseName: "data/edgebuf.db")
        let flow = try Self.startFlow(device: device)
        defer {
            flow.producer.stop()
            flow.daemon.kill9()
        }
        let data = device.directory.file("data")
        let unshare = try which("unshare")
        // `$0` is the directory, the rest the edgebuf command line.
        let script = #"mount --bind -o ro "$0" "$0" && exec "$@""#
        func readOnly(_ arguments: [String], stdin: String = "") throws -> BoundedResult {
            try runBounded(unshare, ["-m", "sh", "-c", script, data, edgebufBinary, "--config", device.config] + arguments,
                           stdin: Array(stdin.utf8), timeout: .seconds(30))
        }
        let enqueue = try readOnly(["--db", device.db, "enqueue", "--jsonl", "--ack"], stdin: Records.property(999_999) + "\n")
        #expect(enqueue.exitCode == 77, "enqueue on a read-only file system: \(enqueue.summary): \(enqueue.stderrText)")
        #expect(enqueue.stdout.isEmpty, "nothing acknowledged: \(enqueue.stdoutText)")
        #expect(enqueue.stderrText.contains(device.db))
        let status = try readOnly(["--db", device.db, "status", "--json"])
        #expect(status.exitCode == 0, "status on a read-only file system: \(status.stderrText)")
        let fresh = data + "/other.db"
        let initialise = try readOnly(["--db", fresh, "init"])
        #expect(initialise.exitCode == 77, "init on a read-only file system: \(initialise.summary): \(initialise.stderrText)")
        #expect(initialise.stderrText.contains(fresh))
        #expect(!FileManager.default.fileExists(atPath: fresh))
        #expect(flow.daemon.isRunning, "the daemon outside the namespace is unaffected: \(flow.daemon.stderrText.suffix(800))")
        try Self.drainAndReconcile(flow)
        let accepted = try flow.simulator.accepted().compactMap(Records.seq)
        #expect(!accepted.contains(999_999), "the refused record was not stored")
    }
}
