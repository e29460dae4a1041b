import Foundation
import TestSupport
import Testing

/// One contract, three setups: the simulator over HTTP, over HTTPS, and behind a real nginx
/// (TLS 1.2 only, `client_max_body_size 1m`). A mixed backlog sized to hit the 1 MB limit
/// exactly must arrive complete and unchanged, with no request over the limit.
extension Uplink {
    @Suite struct ContractTests {
        static let limit = 1_048_576

        /// The stored payload of a property record: `{"service_id":S,"properties":P,"event_time":"T"}`.
        static func propertyPayloadBytes(service: String, properties: JSONDict, eventTime: String) -> Int {
            #"{"service_id":""#.utf8.count + service.utf8.count + #"","properties":"#.utf8.count
                + jsonText(properties).utf8.count + #","event_time":""#.utf8.count + eventTime.utf8.count + 2
        }

        /// The stored payload of a message with an explicit id: `{"name":N,"id":I,"content":C}`.
        static func messagePayloadBytes(name: String, id: String, content: JSONDict) -> Int {
            #"{"name":""#.utf8.count + name.utf8.count + #"","id":""#.utf8.count + id.utf8.count
                + #"","content":"#.utf8.count + jsonText(content).utf8.count + 1
        }

        /// The stored payload of a measurement: `{"source":{"id":S},"type":T,"time":"X",` + fragments members + `}`.
        static func measurementPayloadBytes(source: String, type: String, time: String, fragments: JSONDict) -> Int {
            #"{"source":{"id":""#.utf8.count + source.utf8.count + #""},"type":""#.utf8.count + type.utf8.count
                + #"","time":""#.utf8.count + time.utf8.count + 2 + jsonText(fragments).utf8.count - 1
        }

        static func pad(_ n: Int) -> String { String(repeating: "x", count: n) }

        /// Awkward values that must survive the trip unchanged.
        static var awkward: JSONDict { [
            "text": "Grüße \"quoted\" \\ back/slash\n\ttab 😀 \u{1}",
            "int": -9_007_199_254_740_993 as Int64,
            "zero": 0, "flag": true, "nothing": NSNull(),
            "list": [1, "two", ["three": 3.5], [] as [Any]],
            "nested": ["a": ["b": ["c": "deep"]]],
        ] }

        /// IoTDA: properties (three of them fill a request to exactly 1,048,576 bytes),
        /// messages (one exactly 1,048,576 bytes), child properties of 60 children (more
        /// than the 50 a request may carry), in interleaved order.
        static func iotdaBacklog() -> (lines: [String], bigPropertyBody: Int) {
            var lines: [String] = []
            var seq = 0
            func next() -> Int { seq += 1; return seq }
            let time = "2026-01-02T03:04:05.006Z"

            // Properties of gw-1, service Big: 300 KB + 400 KB + exactly the rest of 1 MB.
            var sizes: [Int] = []
            for padding in [300_000, 400_000] {
                let props: JSONDict = ["seq": next(), "pad": pad(padding)]
                sizes.append(propertyPayloadBytes(service: "Big", properties: props, eventTime: time))
                lines.append(Line.property(seq: props.int("seq")!, service: "Big", eventTime: time, extra: ["pad": pad(padding)]))
            }
            let third = next()
            let overhead = #"{"services":["#.utf8.count + 2 + #"]}"#.utf8.count  // prefix, two commas, suffix
            let emptyThird = propertyPayloadBytes(service: "Big", properties: ["seq": third, "pad": ""], eventTime: time)
            let thirdPadding = limit - overhead - sizes.reduce(0, +) - emptyThird
            lines.append(Line.property(seq: third, service: "Big", eventTime: time, extra: ["pad": pad(thirdPadding)]))
            // One more that no longer fits: a second request.
            lines.append(Line.property(seq: next(), service: "Big", eventTime: time, extra: ["pad": pad(250_000)]))

            // Small properties with awkward values and times (an offset that must become Z, none at all).
            var small: [String] = []
            for i in 0..<30 {
                let eventTime: String? = switch i % 3 {
                case 0: String(format: "2026-01-02T04:%02d:05.%03d+01:00", i, i)
                case 1: String(format: "2025-12-31T23:59:%02d.999Z", i)
                default: nil
                }
                small.append(Line.property(seq: next(), service: i % 2 == 0 ? "Battery" : "Temp", eventTime: eventTime, extra: awkward))
            }
            // Messages: small ones, a 500 KB one, and one of exactly 1,048,576 bytes.
            var messages: [String] = []
            for i in 0..<4 { messages.append(Line.message(seq: next(), name: "note", extra: ["i": i, "v": awkward])) }
            messages.append(Line.message(seq: next(), name: "blob", extra: ["pad": pad(500_000)]))
            let exactSeq = next()
            let emptyExact = messagePayloadBytes(name: "exact", id: "m-exact", content: ["seq": exactSeq, "pad": ""])
            messages.append(Line.message(seq: exactSeq, name: "exact", id: "m-exact", extra: ["pad": pad(limit - emptyExact)]))
            // Child properties: 60 children, two records each (~9 KB), plus three of 350 KB.
            var children: [String] = []
            for round in 0..<2 {
                for c in 0..<60 {
                    children.append(Line.child(seq: next(), child: String(format: "child-%02d", c),
                                               eventTime: String(format: "2026-01-03T00:%02d:%02d.%03dZ", c, round, c),
                                               extra: ["pad": pad(9_000 + c), "round": round]))
                }
            }
            for c in 5..<8 { children.append(Line.child(seq: next(), child: String(format: "child-%02d", c), extra: ["pad": pad(350_000)])) }

            // Interleave the kinds (a fixed pattern, so a failure reproduces).
            var rest = [small, messages, children]
            var index = 0
            while rest.contains(where: { !$0.isEmpty }) {
                if !rest[index % 3].isEmpty { lines.append(rest[index % 3].removeFirst()) }
                index += 1
            }
            return (lines, limit)
        }

        @Test(arguments: Front.allCases)
        func iotdaBacklogArrivesCompleteAndUnchanged(front: Front) throws {
            let setup = try Setup(front)
            let ws = try Workspace(setup.uplink())
            let backlog = Self.iotdaBacklog()
            try ws.enqueue(backlog.lines)
            let stored = try ws.outbox()
            #expect(stored.count == backlog.lines.count)
            let bySeq = storedBySeq(stored)
            #expect(bySeq.count == stored.count, "every record carries a unique seq")
            // The packing premise: the three first properties fill exactly 1,048,576 bytes.
            let bigThree = stored.filter { $0.string("kind") == "property" && ($0.object("payload")?.string("service_id") == "Big") }
                .sorted { ($0.int("id") ?? 0) < ($1.int("id") ?? 0) }.prefix(3)
            let bigThreeBody = bigThree.reduce(#"{"services":["#.utf8.count + 2 + 2) { $0 + ($1.int("bytes") ?? 0) }
            #expect(bigThreeBody == backlog.bigPropertyBody, "\(bigThree.map { ($0.int("id") ?? 0, $0.int("bytes") ?? 0) })")
            // An offset became UTC.
            #expect(bySeq[5]?.string("event_time") == "2026-01-02T03:00:05.000Z")

            let (flush, _) = try ws.flush(timeout: 90)
            #expect(flush.status == 0, "flush: \(flush.stderr)")
            let answer = try parseObject(flush.stdout)
            #expect(answer.bool("emptied") == true)
            #expect(answer.int("remaining_records") == 0)

            // Every record arrived once, exactly as stored.
            let accepted = try setup.simulator.accepted()
            let counts = acceptedCounts(accepted)
            #expect(Set(counts.keys) == Set(bySeq.keys), "missing: \(Set(bySeq.keys).subtracting(counts.keys).sorted().prefix(20))")
            #expect(counts.values.allSatisfy { $0 == 1 }, "duplicates: \(counts.filter { $0.value > 1 }.keys.sorted())")
            for record in accepted {
                guard let seq = seqOf(record), let original = bySeq[seq] else {
                    Issue.record("accepted a record nobody sent: \(jsonText(record).prefix(200))")
                    continue
                }
                expectSame(accepted: record, stored: original)
            }

            // No request over the limit, none refused; the limit itself was reached exactly.
            let data = try setup.simulator.dataRequests()
            #expect(data.allSatisfy { $0.int("status") == 200 }, "statuses: \(data.map { $0.int("status") ?? -1 })")
            #expect(!data.contains { $0.int("status") == 413 || $0.int("status") == 403 })
            #expect(data.allSatisfy { ($0.int("body_bytes") ?? .max) <= Self.limit })
            #expect(data.filter { $0.int("body_bytes") == Self.limit }.count == 2, "the exact-limit property and message requests: \(data.map { ($0.string("path") ?? "", $0.int("body_bytes") ?? 0) })")
            #expect(data.allSatisfy { $0.bool("had_access_token") == true })
            let gatewayRequests = data.filter { ($0.string("path") ?? "").hasSuffix("/sub-devices/properties/report") }
            #expect(gatewayRequests.count >= 2, "60 children need at least two requests")
            if let nginx = setup.nginx {
                let lines = nginx.accessLines()
                #expect(!lines.isEmpty)
                #expect(!lines.contains { $0.hasPrefix("413 ") }, "nginx refused a body: \(lines.filter { $0.hasPrefix("413") })")
                #expect(lines.allSatisfy { $0.hasPrefix("200 ") }, "\(lines.filter { !$0.hasPrefix("200 ") })")
                #expect(lines.count == (try setup.simulator.requests()).count, "every request went through nginx")
            }

            // Outbox empty, nothing dead-lettered, audit intact with one request row per request.
            #expect(try ws.outbox().isEmpty)
            #expect(try ws.deadLetters().isEmpty)
            #expect(try ws.auditIntact())
            let rows = try ws.auditRequests()
            #expect(rows.count == data.count, "one audit request row per HTTP request")
            #expect(rows.allSatisfy { $0.string("outcome") == "delivered" && $0.int("http_status") == 200 && $0.int("attempt") == 1 })
            #expect(rows.map { $0.int("body_bytes") ?? -1 }.sorted() == data.map { $0.int("body_bytes") ?? -2 }.sorted())
            #expect(rows.reduce(0) { $0 + ($1.int("records") ?? 0) } == backlog.lines.count)
        }

        /// Cumulocity: measurements with Basic auth; three fill one request to exactly 1 MB.
        @Test(arguments: Front.allCases)
        func cumulocityMeasurementsArriveCompleteAndUnchanged(front: Front) throws {
            let setup = try Setup(front)
            let ws = try Workspace(setup.uplink(platform: "cumulocity"))
            let time = "2026-02-03T04:05:06.789Z"
            var lines: [String] = []
            var sizes: [Int] = []
            for (seq, padding) in [(1, 300_000), (2, 400_000)] {
                let fragments: JSONDict = ["c8y_Pad": ["p": Self.pad(padding)], "c8y_Seq": ["n": ["value": seq]]]
                sizes.append(Self.measurementPayloadBytes(source: "4711", type: "c8y_Big", time: time, fragments: fragments))
                lines.append(Line.measurement(seq: seq, type: "c8y_Big", time: time, extra: ["c8y_Pad": ["p": Self.pad(padding)]]))
            }
            let empty = Self.measurementPayloadBytes(source: "4711", type: "c8y_Big", time: time,
                                                     fragments: ["c8y_Pad": ["p": ""], "c8y_Seq": ["n": ["value": 3]]])
            let overhead = #"{"measurements":["#.utf8.count + 2 + 2
            lines.append(Line.measurement(seq: 3, type: "c8y_Big", time: time, extra: ["c8y_Pad": ["p": Self.pad(Self.limit - overhead - sizes.reduce(0, +) - empty)]]))
            lines.append(Line.measurement(seq: 4, type: "c8y_Big", time: time, extra: ["c8y_Pad": ["p": Self.pad(200_000)]]))
            for seq in 5..<400 {
                let time: String? = seq % 4 == 0 ? nil : String(format: "2026-02-03T06:%02d:%02d.%03d+02:00", seq % 60, seq % 59, seq)
                lines.append(Line.measurement(seq: seq, source: "src-\(seq % 7)", type: "c8y_Type\(seq % 3)", time: time,
                                              extra: ["c8y_Temperature": ["T": ["value": Double(seq) + 0.25, "unit": "C"]], "note": ["v": Self.awkward]]))
            }
            try ws.enqueue(lines)
            let stored = try ws.outbox()
            #expect(stored.count == lines.count)
            let bySeq = storedBySeq(stored)
            #expect(bySeq.count == lines.count)
            let firstThree = (1...3).reduce(#"{"measurements":["#.utf8.count + 2 + 2) { $0 + (bySeq[$1]?.int("bytes") ?? 0) }
            #expect(firstThree == Self.limit, "the premise: three measurements fill 1 MB exactly")

            let (flush, _) = try ws.flush(timeout: 90)
            #expect(flush.status == 0, "flush: \(flush.stderr)")

            let accepted = try setup.simulator.accepted()
            let counts = acceptedCounts(accepted)
            #expect(Set(counts.keys) == Set(bySeq.keys))
            #expect(counts.values.allSatisfy { $0 == 1 })
            for record in accepted {
                guard let seq = seqOf(record), let original = bySeq[seq] else {
                    Issue.record("accepted a record nobody sent")
                    continue
                }
                expectSame(accepted: record, stored: original)
            }
            let data = try setup.simulator.dataRequests()
            #expect(!data.isEmpty)
            #expect(data.allSatisfy { [200, 201].contains($0.int("status") ?? 0) }, "statuses: \(data.map { $0.int("status") ?? -1 })")
            #expect(data.allSatisfy { $0.bool("had_authorization") == true })
            #expect(data.allSatisfy { $0.string("content_type") == "application/vnd.com.nsn.cumulocity.measurementcollection+json" })
            #expect(data.contains { $0.int("body_bytes") == Self.limit })
            #expect(data.allSatisfy { ($0.int("body_bytes") ?? .max) <= Self.limit })
            if let nginx = setup.nginx {
                let logLines = nginx.accessLines()
                #expect(!logLines.isEmpty && !logLines.contains { $0.hasPrefix("413 ") })
                #expect(logLines.count == data.count)
            }
            #expect(try ws.outbox().isEmpty)
            #expect(try ws.auditIntact())
            let rows = try ws.auditRequests()
            #expect(rows.count == data.count)
            #expect(rows.allSatisfy { $0.string("outcome") == "delivered" })
            #expect(rows.reduce(0) { $0 + ($1.int("records") ?? 0) } == lines.count)
        }
    }
}
