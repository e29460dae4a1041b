@testable import EdgeStore
import Foundation
import TestSupport
import Testing

@Suite struct OutboxStoreTests {
    let dir = TemporaryDirectory()
    let db: Connection
    let store: OutboxStore

    init() throws {
        db = try Database.open(path: dir.file("o.db"))
        store = OutboxStore(db)
    }

    func admit(_ records: [NewRecord], _ policy: CapacityPolicy, now: Int64 = 1) throws -> [Int64] {
        try db.transaction { try store.admit(records, policy: policy, now: now) }
    }

    func audit() throws -> [AuditEntry] { try AuditLog(db).list() }

    @Test func idsAreIncreasingAndNeverReused() throws {
        let first = try admit([sample(), sample()], CapacityPolicy())
        try db.transaction { _ = try store.remove(ids: first) }
        let next = try admit([sample()], CapacityPolicy())
        #expect(next[0] > first[1])
    }

    /// A batch is inserted many rows a statement (64, then 8, then 1): each returned id must
    /// name its own record, in order, also after ids were used up by deleted records, and
    /// the totals count every record once.
    @Test func eachIdNamesItsRecordAcrossMultiRowInserts() throws {
        _ = try admit([sample(), sample(), sample()], CapacityPolicy())
        try db.execute("DELETE FROM outbox")
        for size in [1, 7, 8, 9, 63, 64, 65, 75, 200] {
            let batch = (0..<size).map { n in sample(device: "d\(size)-\(n)", cls: n % 3 == 0 ? .bulk : .normal) }
            let before = try store.total()
            let ids = try admit(batch, CapacityPolicy())
            #expect(ids.count == size)
            #expect(zip(ids, ids.dropFirst()).allSatisfy { $0 + 1 == $1 }, "consecutive, increasing")
            for (id, record) in zip(ids, batch) {
                let stmt = try db.prepare("SELECT target, class FROM outbox WHERE id = ?")
                try stmt.bind(id, at: 1)
                #expect(try stmt.step())
                #expect(stmt.text(0) == record.target)
                #expect(stmt.int64(1) == Int64(record.recordClass.rawValue))
            }
            let after = try store.total()
            #expect(after.records == before.records + Int64(size))
            #expect(after.bytes == before.bytes + batch.reduce(0) { $0 + Int64($1.payload.count) })
        }
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == 1 + 7 + 8 + 9 + 63 + 64 + 65 + 75 + 200)
    }

    @Test func rejectNewRefusesAndChangesNothing() throws {
        let policy = CapacityPolicy(maxRecords: 3, whenFull: .rejectNew)
        _ = try admit([sample(), sample()], policy)
        #expect(throws: OutboxFullError.self) { _ = try admit([sample(), sample()], policy) }
        #expect(try store.total().records == 2)
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == 2, "nothing of the refused batch is stored")
        _ = try admit([sample()], policy)
        do {
            _ = try admit([sample()], policy)
        } catch let full as OutboxFullError {
            #expect(full.description.contains("NOT stored"))
            #expect(full.description.contains("max_records"))
        }
        #expect(try audit().isEmpty)
    }

    @Test func maxBytesCountsPayloadBytes() throws {
        let one = sample(bytes: 500)
        let policy = CapacityPolicy(maxBytes: Int64(one.payload.count * 2), whenFull: .rejectNew)
        _ = try admit([one, one], policy)
        #expect {
            _ = try admit([sample(bytes: 100)], policy)
        } throws: { ($0 as? OutboxFullError)?.limit == "max_bytes" }
    }

    @Test func dropOldestEvictsBulkBeforeNormalBeforeCriticalAndAudits() throws {
        let policy = CapacityPolicy(maxRecords: 6, whenFull: .dropOldest)
        let critical = try admit([sample(cls: .critical), sample(cls: .critical)], policy)
        let normal = try admit([sample(cls: .normal), sample(cls: .normal)], policy)
        let bulk = try admit([sample(cls: .bulk), sample(cls: .bulk)], policy)
        _ = try admit([sample(cls: .normal), sample(cls: .normal), sample(cls: .normal)], policy)
        // 3 over: both bulk go first, then the oldest normal.
        for id in bulk { #expect(try !store.contains(id: id)) }
        #expect(try !store.contains(id: normal[0]))
        #expect(try store.contains(id: normal[1]))
        for id in critical { #expect(try store.contains(id: id)) }
        #expect(try store.total().records == 6)
        let rows = try audit()
        #expect(rows.map(\.event) == ["evicted", "evicted"])
        #expect(rows[0].detail.contains(#""class":"bulk","count":2"#))
        #expect(rows[0].detail.contains(#""first_id":\#(bulk[0]),"last_id":\#(bulk[1])"#))
        #expect(rows[1].detail.contains(#""class":"normal","count":1"#))
    }

    @Test func aLessImportantRecordNeverEvictsAMoreImportantOne() throws {
        let policy = CapacityPolicy(maxRecords: 2, whenFull: .dropOldest)
        _ = try admit([sample(cls: .critical), sample(cls: .critical)], policy)
        #expect(throws: OutboxFullError.self) { _ = try admit([sample(cls: .bulk)], policy) }
        #expect(try store.total().records == 2)
        #expect(try audit().isEmpty, "a refused admission evicts nothing")
        _ = try admit([sample(cls: .critical)], policy)
        #expect(try audit().count == 1)
    }

    @Test func maxAgeExpiresAndAudits() throws {
        let old = try admit([sample(), sample(cls: .bulk)], CapacityPolicy(), now: 1_000)
        let young = try admit([sample()], CapacityPolicy(), now: 100_000)
        let expired = try db.transaction { try store.expire(maxAgeMilliseconds: 50_000, now: 120_000) }
        #expect(expired == 2)
        for id in old { #expect(try !store.contains(id: id)) }
        #expect(try store.contains(id: young[0]))
        let rows = try audit()
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0.event == "expired" })
        #expect(try store.total().records == 1)
    }

    /// The running totals against a model of what the outbox must hold, after each change
    /// that adds or takes records: admission, removal by id, delivered range deletes (the fast
    /// path and the recount when a record went meanwhile), eviction, expiry, dead-lettering,
    /// a dead-letter retry and a purge; and the model against the table itself.
    @Test func totalsFollowEveryChange() throws {
        var model: [Int64: (cls: RecordClass, bytes: Int64)] = [:]
        func admitted(_ records: [NewRecord], _ ids: [Int64]) {
            for (record, id) in zip(records, ids) { model[id] = (record.recordClass, Int64(record.payload.count)) }
        }
        func expected() -> [RecordClass: OutboxTotals] {
            var totals = Dictionary(uniqueKeysWithValues: RecordClass.allCases.map { ($0, OutboxTotals()) })
            for entry in model.values {
                totals[entry.cls]!.records += 1
                totals[entry.cls]!.bytes += entry.bytes
            }
            return totals
        }
        func table() throws -> [RecordClass: OutboxTotals] {
            var totals = Dictionary(uniqueKeysWithValues: RecordClass.allCases.map { ($0, OutboxTotals()) })
            let stmt = try db.prepare("SELECT class, count(*), sum(bytes) FROM outbox GROUP BY class")
            while try stmt.step() { totals[RecordClass(rawValue: stmt.int(0))!] = OutboxTotals(records: stmt.int64(1), bytes: stmt.int64(2)) }
            return totals
        }
        func check(_ step: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let want = expected()
            #expect(try Set(store.list(limit: 1000).map(\.id)) == Set(model.keys), "\(step): the records stored", sourceLocation: sourceLocation)
            #expect(try table() == want, "\(step): the table holds what the model says", sourceLocation: sourceLocation)
            #expect(try store.totals() == want, "\(step): the running totals", sourceLocation: sourceLocation)
        }

        // Admission: 5 bulk and 5 critical of different sizes, enqueued at 1,000.
        let ten = (0..<10).map { i in sample(cls: i % 2 == 0 ? .bulk : .critical, bytes: 100 + i) }
        let ids = try admit(ten, CapacityPolicy(), now: 1_000)
        admitted(ten, ids)
        try check("admit")
        #expect(try store.totals()[.bulk]?.records == 5 && store.totals()[.critical]?.records == 5)

        // Removal by id: bulk, critical, bulk.
        try db.transaction { _ = try store.remove(ids: Array(ids.prefix(3))) }
        for id in ids.prefix(3) { model[id] = nil }
        try check("remove")
        #expect(try store.totals()[.bulk]?.records == 3, "5 bulk less the 2 removed")

        // Delivered, as a range: ids[3...5] in one DELETE, the totals adjusted from the records.
        let delivered = try store.list(limit: 100).filter { ids[3...5].contains($0.id) }
        #expect(try db.transaction { try store.removeDelivered(delivered) } == 3)
        for id in ids[3...5] { model[id] = nil }
        try check("removeDelivered")

        // Delivered while one of them went meanwhile: the totals are recounted.
        let later = try store.list(limit: 100).filter { ids[6...8].contains($0.id) }
        try db.transaction { _ = try store.remove(ids: [ids[7]]) }
        model[ids[7]] = nil
        #expect(try db.transaction { try store.removeDelivered(later) } == 2)
        for id in ids[6...8] { model[id] = nil }
        try check("removeDelivered of a record gone meanwhile")

        // Eviction: one place left; two normal records evict the oldest bulk one.
        let young = [sample(cls: .bulk, bytes: 300), sample(cls: .critical, bytes: 310)]
        let youngIDs = try admit(young, CapacityPolicy(), now: 100_000)
        admitted(young, youngIDs)
        try check("admit at 100,000")
        let policy = CapacityPolicy(maxRecords: Int64(model.count + 1), whenFull: .dropOldest)
        let oldestBulk = try #require(model.filter { $0.value.cls == .bulk }.keys.min())
        let normal = [sample(cls: .normal, bytes: 200), sample(cls: .normal, bytes: 210)]
        admitted(normal, try admit(normal, policy, now: 100_000))
        model[oldestBulk] = nil
        try check("eviction")

        // Expiry: everything enqueued at 1,000 goes, the rest stays.
        let enqueuedEarly = try db.prepare("SELECT id FROM outbox WHERE enqueued_at = 1000")
        var early: [Int64] = []
        while try enqueuedEarly.step() { early.append(enqueuedEarly.int64(0)) }
        #expect(!early.isEmpty)
        #expect(try db.transaction { try store.expire(maxAgeMilliseconds: 50_000, now: 120_000) } == Int64(early.count))
        for id in early { model[id] = nil }
        try check("expiry")

        // Dead letters: two move out, are retried back under their ids, then one more goes
        // and is purged (the outbox is not touched by the purge).
        let dead = DeadLetterStore(db)
        let why = RejectionReason(reason: "invalid input", httpStatus: 400, errorCode: "IOTDA.000006", errorMessage: "Invalid input data.")
        let lettered = Array(model.keys.sorted().prefix(2))
        let saved = lettered.map { model[$0]! }
        #expect(try db.transaction { try dead.deadLetter(ids: lettered, because: why, now: 130_000) } == 2)
        for id in lettered { model[id] = nil }
        try check("deadLetter")
        #expect(try db.transaction { try dead.retry(now: 131_000) } == 2)
        for (id, entry) in zip(lettered, saved) { model[id] = entry }
        try check("dead-letter retry")
        let last = try #require(model.keys.max())
        try db.transaction { _ = try dead.deadLetter(ids: [last], because: why, now: 132_000) }
        model[last] = nil
        try db.transaction { _ = try dead.purge(now: 133_000) }
        try check("dead-letter purge")
        #expect(try dead.total().records == 0)

        // A recount from the table changes nothing.
        let running = try store.totals()
        try db.transaction { try store.recountTotals() }
        #expect(try store.totals() == running)
    }

    @Test func listIsInDrainOrder() throws {
        _ = try admit([sample(cls: .bulk), sample(cls: .normal), sample(cls: .critical)], CapacityPolicy())
        #expect(try store.list(limit: 10).map(\.recordClass) == [.critical, .normal, .bulk])
    }

    @Test func deadLettersKeepTheReasonAndCanBeRetriedOrPurged() throws {
        let ids = try admit([sample(), sample(), sample()], CapacityPolicy())
        let dead = DeadLetterStore(db)
        let why = RejectionReason(reason: "invalid input", httpStatus: 400, errorCode: "IOTDA.000006", errorMessage: "Invalid input data.")
        try db.transaction { _ = try dead.deadLetter(ids: [ids[1]], because: why, now: 5) }
        #expect(try !store.contains(id: ids[1]))
        let letters = try dead.list()
        #expect(letters.count == 1)
        #expect(letters[0].record.id == ids[1])
        #expect(letters[0].errorCode == "IOTDA.000006")
        #expect(letters[0].httpStatus == 400)
        #expect(try store.total().records == 2)
        try db.transaction { _ = try dead.retry(now: 6) }
        #expect(try store.contains(id: ids[1]), "retried under its original id")
        #expect(try store.total().records == 3)
        try db.transaction { _ = try dead.deadLetter(ids: [ids[0]], because: why, now: 7) }
        try db.transaction { _ = try dead.purge(now: 8) }
        #expect(try dead.total().records == 0)
        #expect(try audit().map(\.event) == ["dead_lettered", "dead_letters_retried", "dead_lettered", "dead_letters_purged"])
    }
}

/// Range deletes of delivered records and the streaming reader.
@Suite struct OutboxDeliveryTests {
    let dir = TemporaryDirectory()
    let db: Connection
    let store: OutboxStore

    init() throws {
        db = try Database.open(path: dir.file("d.db"))
        store = OutboxStore(db)
    }

    /// Totals recomputed from the table itself.
    func truth() throws -> [RecordClass: OutboxTotals] {
        var result: [RecordClass: OutboxTotals] = [:]
        for cls in RecordClass.allCases { result[cls] = OutboxTotals() }
        for row in try store.breakdown() {
            result[row.recordClass]!.records += row.records
            result[row.recordClass]!.bytes += row.bytes
        }
        return result
    }

    func fill() throws -> [StoredRecord] {
        let classes: [RecordClass] = [.normal, .bulk, .normal, .normal, .critical, .normal, .bulk, .normal, .normal, .normal]
        _ = try db.transaction { try store.admit(classes.enumerated().map { sample(cls: $0.element, bytes: 100 + $0.offset * 7) }, policy: CapacityPolicy(), now: 1) }
        return try store.list(limit: 100).sorted { $0.id < $1.id }
    }

    @Test func removeDeliveredDeletesExactlyTheGivenRecordsAndKeepsTotals() throws {
        let all = try fill()
        #expect(all.map(\.id) == Array(1...10))
        // Runs 2...4, 7 and 9...10 across classes: the records between them stay.
        let delivered = all.filter { [2, 3, 4, 7, 9, 10].contains($0.id) }
        let removed = try db.transaction { try store.removeDelivered(delivered.reversed()) }
        #expect(removed == 6)
        #expect(try store.list(limit: 100).map(\.id).sorted() == [1, 5, 6, 8])
        #expect(try store.totals() == truth())
        #expect(try store.total().records == 4)
    }

    @Test func aRecordGoneMeanwhileLeavesTheTotalsExact() throws {
        let all = try fill()
        try db.transaction { _ = try store.remove(ids: [3]) }  // e.g. evicted by another process
        let removed = try db.transaction { try store.removeDelivered(Array(all[1...4])) }
        #expect(removed == 3)
        #expect(try store.list(limit: 100).map(\.id).sorted() == [1, 6, 7, 8, 9, 10])
        #expect(try store.totals() == truth())
    }

    @Test func forEachRecordStreamsInIDOrderAndStopsWhenAsked() throws {
        _ = try fill()
        var seen: [Int64] = []
        try store.forEachRecord(of: .normal) { record in
            seen.append(record.id)
            return seen.count < 3
        }
        #expect(seen == [1, 3, 4])
        seen = []
        try store.forEachRecord(of: .normal, afterID: 4) { record in
            seen.append(record.id)
            return true
        }
        #expect(seen == [6, 8, 9, 10])
        #expect(try store.records(of: .normal, limit: 2).map(\.id) == [1, 3])
    }

    @Test func forEachRowSeesWhatForEachRecordReads() throws {
        _ = try fill()
        for cls in RecordClass.allCases {
            var records: [StoredRecord] = []
            try store.forEachRecord(of: cls, afterID: 2) { records.append($0); return true }
            var rows: [StoredRecord] = []
            try store.forEachRow(of: cls, afterID: 2) { rows.append($0.stored()); return true }
            #expect(rows == records)
        }
    }
}
