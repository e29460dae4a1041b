@testable import EdgeStore
import Foundation
import TestSupport
import Testing

/// v0005 rebuilds the outbox to add the operation_status kind: rows, totals and the id counter
/// survive, and the CHECK still refuses unknown kinds.
@Suite struct OperationsMigrationTests {
    let dir = TemporaryDirectory()

    func record(_ target: String) throws -> NewRecord {
        var input = RecordInput(kind: .measurement)
        input.source = target
        input.type = "t"
        input.fragments = Array(#"{"c8y_T":{"T":{"value":1}}}"#.utf8)
        return try input.validated(now: 1, maxBodyBytes: 1 << 20)
    }

    @Test func aVersion4OutboxKeepsItsRowsAndNeverReusesAnIdAfterTheRebuild() throws {
        let db = try Connection(path: dir.file("v4.db"), create: true)
        try Migrator.migrate(db, migrations: embeddedMigrations.filter { $0.version <= 4 })
        #expect(try Migrator.version(of: db) == 4)
        let ids = try db.transaction { try OutboxStore(db).admit([try record("a"), try record("b"), try record("c")], policy: CapacityPolicy(), now: 1) }
        try db.transaction { _ = try OutboxStore(db).remove(ids: [ids[1], ids[2]]) }

        try Migrator.migrate(db, migrations: embeddedMigrations)
        #expect(try Migrator.version(of: db) == 5)
        #expect(try OutboxStore(db).list(limit: 10).map(\.id) == [ids[0]])
        #expect(try OutboxStore(db).total().records == 1)
        var status = RecordInput(kind: .operationStatus)
        status.operationID = "77"
        status.status = "EXECUTING"
        let next = try db.transaction { try OutboxStore(db).admit([try status.validated(now: 2, maxBodyBytes: 1 << 20)], policy: CapacityPolicy(), now: 2) }
        #expect(next == [ids[2] + 1], "an id of a removed record is never given again")
        #expect(try OutboxStore(db).list(limit: 10).map(\.kind) == [.operationStatus, .measurement], "critical first")
        #expect(try OperationStore(db).pendingStatuses(of: "77") == [PendingOperationStatus(recordID: ids[2] + 1, status: .executing)])
        #expect(throws: DatabaseError.self) {
            try db.execute("INSERT INTO outbox (kind, class, target, event_time, enqueued_at, payload, bytes) VALUES ('bogus', 0, 'x', 0, 0, x'00', 1)")
        }
        #expect(try db.scalarInt("SELECT count(*) FROM sqlite_schema WHERE name IN ('outbox_by_class', 'outbox_operations', 'operation_final', 'operation_runs')") == 4)
    }
}
