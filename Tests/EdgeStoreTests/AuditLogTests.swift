@testable import EdgeStore
import Foundation
import TestSupport
import Testing

@Suite struct AuditLogTests {
    let dir = TemporaryDirectory()
    let db: Connection
    let audit: AuditLog

    init() throws {
        db = try Database.open(path: dir.file("a.db"))
        audit = AuditLog(db)
        for i in 1...10 {
            var detail = JSONObject()
            detail.add("n", i)
            try db.transaction { _ = try audit.append("test", detail, at: Int64(i)) }
        }
    }

    /// Lets the test tamper, as an attacker with the file would.
    func tamper(_ sql: String) throws {
        try db.execute("DROP TRIGGER audit_is_append_only_update; DROP TRIGGER audit_is_append_only_delete;")
        try db.execute(sql)
    }

    @Test func anUntouchedChainVerifies() throws {
        let result = try audit.verify()
        #expect(result.isIntact)
        #expect(result.rows == 10)
        #expect(result.head?.seq == 10)
    }

    @Test func theTableRefusesUpdatesAndDeletes() {
        #expect(throws: DatabaseError.self) { try db.execute("UPDATE audit SET detail = '{}' WHERE seq = 3") }
        #expect(throws: DatabaseError.self) { try db.execute("DELETE FROM audit WHERE seq = 3") }
    }

    @Test func anEditedRowIsFound() throws {
        try tamper(#"UPDATE audit SET detail = '{"n":99}' WHERE seq = 4"#)
        let result = try audit.verify()
        #expect(!result.isIntact)
        #expect(result.problem?.contains("row 4") == true)
    }

    @Test func aDeletedRowIsFound() throws {
        try tamper("DELETE FROM audit WHERE seq = 6")
        #expect(try audit.verify().problem?.contains("rows 6...6 are missing") == true)
    }

    @Test func reorderedRowsAreFound() throws {
        try tamper("UPDATE audit SET seq = 100 WHERE seq = 7; UPDATE audit SET seq = 7 WHERE seq = 8; UPDATE audit SET seq = 8 WHERE seq = 100;")
        let problem = try audit.verify().problem
        #expect(problem?.contains("row 7") == true)
    }

    @Test func aRecomputedHashStillBreaksTheNextLink() throws {
        // Rewrite row 5 and its own hash consistently: row 6 no longer chains from it.
        let rows = try audit.list()
        let forged = AuditLog.hash(previous: rows[3].hash, seq: 5, at: 5, event: "test", detail: #"{"n":500}"#)
        try tamper("UPDATE audit SET detail = '{\"n\":500}', hash = x'\(AuditLog.hex(forged))' WHERE seq = 5")
        #expect(try audit.verify().problem?.contains("row 6") == true)
    }

    // MARK: Retention

    @Test func purgingByRowsKeepsTheChainVerifiableFromTheAnchor() throws {
        let removed = try db.transaction { try audit.purge(AuditRetention(maxRows: 4), now: 100) }
        #expect(removed == 7)
        let rows = try audit.list()
        // Rows 8...10 and the purge row: max_rows in all.
        #expect(rows.map(\.seq) == [8, 9, 10, 11])
        #expect(rows.last?.event == "audit_purged")
        #expect(rows.last?.detail.contains(#""rows":7,"first_seq":1,"through_seq":7"#) == true)
        let anchor = try #require(try audit.anchor())
        #expect(anchor.seq == 7)
        let result = try audit.verify()
        #expect(result.isIntact, "\(result.problem ?? "")")
        #expect(result.rows == 4 && result.head?.seq == 11)
        // Nothing more is due; appends go on chaining.
        #expect(try db.transaction { try audit.purge(AuditRetention(maxRows: 4), now: 100) } == 0)
        try db.transaction { _ = try audit.append("test", JSONObject(), at: 101) }
        #expect(try audit.verify().isIntact)
    }

    @Test func purgingByAgeRemovesOnlyOlderRowsAndAtMostABatch() throws {
        // Rows 1...10 were written at 1...10 ms.
        let retention = AuditRetention(maxRows: nil, maxAgeMilliseconds: 1000)
        #expect(try db.transaction { try audit.purge(retention, now: 1006, batch: 3) } == 3)  // 1...5 are due, 3 go
        #expect(try db.transaction { try audit.purge(retention, now: 1006, batch: 3) } == 2)
        #expect(try audit.list().first?.seq == 6)
        #expect(try audit.verify().isIntact)
    }

    @Test func onlyRowsUpToTheAnchorCanBeDeleted() throws {
        try db.transaction { _ = try audit.purge(AuditRetention(maxRows: 6), now: 100) }
        #expect(try audit.anchor()?.seq == 5)
        #expect(throws: DatabaseError.self) { try db.execute("DELETE FROM audit WHERE seq = 6") }
        #expect(throws: DatabaseError.self) { try db.execute("UPDATE audit_anchor SET seq = 4") }
        #expect(throws: DatabaseError.self) { try db.execute("DELETE FROM audit_anchor") }
        #expect(try audit.verify().isIntact)
    }

    @Test func anAnchorMovedWithoutAPurgeRowIsFound() throws {
        try db.transaction { _ = try audit.purge(AuditRetention(maxRows: 8), now: 100) }
        // An attacker moves the anchor past rows 3...4 and deletes them, with the right hash.
        let four = try #require(try audit.list().first { $0.seq == 4 })
        try db.execute("UPDATE audit_anchor SET seq = 4, hash = x'\(AuditLog.hex(four.hash))'")
        try db.execute("DELETE FROM audit WHERE seq <= 4")
        let problem = try audit.verify().problem
        #expect(problem?.contains("no audit_purged row") == true, "\(problem ?? "intact")")
    }
}
