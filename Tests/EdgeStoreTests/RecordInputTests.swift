@testable import EdgeStore
import Foundation
import Testing

@Suite struct RecordInputTests {
    let now: Int64 = 1_795_317_010_555
    let limit = 1_048_576

    func line(_ text: String) throws(ValidationError) -> NewRecord {
        try RecordInput.fromJSONLine(Array(text.utf8)).validated(now: now, maxBodyBytes: limit)
    }

    func refusal(_ text: String) -> ValidationError? {
        do {
            _ = try line(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func propertyPayloadIsTheServiceEntryWithUTCEventTime() throws {
        let record = try line(#"{"kind":"property","device_id":"d-1","service_id":"Battery","properties":{ "level": 87 },"event_time":"2026-11-22T04:10:10.555+01:00","class":"critical"}"#)
        #expect(record.kind == .property)
        #expect(record.recordClass == .critical)
        #expect(record.target == "d-1")
        #expect(record.eventTime == now)
        #expect(String(decoding: record.payload, as: UTF8.self) == #"{"service_id":"Battery","properties":{"level":87},"event_time":"2026-11-22T03:10:10.555Z"}"#)
    }

    @Test func eventTimeDefaultsToNow() throws {
        let record = try line(#"{"kind":"property","device_id":"d","service_id":"S","properties":{}}"#)
        #expect(record.eventTime == now)
        #expect(String(decoding: record.payload, as: UTF8.self).contains(#""event_time":"2026-11-22T03:10:10.555Z""#))
        #expect(record.recordClass == .normal)
    }

    @Test func messageGetsAStableDerivedID() throws {
        let text = #"{"kind":"message","device_id":"d","name":"alarm","content":{"door":"open"}}"#
        let a = try line(text), b = try line(text)
        #expect(a.payload == b.payload)
        let object = try JSONSerialization.jsonObject(with: Data(a.payload)) as? [String: Any]
        #expect((object?["id"] as? String)?.count == 32)
        #expect(object?["name"] as? String == "alarm")
        let other = try RecordInput.fromJSONLine(Array(text.utf8)).validated(now: now + 1, maxBodyBytes: limit)
        #expect(other.payload != a.payload, "a message enqueued at another time gets another id")
        let explicit = try line(#"{"kind":"message","device_id":"d","name":"n","content":"x","id":"my-id"}"#)
        #expect(String(decoding: explicit.payload, as: UTF8.self) == #"{"name":"n","id":"my-id","content":"x"}"#)
    }

    @Test func childPropertyKeepsGatewayAndChild() throws {
        let record = try line(#"{"kind":"child_property","gateway_id":"gw","device_id":"c1","service_id":"T","properties":{"t":21.5}}"#)
        #expect(record.target == "gw")
        #expect(record.child == "c1")
    }

    @Test func measurementSplicesFragments() throws {
        let record = try line(#"{"kind":"measurement","source":"4711","type":"c8y_T","time":"2026-11-22T03:10:10.555Z","fragments":{"c8y_T":{"T":{"value":21.5,"unit":"C"}}}}"#)
        #expect(String(decoding: record.payload, as: UTF8.self) == #"{"source":{"id":"4711"},"type":"c8y_T","time":"2026-11-22T03:10:10.555Z","c8y_T":{"T":{"value":21.5,"unit":"C"}}}"#)
    }

    @Test(arguments: [
        (#"not json"#, "line"),
        (#"{"device_id":"d"}"#, "kind"),
        (#"{"kind":"telemetry"}"#, "kind"),
        (#"{"kind":"property","service_id":"S","properties":{}}"#, "device_id"),
        (#"{"kind":"property","device_id":"d d","service_id":"S","properties":{}}"#, "device_id"),
        (#"{"kind":"property","device_id":"d","properties":{}}"#, "service_id"),
        (#"{"kind":"property","device_id":"d","service_id":"S"}"#, "properties"),
        (#"{"kind":"property","device_id":"d","service_id":"S","properties":[1]}"#, "properties"),
        (#"{"kind":"property","device_id":"d","service_id":"S","properties":{},"event_time":"2026-11-22"}"#, "event_time"),
        (#"{"kind":"property","device_id":"d","service_id":"S","properties":{},"event_time":1795317010}"#, "event_time"),
        (#"{"kind":"property","device_id":"d","service_id":"S","properties":{},"class":"urgent"}"#, "class"),
        (#"{"kind":"property","device_id":"d","service_id":"S","properties":{},"colour":"red"}"#, "colour"),
        (#"{"kind":"property","device_id":"d","service_id":"S","properties":{},"name":"n"}"#, "name"),
        (#"{"kind":"measurement","source":"1","type":"t","device_id":"d","fragments":{"c8y_T":{}}}"#, "device_id"),
        (#"{"kind":"message","device_id":"d","name":"n"}"#, "content"),
        (#"{"kind":"message","device_id":"d","content":1}"#, "name"),
        (#"{"kind":"measurement","source":"1","type":"t","fragments":{}}"#, "fragments"),
        (#"{"kind":"measurement","source":"1","type":"t","fragments":{"time":{}}}"#, "fragments"),
        (#"{"kind":"measurement","source":"1","type":"t","fragments":{"c8y_T":5}}"#, "fragments"),
        (#"{"kind":"child_property","device_id":"c","service_id":"S","properties":{}}"#, "gateway_id"),
    ])
    func refusesWithTheFieldNamed(_ text: String, _ field: String) {
        let error = refusal(text)
        #expect(error?.field == field)
        #expect(error.map { !$0.reason.isEmpty && !$0.hint.isEmpty } == true)
    }

    @Test func deviceIDIsLimitedTo128Characters() {
        let long = String(repeating: "a", count: 129)
        #expect(refusal(#"{"kind":"property","device_id":"\#(long)","service_id":"S","properties":{}}"#)?.field == "device_id")
        #expect(refusal(#"{"kind":"property","device_id":"\#(long.dropLast())","service_id":"S","properties":{}}"#) == nil)
    }

    @Test func aRecordThatCouldNeverFitInARequestIsRefused() throws {
        // {"services":[ + payload + ]} must be <= the limit.
        let overhead = #"{"services":[{"service_id":"S","properties":{"p":""},"event_time":"2026-11-22T03:10:10.555Z"}]}"#.utf8.count
        let fits = String(repeating: "x", count: limit - overhead)
        let record = try line(#"{"kind":"property","device_id":"d","service_id":"S","properties":{"p":"\#(fits)"}}"#)
        #expect(record.kind.singleRecordBodyBytes(payloadBytes: record.payload.count, child: nil) == limit)
        let error = refusal(#"{"kind":"property","device_id":"d","service_id":"S","properties":{"p":"\#(fits)x"}}"#)
        #expect(error?.field == "record")
        #expect(error?.reason.contains("1048577") == true)
    }

    @Test func controlCharactersInIdentifiersAreRefused() {
        #expect(refusal(#"{"kind":"property","device_id":"d","service_id":"a\u0001b","properties":{}}"#)?.field == "service_id")
        #expect(refusal(#"{"kind":"message","device_id":"d","name":"a\nb","content":1}"#)?.field == "name")
    }
}
