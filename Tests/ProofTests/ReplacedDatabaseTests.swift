import Foundation
import TestSupport
import Testing

/// The database file deleted or replaced while `edgebuf run` has it open. SQLite keeps
/// working on the descriptor it has, so without a check the daemon would go on deleting
/// records from a file nobody can see any more, while new records pile up in the new file
/// unsent. The daemon must notice and stop with a database error (74) naming the file, and
/// must never write into a file that replaced its own.
@Suite struct ReplacedDatabaseTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    /// A simulator that takes 30 ms a request, a device with 300 records, `edgebuf run`
    /// draining them.
    static func draining() throws -> (Simulator, Device, ChildProcess) {
        let simulator = try Simulator()
        try simulator.fault(["count": 1_000_000, "action": "pass", "delay": 0.03, "path": simulatorDataPaths])
        let device = Device(label: "edgebuf-replaced")
        try device.useSimulator(simulator, extra: ["max_body_bytes": "2048"])
        try device.enqueue((1...300).map { Records.property($0) })
        let daemon = try device.startRun(logLevel: "notice")
        let flowing = poll(timeout: .seconds(30)) { ((try? simulator.accepted()) ?? []).count >= 10 }
        guard flowing, daemon.isRunning else { throw TestFailure("the drain did not start: \(daemon.stderrText.suffix(1500))") }
        return (simulator, device, daemon)
    }

    /// The daemon stopped with exit 74 within `bound`, naming the file.
    static func expectStopped(_ daemon: ChildProcess, db: String, bound: Duration, sourceLocation: SourceLocation = #_sourceLocation) {
        let status = daemon.wait(timeout: bound)
        #expect(status == 74, "run \(status.map { "exited \($0)" } ?? "is still running \(bound) after its file was replaced"): \(daemon.stderrText.suffix(1500))",
                sourceLocation: sourceLocation)
        if status != nil {
            #expect(daemon.stderrText.contains(db), "the message names the file: \(daemon.stderrText.suffix(800))", sourceLocation: sourceLocation)
        }
    }

    @Test func aDeletedAndRecreatedDatabaseStopsTheDaemonAndTheNewRecordsAreSent() throws {
        let (simulator, device, daemon) = try Self.draining()
        defer { daemon.kill9() }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: device.db + suffix) }
        // The application goes on: its next enqueue creates a new, empty database.
        let fresh = try device.enqueue((10_001...10_020).map { Records.property($0) })
        #expect(fresh.count == 20)
        Self.expectStopped(daemon, db: device.db, bound: .seconds(15))
        let sentFromNewFile = try simulator.accepted().compactMap(Records.seq).filter { $0 > 10_000 }
        print("deleted database: the daemon \(daemon.exitStatus.map { "exited \($0)" } ?? "kept running"); \(sentFromNewFile.count) of 20 new records sent by it")
        daemon.kill9()
        // A new start works on the new file and sends what was enqueued into it.
        let restarted = try device.startRun(tag: "run-2")
        defer { restarted.kill9() }
        let delivered = poll(timeout: .seconds(30)) {
            Set(((try? simulator.accepted()) ?? []).compactMap(Records.seq)).isSuperset(of: 10_001...10_020)
        }
        #expect(delivered, "the records enqueued into the new file are delivered after a restart: \(restarted.stderrText.suffix(800))")
    }

    @Test func aForeignFileInPlaceOfTheDatabaseStopsTheDaemonAndIsNeverWritten() throws {
        let (_, device, daemon) = try Self.draining()
        defer { daemon.kill9() }
        // Another program's SQLite file moved over the path (rename is atomic: there is never
        // a moment without a file). Its -wal and -shm are left as they were.
        let foreign = device.directory.file("foreign.db")
        try tool("sqlite3", [foreign, "PRAGMA journal_mode=DELETE; CREATE TABLE readings(t INTEGER, v REAL); INSERT INTO readings VALUES (1, 2.5), (2, 3.5);"])
        let original = fileBytes(foreign)
        #expect(rename(foreign, device.db) == 0)
        Self.expectStopped(daemon, db: device.db, bound: .seconds(15))
        daemon.kill9()
        #expect(fileBytes(device.db) == original, "the daemon wrote into the file that replaced its own")
        #expect(daemon.stderrText.contains("deleted or replaced"), "\(daemon.stderrText.suffix(800))")
        // Starting again refuses the foreign file and leaves it as it is.
        let again = try device.eb(["run"], timeout: .seconds(30))
        #expect(again.exitCode == 74, "run on a foreign file: \(again.summary): \(again.stderrText.prefix(800))")
        // With the old -wal still next to it, SQLite reads the pair as one damaged database;
        // alone it would be "a SQLite database of another program". Refused either way.
        #expect(again.stderrText.contains(device.db) && (again.stderrText.contains("another program") || again.stderrText.contains("damaged")),
                "\(again.stderrText.prefix(800))")
        #expect(fileBytes(device.db) == original, "refusing the foreign file changed it")
    }
}
