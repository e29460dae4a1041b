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
}
