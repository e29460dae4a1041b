import CSQLite
@testable import EdgeStore
import Foundation
import TestSupport
import Testing

@Suite struct DatabaseTests {
    let dir = TemporaryDirectory()

    @Test func aNewFileIsMarkedMigratedAndOwnerOnly() throws {
        let path = dir.file("sub/dir/e.db")
        let db = try Database.open(path: path)
        #expect(try db.scalarInt("PRAGMA application_id") == Int64(Database.applicationID))
        #expect(try Migrator.version(of: db) == Database.latestSchemaVersion)
        #expect(try db.scalarText("PRAGMA journal_mode") == "wal")
        #expect(try db.scalarInt("PRAGMA synchronous") == 2)  // FULL
        try db.execute("CREATE TEMP TABLE t(x)")  // touch the WAL
        try db.transaction { try db.execute("INSERT INTO outbox_totals VALUES (9, 0, 0)") }
        #expect(fileMode(path) == 0o600)
        #expect(fileMode(path + "-wal") == 0o600)
        #expect(fileMode(path + "-shm") == 0o600)
        #expect(fileMode(dir.file("sub/dir")) == 0o700)
    }

    @Test func normalSynchronousModeIsConfigurable() throws {
        var options = DatabaseOptions()
        options.synchronous = .normal
        let db = try Database.open(path: dir.file("n.db"), options: options)
        #expect(try db.scalarInt("PRAGMA synchronous") == 1)
    }

    @Test func anOldFileIsUpgradedOneMigrationAtATime() throws {
        let path = dir.file("old.db")
        let db = try Database.open(path: path)
        try db.transaction {
            _ = try OutboxStore(db).admit([sample()], policy: CapacityPolicy(), now: 1)
        }
        let next = [(version: Database.latestSchemaVersion + 1, name: "vnext_test", sql: "CREATE TABLE added_later (x INTEGER);")]
        try Migrator.migrate(db, migrations: next)
        #expect(try Migrator.version(of: db) == Database.latestSchemaVersion + 1)
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == 1, "data survives the upgrade")
        #expect(try db.scalarInt("SELECT count(*) FROM added_later") == 0)
        // A migration that fails leaves the version where it was.
        let broken = [(version: Database.latestSchemaVersion + 2, name: "vbroken", sql: "CREATE TABLE half (x); THIS IS NOT SQL;")]
        #expect(throws: DatabaseError.self) { try Migrator.migrate(db, migrations: broken) }
        #expect(try Migrator.version(of: db) == Database.latestSchemaVersion + 1)
        #expect(try db.scalarInt("SELECT count(*) FROM sqlite_schema WHERE name = 'half'") == 0)
    }

    @Test func aFileOfANewerSchemaIsRefusedAndUntouched() throws {
        let path = dir.file("newer.db")
        do {
            let db = try Database.open(path: path)
            try db.execute("PRAGMA user_version = 999")
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try Database.open(path: path)
            Issue.record("opened a newer file")
        } catch let error as DatabaseError {
            #expect(error.isNewerSchema)
            #expect(error.description.contains("999"))
            #expect(error.description.contains(path))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test func aForeignSQLiteFileIsRefusedAndUntouched() throws {
        let path = dir.file("foreign.db")
        do {
            let db = try Connection(path: path, create: true)
            try db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY); INSERT INTO photos VALUES (1);")
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect {
            _ = try Database.open(path: path)
        } throws: { ($0 as? DatabaseError)?.isForeign == true }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test func aFileThatIsNotSQLiteIsRefused() throws {
        let path = dir.file("notes.txt")
        try Data(String(repeating: "just some text\n", count: 400).utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try Database.open(path: path)
        } throws: { ($0 as? DatabaseError)?.isCorrupt == true }
    }

    @Test func aDamagedFileIsRefusedWithTheWayToRecover() throws {
        let path = dir.file("damaged.db")
        do {
            let db = try Database.open(path: path)
            try db.transaction {
                let records = (0..<2000).map { _ in sample(bytes: 300) }
                _ = try OutboxStore(db).admit(records, policy: CapacityPolicy(), now: 1)
            }
            try db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
        // Overwrite a page in the middle of the outbox's b-tree with garbage.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 4096 * 20)
        handle.write(Data(repeating: 0x5a, count: 4096))
        try handle.close()
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
        do {
            _ = try Database.open(path: path)
            Issue.record("opened a damaged file")
        } catch let error as DatabaseError {
            #expect(error.isCorrupt)
            #expect(error.description.contains(path))
            #expect(error.description.contains(".recover"))
        }
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == size, "nothing deleted or rebuilt")
    }

    @Test func diskFullIsReportedAndNothingIsHalfWritten() throws {
        var options = DatabaseOptions()
        options.maxPageCount = 64
        let path = dir.file("full.db")
        let db = try Database.open(path: path, options: options)
        let store = OutboxStore(db)
        var stored: Int64 = 0
        var hitFull = false
        for _ in 0..<200 {
            do {
                _ = try db.transaction { try store.admit((0..<20).map { _ in sample(bytes: 900) }, policy: CapacityPolicy(), now: 1) }
                stored += 20
            } catch let error as DatabaseError {
                #expect(error.isDiskFull)
                #expect(error.description.contains("full"))
                hitFull = true
                break
            }
        }
        #expect(hitFull)
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == stored, "the failed batch left nothing behind")
        #expect(try store.total().records == stored, "the running totals match")
        #expect(try db.scalarText("PRAGMA integrity_check") == "ok")
        // Space returns: writing works again.
        try db.execute("PRAGMA max_page_count = 100000")
        _ = try db.transaction { try store.admit([sample()], policy: CapacityPolicy(), now: 1) }
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == stored + 1)
    }

    /// A writer waiting for another connection's write lock gets it soon after the lock is
    /// free and gives up with BUSY once the busy timeout has passed (edgebuf's own busy
    /// handler, not SQLite's coarse one).
    @Test func aWriterWaitsForTheLockUntilItsTimeout() throws {
        let path = dir.file("busy.db")
        let holder = try Database.open(path: path)
        var options = DatabaseOptions()
        options.busyTimeoutMilliseconds = 0
        let impatient = try Database.open(path: path, options: options)
        options.busyTimeoutMilliseconds = 60
        let patient = try Database.open(path: path, options: options)

        try holder.execute("BEGIN IMMEDIATE")
        let clock = ContinuousClock()
        var failure: (any Error)?
        let immediate = clock.measure { do { try impatient.execute("BEGIN IMMEDIATE") } catch { failure = error } }
        #expect((failure as? DatabaseError)?.isBusy == true, "a zero timeout fails at once")
        #expect(immediate < .milliseconds(50))
        failure = nil
        let waited = clock.measure { do { try patient.execute("BEGIN IMMEDIATE") } catch { failure = error } }
        #expect((failure as? DatabaseError)?.isBusy == true, "the lock was never freed")
        #expect(waited >= .milliseconds(60), "it waited its whole timeout first")

        try holder.execute("COMMIT")

        // The lock is freed while a writer with a long timeout waits: it gets it.
        options.busyTimeoutMilliseconds = 10_000
        let waiting = try Database.open(path: path, options: options)
        let locked = DispatchSemaphore(value: 0)
        let other = Thread {
            guard let connection = try? Database.open(path: path), (try? connection.execute("BEGIN IMMEDIATE")) != nil else { locked.signal(); return }
            locked.signal()
            usleep(30_000)
            try? connection.execute("COMMIT")
        }
        other.start()
        locked.wait()
        try waiting.execute("BEGIN IMMEDIATE")
        try waiting.execute("INSERT INTO outbox_totals VALUES (9, 0, 0)")
        try waiting.execute("COMMIT")
        #expect(try waiting.scalarInt("SELECT count(*) FROM outbox_totals WHERE class = 9") == 1)
    }

    /// The busy handler's schedule: never more than 1 ms between tries (a waiter is at most
    /// that late once the lock is free), and the time it counts as waited is the sum of its
    /// sleeps, so the timeout means what it says.
    @Test func theBusyHandlerRetriesAtLeastEveryMillisecond() {
        var sum: Int64 = 0
        for count in Int32(0)..<20_000 {
            #expect(csqlite_busy_waited_us(count) == sum)
            let delay = csqlite_busy_delay_us(count)
            #expect(delay > 0 && delay <= 1000)
            sum += delay
        }
        #expect(sum >= 10_000 * 1000, "the default 10 s timeout is reached in fewer tries")
    }
}

/// A valid property record with a payload of about `bytes` bytes.
func sample(device: String = "d1", cls: RecordClass = .normal, bytes: Int = 100) -> NewRecord {
    var input = RecordInput(kind: .property)
    input.deviceID = device
    input.serviceID = "S"
    input.properties = Array(#"{"p":"\#(String(repeating: "x", count: max(bytes - 70, 1)))"}"#.utf8)
    input.recordClass = cls.name
    return try! input.validated(now: 1_795_317_010_555, maxBodyBytes: 1_048_576)
}
