@testable import EdgeStore
import Foundation
import TestSupport
import Testing

@Suite struct InboxStoreTests {
    let dir = TemporaryDirectory()
    let db: Connection
    let inbox: InboxStore

    init() throws {
        db = try Database.open(path: dir.file("i.db"))
        inbox = InboxStore(db)
    }

    func row(_ channel: String, _ key: String, _ data: String = #"{"id":"1"}"#) -> InboxNotificationRow {
        InboxNotificationRow(channel: channel, dedupeKey: key, realtimeAction: "CREATE", data: Array(data.utf8))
    }

    @discardableResult
    func insert(_ rows: [InboxNotificationRow], gap: (String, Int)? = nil, at: Int64 = 1_000) throws -> InboxBatchResult {
        try db.transaction { try inbox.insert(rows, gap: gap.map { (reason: $0.0, session: $0.1) }, receivedAt: at) }
    }

    @Test func aDuplicateKeyIsStoredOnceWithinAndAcrossBatches() throws {
        let first = try insert([row("/a", "k1"), row("/a", "k2"), row("/a", "k1")])
        #expect(first.stored == 2)
        #expect(first.duplicates == 1)
        let second = try insert([row("/a", "k2"), row("/a", "k3")])
        #expect(second.stored == 1)
        #expect(second.duplicates == 1)
        // Ids only increase; an ignored duplicate may leave a hole (SQLite's AUTOINCREMENT).
        let ids = try inbox.list(afterID: 0).map(\.id)
        #expect(ids.count == 3)
        #expect(ids == ids.sorted())
        #expect(try db.scalarInt("SELECT count(DISTINCT dedupe_key) FROM inbox") == 3)
    }

    @Test func theGapMarkerComesBeforeTheBatchItArrivedWith() throws {
        try insert([row("/a", "k1")])
        let result = try insert([row("/a", "k2")], gap: ("server restarted", 2))
        let entries = try inbox.list(afterID: 1)
        #expect(entries.map(\.kind) == [.gap, .notification])
        #expect(result.gapID == entries[0].id)
        #expect(entries[0].channel == nil)
        #expect(entries[0].data == #"{"reason":"server restarted","session":2}"#)
    }

    @Test func everyBatchIsAuditedWithCountsBytesAndChannels() throws {
        try insert([row("/b", "k1", "{}"), row("/a", "k2", "[1]"), row("/a", "k1", "{}")], gap: ("restart", 2))
        let audit = try AuditLog(db).list()
        #expect(audit.count == 1)
        #expect(audit[0].event == "notifications_received")
        #expect(audit[0].detail == #"{"received":3,"stored":2,"duplicates":1,"bytes":7,"channels":["/a","/b"],"first_id":1,"last_id":3,"gap":"restart"}"#)
    }

    @Test func aChannelGlobSelectsNotificationsAndKeepsGapMarkers() throws {
        try insert([row("/operations/1", "k1"), row("/alarms/1", "k2")])
        try insert([row("/operations/2", "k3")], gap: ("restart", 2))
        let entries = try inbox.list(afterID: 0, channel: "/operations/*")
        #expect(entries.map(\.id) == [1, 3, 4])
        #expect(entries.map(\.kind) == [.notification, .gap, .notification])
    }

    @Test func theJSONLineCarriesTheDataAsJSON() throws {
        try insert([row("/operations/1", "k1", #"{"id":"7","n":1.50}"#)], at: 1_700_000_000_123)
        let line = try #require(try inbox.list(afterID: 0).first).jsonLine
        #expect(line == #"{"id":1,"kind":"notification","channel":"/operations/1","realtime_action":"CREATE","received_at":"2023-11-14T22:13:20.123Z","data":{"id":"7","n":1.50}}"#)
    }

    @Test func aCursorNeverMovesBackwards() throws {
        #expect(try inbox.position(of: "ops") == 0)
        try db.transaction { try inbox.advance("ops", to: 5, now: 1) }
        try db.transaction { try inbox.advance("ops", to: 3, now: 2) }
        #expect(try inbox.position(of: "ops") == 5)
        #expect(try inbox.consumers() == [InboxConsumer(name: "ops", position: 5, updatedAt: 2)])
    }

    @Test func consumerNamesAreChecked() {
        #expect(InboxStore.consumerNameProblem("ops-handler_1.2") == nil)
        #expect(InboxStore.consumerNameProblem("") != nil)
        #expect(InboxStore.consumerNameProblem("a b") != nil)
        #expect(InboxStore.consumerNameProblem(String(repeating: "x", count: 65)) != nil)
    }

    @Test func retentionByCountKeepsTheNewestAndAuditsThePurge() throws {
        for i in 1...10 { try insert([row("/a", "k\(i)")], at: Int64(i)) }
        let removed = try db.transaction { try inbox.purge(maxRecords: 4, maxAgeMilliseconds: nil, now: 100) }
        #expect(removed == 6)
        #expect(try inbox.list(afterID: 0).map(\.id) == [7, 8, 9, 10])
        #expect(try inbox.purgedThrough() == 6)
        let purge = try #require(try AuditLog(db).list().last)
        #expect(purge.event == "inbox_purged")
        #expect(purge.detail == #"{"records":6,"first_id":1,"last_id":6,"policy":["max_records"],"max_records":4}"#)
        // Nothing more to do: no second audit row.
        #expect(try db.transaction { try inbox.purge(maxRecords: 4, maxAgeMilliseconds: nil, now: 100) } == 0)
        #expect(try AuditLog(db).list().last?.seq == purge.seq)
    }

    @Test func retentionByAgeRemovesOldRows() throws {
        for i in 1...5 { try insert([row("/a", "k\(i)")], at: Int64(i * 1000)) }
        let removed = try db.transaction { try inbox.purge(maxRecords: 100, maxAgeMilliseconds: 2500, now: 5000) }
        #expect(removed == 2)
        #expect(try inbox.list(afterID: 0).map(\.id) == [3, 4, 5])
    }

    @Test func idsAreNeverReusedAfterAPurge() throws {
        for i in 1...3 { try insert([row("/a", "k\(i)")]) }
        try db.transaction { _ = try inbox.purge(maxRecords: 1, maxAgeMilliseconds: nil, now: 10_000) }
        try db.execute("DELETE FROM inbox")
        try insert([row("/a", "k9")])
        #expect(try inbox.list(afterID: 0).map(\.id) == [4])
    }

    @Test func theSchemaRefusesAGapWithAChannelOrANotificationWithoutAKey() {
        #expect(throws: DatabaseError.self) {
            try db.execute("INSERT INTO inbox (kind, channel, dedupe_key, data, received_at) VALUES ('gap', '/a', NULL, '{}', 1)")
        }
        #expect(throws: DatabaseError.self) {
            try db.execute("INSERT INTO inbox (kind, channel, dedupe_key, data, received_at) VALUES ('notification', '/a', NULL, '{}', 1)")
        }
    }
}
