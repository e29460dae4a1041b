import TestSupport
import EdgeStore
import EdgeUplink
import Foundation
import Testing

/// The streaming packer (`Packer.Window`) and the window reader the engine uses
/// (`Packer.nextWindow`): limits, where a window ends, order.
@Suite struct PackerWindowTests {
    let limits = Packer.Limits(maxBodyBytes: 2048, maxChildrenPerRequest: 3)

    /// Offers `records` as the engine's reader does: until the window refuses one.
    func fill(_ window: inout Packer.Window, _ records: [StoredRecord]) -> Int {
        var taken = 0
        for record in records {
            guard window.offer(record) else { break }
            taken += 1
        }
        return taken
    }

    @Test func aWindowEndsWhereARequestIsFullPastItsBudget() {
        let packer = Packer(limits: limits)
        let records = (1...200).map { Fixture.property(Int64($0), filler: 150) }
        var window = packer.window(budget: .init(maxRecords: 20, maxBytes: .max / 2))
        let taken = fill(&window, records)
        #expect(taken >= 20 && taken < 200)
        let result = window.finish()
        #expect(result.requests.flatMap(\.recordIDs) == Array(1...Int64(taken)))
        // The record refused would not have fit into the last request: every request is full.
        for (index, request) in result.requests.enumerated() {
            let next = records[request.recordIDs.last.map { Int($0) }!]  // id n is records[n - 1]
            #expect(request.body.count <= limits.maxBodyBytes)
            #expect(request.body.count + 1 + next.payload.count > limits.maxBodyBytes, "request \(index) is not full")
        }
    }

    @Test func aWindowEndsAtItsByteBudgetToo() {
        let packer = Packer(limits: limits)
        let records = (1...200).map { Fixture.property(Int64($0), filler: 150) }
        var window = packer.window(budget: .init(maxRecords: 10_000, maxBytes: 3000))
        let taken = fill(&window, records)
        #expect(window.bytes >= 3000)
        #expect(taken < 200)
        #expect(window.finish().requests.allSatisfy { $0.body.count <= limits.maxBodyBytes })
    }

    @Test func theFirstRecordIsAlwaysTakenAndMessagesEndAFullWindow() {
        let packer = Packer(limits: limits)
        var window = packer.window(budget: .init(maxRecords: 1, maxBytes: 1))
        let first = window.offer(Fixture.message(1))
        let second = window.offer(Fixture.message(2))
        #expect(first)
        #expect(!second)
        #expect(window.finish().requests.map(\.recordIDs) == [[1]])
    }

    /// Random mixes of kinds, devices, children and sizes, drained window by window as the
    /// engine does (each window starts with the record the previous one refused): no request
    /// over the body or children limit, every record exactly once, each device's records in
    /// id order across requests and windows.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func windowsKeepTheLimitsAndEachDevicesOrder(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let packer = Packer(limits: limits)
        var records: [StoredRecord] = []
        for id in 1...400 as ClosedRange<Int64> {
            let filler = Int.random(in: 0...600, using: &random)
            switch Int.random(in: 0..<10, using: &random) {
            case 0: records.append(Fixture.message(id, device: "d\(Int.random(in: 1...2, using: &random))", filler: filler))
            case 1...3: records.append(Fixture.child(id, gateway: "gw\(Int.random(in: 1...2, using: &random))", child: "c\(Int.random(in: 1...6, using: &random))", filler: filler))
            case 4...5: records.append(Fixture.measurement(id, source: "\(Int.random(in: 1...3, using: &random))", filler: filler))
            default: records.append(Fixture.property(id, device: "d\(Int.random(in: 1...3, using: &random))", filler: filler))
            }
        }
        records.append(Fixture.property(401, filler: 4000))  // over the limit alone
        var sent: [UplinkRequest] = []
        var oversized: [Int64] = []
        var next = 0
        var windows = 0
        while next < records.count {
            var window = packer.window(budget: .init(maxRecords: Int.random(in: 1...40, using: &random), maxBytes: 4096))
            let taken = fill(&window, Array(records[next...]))
            #expect(taken > 0)
            next += taken
            windows += 1
            let result = window.finish()
            sent += result.requests
            oversized += result.oversized.map(\.id)
        }
        #expect(windows > 1)
        #expect(oversized == [401])
        for request in sent {
            #expect(request.body.count <= limits.maxBodyBytes)
            #expect(request.children.count <= limits.maxChildrenPerRequest)
            #expect(Fixture.json(request.body) != nil)
        }
        #expect((sent.flatMap(\.recordIDs) + oversized).sorted() == Array(1...401))
        // Per device (for children: per gateway and child) in the order requests are sent.
        var lastID: [String: Int64] = [:]
        for request in sent {
            for record in request.records {
                let device = record.kind == .measurement ? "m:\(record.target)" : "\(record.kind.rawValue):\(record.target):\(record.child ?? "")"
                #expect(record.id > lastID[device, default: 0], "\(device) out of order at \(record.id)")
                lastID[device] = record.id
            }
        }
    }

    @Test func packIsOneUnlimitedWindow() {
        let packer = Packer(limits: limits)
        let records = (1...50).map { Fixture.property(Int64($0), device: "d\($0 % 3)", filler: 120) }
        var window = packer.window(budget: .unlimited)
        let taken = fill(&window, records)
        #expect(taken == records.count)
        #expect(window.finish() == packer.pack(records))
    }
}

/// `Packer.nextWindow` over a real outbox: classes in order, FIFO, delivered records leave.
@Suite struct WindowReaderTests {
    let dir = TemporaryDirectory()

    func record(_ n: Int, _ cls: RecordClass, device: String = "d1", bytes: Int = 300) -> NewRecord {
        var input = RecordInput(kind: .property)
        input.deviceID = device
        input.serviceID = "S"
        input.properties = Array(#"{"n":\#(n),"p":"\#(String(repeating: "x", count: bytes))"}"#.utf8)
        input.recordClass = cls.name
        return try! input.validated(now: Fixture.now, maxBodyBytes: 1_048_576)
    }

    @Test func drainsCriticalThenNormalThenBulkOldestFirstAndKeepsTotals() throws {
        let db = try Database.open(path: dir.file("w.db"))
        let store = OutboxStore(db)
        var random = SplitMix64(seed: 7)
        let classes = (0..<300).map { _ in RecordClass.allCases[Int.random(in: 0..<3, using: &random)] }
        let batch = classes.enumerated().map { record($0.offset, $0.element, device: $0.offset % 4 == 0 ? "d2" : "d1") }
        _ = try db.transaction { try store.admit(batch, policy: CapacityPolicy(), now: Fixture.now) }
        let packer = Packer(limits: .init(maxBodyBytes: 4096, maxChildrenPerRequest: 50))
        var order: [StoredRecord] = []
        var windows = 0
        while true {
            let result = try packer.nextWindow(from: store, kinds: nil, target: nil, budget: .init(maxRecords: 16, maxBytes: 8192))
            if result.requests.isEmpty { break }
            windows += 1
            #expect(windows < 1000)
            for request in result.requests {
                #expect(request.body.count <= 4096)
                order += request.records
                try db.transaction { _ = try store.removeDelivered(request.records) }
            }
        }
        #expect(order.count == 300)
        #expect(windows > 3)
        // Class order: no record of a less urgent class before one of a more urgent class.
        #expect(order.map(\.recordClass) == order.map(\.recordClass).sorted())
        // Within a class, each device's records oldest first.
        for cls in RecordClass.allCases {
            for device in ["d1", "d2"] {
                let ids = order.filter { $0.target == device && $0.recordClass == cls }.map(\.id)
                #expect(!ids.isEmpty)
                #expect(ids == ids.sorted())
            }
        }
        #expect(try store.total() == OutboxTotals())
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == 0)
    }

    /// The engine reads the next window while the last one is sent and committed, after the
    /// records still queued (`after`): that gives the requests a window-at-a-time drain gives.
    @Test func readingAheadAfterTheQueuedRecordsGivesTheSameRequests() throws {
        var random = SplitMix64(seed: 11)
        let batch = (0..<300).map { n in
            record(n, RecordClass.allCases[Int.random(in: 0..<3, using: &random)], device: n % 3 == 0 ? "d2" : "d1")
        }
        let packer = Packer(limits: .init(maxBodyBytes: 4096, maxChildrenPerRequest: 50))
        let budget = Packer.Window.Budget(maxRecords: 16, maxBytes: 8192)
        func drain(_ name: String, readAhead: Bool) throws -> [[Int64]] {
            let db = try Database.open(path: dir.file(name))
            let store = OutboxStore(db)
            _ = try db.transaction { try store.admit(batch, policy: CapacityPolicy(), now: Fixture.now) }
            var sent: [[Int64]] = []
            var queued = try packer.nextWindow(from: store, kinds: nil, target: nil, budget: budget).requests
            while !queued.isEmpty {
                var after: [RecordClass: Int64] = [:]
                for request in queued {
                    after[request.recordClass] = max(after[request.recordClass] ?? 0, request.recordIDs.max() ?? 0)
                }
                let ahead = readAhead ? try packer.nextWindow(from: store, kinds: nil, target: nil, budget: budget, after: after).requests : []
                for request in queued {
                    sent.append(request.recordIDs)
                    try db.transaction { _ = try store.removeDelivered(request.records) }
                }
                queued = readAhead ? ahead : try packer.nextWindow(from: store, kinds: nil, target: nil, budget: budget).requests
            }
            #expect(try db.scalarInt("SELECT count(*) FROM outbox") == 0)
            return sent
        }
        let plain = try drain("plain.db", readAhead: false)
        let ahead = try drain("ahead.db", readAhead: true)
        #expect(plain.count > 10)
        #expect(plain.joined().count == 300)
        #expect(ahead == plain)
    }

    /// The window reads rows in place (payloads straight into bodies); that packs every kind
    /// exactly as `pack` packs the same records read as `StoredRecord`s.
    @Test func rowsReadInPlacePackAsStoredRecordsDo() throws {
        let db = try Database.open(path: dir.file("rows.db"))
        let store = OutboxStore(db)
        var random = SplitMix64(seed: 5)
        let mixed: [StoredRecord] = (1...240).map { n in
            let id = Int64(n)
            switch Int.random(in: 0..<4, using: &random) {
            case 0: return Fixture.property(id, device: n % 2 == 0 ? "d1" : "a-device-id-longer-than-fifteen-bytes", filler: n % 50)
            case 1: return Fixture.message(id, filler: n % 30)
            case 2: return Fixture.child(id, child: "c\(n % 7)", filler: n % 40)
            default: return Fixture.measurement(id, source: "\(1000 + n % 3)", filler: n % 20)
            }
        }
        let batch = mixed.map { NewRecord(kind: $0.kind, recordClass: $0.recordClass, target: $0.target, child: $0.child,
                                          eventTime: $0.eventTime, payload: $0.payload) }
        _ = try db.transaction { try store.admit(batch, policy: CapacityPolicy(), now: Fixture.now) }
        let packer = Packer(limits: .init(maxBodyBytes: 2048, maxChildrenPerRequest: 3))
        let stored = try store.records(of: .normal, limit: 1000)
        #expect(stored.count == 240)
        let window = try packer.nextWindow(from: store, kinds: nil, target: nil, budget: .unlimited)
        #expect(window == packer.pack(stored))
        #expect(window.requests.map(\.kind).count > 20)
    }

    @Test func onlyTheGivenKindsAndTarget() throws {
        let db = try Database.open(path: dir.file("k.db"))
        let store = OutboxStore(db)
        _ = try db.transaction { try store.admit([record(1, .normal, device: "d1"), record(2, .normal, device: "other"), record(3, .normal, device: "d1")], policy: CapacityPolicy(), now: Fixture.now) }
        let packer = Packer()
        let result = try packer.nextWindow(from: store, kinds: [.property], target: "d1", budget: .init(maxRecords: 100, maxBytes: 1 << 20))
        #expect(result.requests.map(\.recordIDs) == [[1, 3]])
        let none = try packer.nextWindow(from: store, kinds: [.measurement], target: nil, budget: .init(maxRecords: 100, maxBytes: 1 << 20))
        #expect(none.requests.isEmpty)
    }
}
