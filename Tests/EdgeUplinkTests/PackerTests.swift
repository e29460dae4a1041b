import TestSupport
import EdgeStore
import EdgeUplink
import Foundation
import Testing

@Suite struct PackerTests {
    let packer = Packer()

    @Test func propertiesOfOneDeviceMergeIntoOneBodyPerDevice() {
        let records = [Fixture.property(1, device: "d1", service: "A"), Fixture.property(2, device: "d2", service: "A"),
                       Fixture.property(3, device: "d1", service: "B")]
        let result = packer.pack(records)
        #expect(result.oversized.isEmpty)
        #expect(result.requests.map(\.recordIDs) == [[1, 3], [2]])
        let first = result.requests[0]
        #expect(first.platform == .iotda)
        #expect(first.device == "d1")
        #expect(first.path == "/v5/devices/d1/sys/properties/report")
        #expect(first.recordCount == 2)
        #expect(Fixture.text(first.body) == #"{"services":["# + Fixture.text(records[0].payload) + "," + Fixture.text(records[2].payload) + "]}")
        #expect(result.requests[1].path == "/v5/devices/d2/sys/properties/report")
        let parsed = Fixture.json(first.body) as? [String: Any]
        #expect((parsed?["services"] as? [[String: Any]])?.map { $0["service_id"] as? String } == ["A", "B"])
    }

    @Test func messagesGoOnePerRequestWithThePayloadAsBody() {
        let records = [Fixture.message(1), Fixture.message(2), Fixture.message(3, device: "d2")]
        let result = packer.pack(records)
        #expect(result.requests.map(\.recordIDs) == [[1], [2], [3]])
        for (request, record) in zip(result.requests, records) {
            #expect(request.body == record.payload)
            #expect(request.path == "/v5/devices/\(record.target)/sys/messages/up")
        }
        #expect(packer.split(result.requests[0]) == nil)
    }

    @Test func childPropertiesGroupByChildUnderOneGatewayRequest() {
        let records = [Fixture.child(1, child: "c1"), Fixture.child(2, child: "c2"), Fixture.child(3, child: "c1"),
                       Fixture.child(4, gateway: "gw2", child: "c1")]
        let result = packer.pack(records)
        #expect(result.requests.count == 2)
        let request = result.requests[0]
        #expect(request.path == "/v5/devices/gw/sys/gateway/sub-devices/properties/report")
        #expect(request.recordIDs == [1, 3, 2])
        #expect(request.children == ["c1", "c2"])
        let p = records.map { Fixture.text($0.payload) }
        #expect(Fixture.text(request.body) == #"{"devices":[{"device_id":"c1","services":["# + p[0] + "," + p[2]
            + #"]},{"device_id":"c2","services":["# + p[1] + "]}]}")
        #expect(result.requests[1].device == "gw2")
        #expect(result.requests[1].recordIDs == [4])
    }

    @Test func measurementsMergeWhateverTheirSource() {
        let records = [Fixture.measurement(1, source: "1001"), Fixture.measurement(2, source: "2002")]
        let result = packer.pack(records)
        #expect(result.requests.count == 1)
        let request = result.requests[0]
        #expect(request.platform == .cumulocity)
        #expect(request.device == nil)
        #expect(request.path == "/measurement/measurements")
        #expect(Fixture.text(request.body) == #"{"measurements":["# + Fixture.text(records[0].payload) + ","
            + Fixture.text(records[1].payload) + "]}")
        #expect(((Fixture.json(request.body) as? [String: Any])?["measurements"] as? [Any])?.count == 2)
    }

    @Test func aBodyOfExactlyTheLimitIsAllowedAndOneByteMoreSplits() {
        let records = [Fixture.property(1, filler: 300), Fixture.property(2, filler: 301)]
        let exact = RecordKind.servicesPrefix.count + records[0].payload.count + 1 + records[1].payload.count + RecordKind.arraySuffix.count
        let atLimit = Packer(limits: .init(maxBodyBytes: exact)).pack(records)
        #expect(atLimit.requests.count == 1)
        #expect(atLimit.requests[0].body.count == exact)
        let oneShort = Packer(limits: .init(maxBodyBytes: exact - 1)).pack(records)
        #expect(oneShort.requests.map(\.recordIDs) == [[1], [2]])
        #expect(oneShort.requests.allSatisfy { $0.body.count <= exact - 1 })
        #expect(oneShort.oversized.isEmpty)
    }

    @Test func aRecordThatCannotFitAloneIsReportedNotPacked() {
        let big = Fixture.property(2, filler: 500)
        let limit = big.singleRecordBodyBytes
        let fits = Packer(limits: .init(maxBodyBytes: limit)).pack([big])
        #expect(fits.requests.first?.body.count == limit)
        let packer = Packer(limits: .init(maxBodyBytes: limit - 1))
        let result = packer.pack([Fixture.property(1), big, Fixture.property(3)])
        #expect(result.oversized.map(\.id) == [2])
        #expect(result.requests.flatMap(\.recordIDs) == [1, 3])
        #expect(packer.oversizeReason(big).reason.contains("\(limit) bytes"))
        // Messages and child properties too.
        let message = Fixture.message(4, filler: 600)
        #expect(Packer(limits: .init(maxBodyBytes: message.payload.count - 1)).pack([message]).oversized.map(\.id) == [4])
        let child = Fixture.child(5, child: "c", filler: 600)
        #expect(Packer(limits: .init(maxBodyBytes: child.singleRecordBodyBytes - 1)).pack([child]).oversized.map(\.id) == [5])
        #expect(Packer(limits: .init(maxBodyBytes: child.singleRecordBodyBytes)).pack([child]).requests.first?.body.count == child.singleRecordBodyBytes)
    }

    @Test func fiftyOneChildrenMakeTwoRequests() {
        let records = (1...51).map { Fixture.child(Int64($0), child: "c\($0)") }
        let result = packer.pack(records)
        #expect(result.requests.map(\.children.count) == [50, 1])
        #expect(result.requests.flatMap(\.recordIDs) == (1...51).map { Int64($0) })
        // The limit counts children, not records: 50 children with several records each fit.
        let twice = records.prefix(50) + (1...50).map { Fixture.child(Int64(100 + $0), child: "c\($0)") }
        #expect(packer.pack(Array(twice)).requests.map(\.recordCount) == [100])
        // Once a request is closed, a later record goes to the open one, never back: c1's
        // record 52 follows c51 into the second request, after c1's record 1.
        let more = packer.pack(records + [Fixture.child(52, child: "c1")]).requests
        #expect(more.map(\.recordIDs.count) == [50, 2])
        #expect(more[1].recordIDs == [51, 52])
        #expect(more[1].children == ["c51", "c1"])
    }

    @Test func fifoPerDeviceWhenADeviceOverflowsIntoTheNextRequest() {
        // c1's second record does not fit into the first request: every later record must follow it.
        let records = [Fixture.child(1, child: "c1", filler: 100), Fixture.child(2, child: "c2", filler: 100),
                       Fixture.child(3, child: "c1", filler: 400), Fixture.child(4, child: "c2", filler: 10)]
        let limit = 700
        let result = Packer(limits: .init(maxBodyBytes: limit)).pack(records)
        #expect(result.requests.map(\.recordIDs) == [[1, 2], [3, 4]])
        #expect(result.requests.allSatisfy { $0.body.count <= limit })
    }

    @Test func splitHalvesRecordsAndRebuildsBodiesExactly() throws {
        let records = (1...5).map { Fixture.property(Int64($0), service: "S\($0)") }
        let request = try #require(packer.pack(records).requests.first)
        let (first, second) = try #require(packer.split(request))
        #expect(first.recordIDs == [1, 2])
        #expect(second.recordIDs == [3, 4, 5])
        #expect(first == packer.pack(Array(records[0..<2])).requests[0])
        #expect(second == packer.pack(Array(records[2...])).requests[0])
        #expect(Fixture.json(first.body) != nil && Fixture.json(second.body) != nil)

        // Child properties: halves in body order, each with its own device entries.
        let children = [Fixture.child(1, child: "a"), Fixture.child(2, child: "b"), Fixture.child(3, child: "a")]
        let gateway = try #require(packer.pack(children).requests.first)
        let (left, right) = try #require(packer.split(gateway))
        #expect(left.recordIDs == [1])
        #expect(right.recordIDs == [3, 2])
        #expect(right.children == ["a", "b"])
        #expect(left.body.count <= gateway.body.count && right.body.count <= gateway.body.count)
    }

    /// Random records of one group and a random cut k: with the limit set to the exact size of
    /// the body of the first k records, the first request carries exactly those k records and
    /// is exactly the limit; one byte less and it carries k - 1.
    @Test(arguments: 0..<100)
    func randomExactBoundaries(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &+ 1_000_003)
        let count = Int.random(in: 2...40, using: &rng)
        let kind = [RecordKind.property, .childProperty, .measurement][seed % 3]
        let records: [StoredRecord] = (1...count).map { index in
            let filler = Int.random(in: 0...200, using: &rng)
            switch kind {
            case .property: return Fixture.property(Int64(index), filler: filler)
            case .childProperty: return Fixture.child(Int64(index), child: "c\(Int.random(in: 1...5, using: &rng))", filler: filler)
            default: return Fixture.measurement(Int64(index), source: "s\(index % 4)", filler: filler)
            }
        }
        let k = Int.random(in: 2...count, using: &rng)
        let unlimited = Packer(limits: .init(maxBodyBytes: 1 << 40, maxChildrenPerRequest: 1000))
        let exact = try #require(unlimited.pack(Array(records.prefix(k))).requests.first).body.count

        let atLimit = Packer(limits: .init(maxBodyBytes: exact, maxChildrenPerRequest: 1000)).pack(records)
        #expect(atLimit.requests[0].body.count == exact)
        #expect(Set(atLimit.requests[0].recordIDs) == Set((1...k).map { Int64($0) }))
        let below = Packer(limits: .init(maxBodyBytes: exact - 1, maxChildrenPerRequest: 1000)).pack(records)
        #expect(Set(below.requests[0].recordIDs) == Set((1..<k).map { Int64($0) }))
        #expect(below.requests.allSatisfy { $0.body.count <= exact - 1 })
    }

    /// Random windows with record sizes near the limit, many seeds: no request over the body
    /// or child limit, every body valid JSON with the right records, every record packed once
    /// or reported oversized, each device's records in id order across requests.
    @Test(arguments: 0..<200)
    func randomWindowsRespectEveryLimit(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &* 7919 &+ 1)
        let limit = Int.random(in: 300...2_000, using: &rng)
        let maxChildren = Int.random(in: 1...6, using: &rng)
        let packer = Packer(limits: .init(maxBodyBytes: limit, maxChildrenPerRequest: maxChildren))
        var records: [StoredRecord] = []
        for id in 1...Int64.random(in: 1...120, using: &rng) {
            // Right at the limit alone (singleRecordBodyBytes within a few bytes of it), tiny
            // (many per request, so a request's size lands on every byte near the limit), or between.
            let filler: Int
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: filler = max(0, limit - 130 + Int.random(in: -20...20, using: &rng))
            case 1: filler = Int.random(in: 0...15, using: &rng)
            default: filler = Int.random(in: 0...(limit / 3), using: &rng)
            }
            let device = "d\(Int.random(in: 1...3, using: &rng))"
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: records.append(Fixture.property(id, device: device, service: "S\(id % 3)", filler: filler))
            case 1: records.append(Fixture.message(id, device: device, filler: filler))
            case 2: records.append(Fixture.child(id, gateway: device, child: "c\(Int.random(in: 1...9, using: &rng))", filler: filler))
            default: records.append(Fixture.measurement(id, source: device, filler: filler))
            }
        }
        let result = packer.pack(records)

        #expect(Set(result.oversized.map(\.id)) == Set(records.filter { $0.singleRecordBodyBytes > limit }.map(\.id)))
        let packed = result.requests.flatMap(\.recordIDs)
        #expect(packed.count == Set(packed).count, "a record in two requests")
        #expect(Set(packed).union(result.oversized.map(\.id)) == Set(records.map(\.id)))

        var lastID: [String: Int64] = [:]
        for request in result.requests {
            #expect(request.body.count <= limit, "seed \(seed): \(request.body.count) > \(limit)")
            #expect(request.children.count <= maxChildren)
            let json = try #require(Fixture.json(request.body), "seed \(seed): invalid JSON \(request)")
            switch request.kind {
            case .property: #expect(((json as? [String: Any])?["services"] as? [Any])?.count == request.recordCount)
            case .measurement: #expect(((json as? [String: Any])?["measurements"] as? [Any])?.count == request.recordCount)
            case .childProperty:
                let devices = try #require((json as? [String: Any])?["devices"] as? [[String: Any]])
                #expect(devices.map { $0["device_id"] as? String } == request.children)
                #expect(devices.reduce(0) { $0 + (($1["services"] as? [Any])?.count ?? 0) } == request.recordCount)
            case .message, .operationStatus: #expect(request.recordCount == 1)
            }
            // FIFO per device (and per child) within the kind.
            for record in request.records {
                let key = "\(record.kind)/\(record.kind == .measurement ? "" : record.target)/\(record.child ?? "")"
                #expect(record.id > lastID[key, default: 0], "seed \(seed): \(key) out of order")
                lastID[key] = record.id
            }
            // Splitting never makes a request larger.
            if let (a, b) = packer.split(request) {
                #expect(a.body.count <= request.body.count && b.body.count <= request.body.count)
                #expect(a.recordIDs + b.recordIDs == request.recordIDs)
                #expect(Fixture.json(a.body) != nil && Fixture.json(b.body) != nil)
            }
        }
    }
}
