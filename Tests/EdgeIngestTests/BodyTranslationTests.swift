import EdgeBuffer
@testable import EdgeIngest
import EdgeStore
import Testing

/// The platforms' request bodies turned into outbox records, without sockets.
@Suite struct BodyTranslationTests {
    let now: Int64 = 1_795_317_010_555  // 2026-11-22T03:10:10.555Z
    let limit = 1_048_576

    func text(_ record: NewRecord) -> String { String(decoding: record.payload, as: UTF8.self) }

    func refusal(_ body: () throws(IngestError) -> Any) -> IngestError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func iotdaPropertiesBecomeOnePropertyRecordPerService() throws {
        let body = #"{"services": [{"service_id": "Battery", "properties": {"level": 87, "voltage": 3.71}, "event_time": "2026-11-22T03:10:10.555Z"}, {"service_id": "Temp", "properties": {"t": 21.5}}]}"#
        let records = try IoTDABodies.properties(deviceID: "d-001", body: Array(body.utf8), recordClass: nil, now: now + 5000, maxBodyBytes: limit)
        #expect(records.count == 2)
        #expect(records.allSatisfy { $0.kind == .property && $0.target == "d-001" && $0.recordClass == .normal })
        #expect(text(records[0]) == #"{"service_id":"Battery","properties":{"level":87,"voltage":3.71},"event_time":"2026-11-22T03:10:10.555Z"}"#)
        #expect(records[0].eventTime == now)
        #expect(records[1].eventTime == now + 5000)  // no event_time: the time it arrived
    }

    @Test func iotdaCompactEventTimeIsAccepted() throws {
        let body = #"{"services": [{"service_id": "B", "properties": {"a": 1}, "event_time": "20261122T031010Z"}]}"#
        let records = try IoTDABodies.properties(deviceID: "d", body: Array(body.utf8), recordClass: "critical", now: now, maxBodyBytes: limit)
        #expect(records[0].eventTime == now - 555)
        #expect(records[0].recordClass == .critical)
    }

    @Test func iotdaRefusalsNameTheField() {
        func properties(_ body: String, device: String = "d-1") -> IngestError? {
            refusal { () throws(IngestError) in try IoTDABodies.properties(deviceID: device, body: Array(body.utf8), recordClass: nil, now: now, maxBodyBytes: limit) }
        }
        #expect(properties("not json")?.field == "body")
        #expect(properties(#"{}"#)?.field == "services")
        #expect(properties(#"{"services": []}"#)?.reason == "is empty")
        #expect(properties(#"{"services": {}}"#)?.field == "services")
        #expect(properties(#"{"services": [{"service_id": "B", "properties": {"a": 1}}], "extra": 1}"#)?.field == "extra")
        #expect(properties(#"{"services": [{"service_id": "B"}]}"#)?.field == "services[0].properties")
        #expect(properties(#"{"services": [{"service_id": "B", "properties": {"a": 1}}, {"service_id": "B", "properties": [1]}]}"#)?.field == "services[1].properties")
        #expect(properties(#"{"services": [{"service_id": "B", "properties": {"a": 1}, "event_time": "yesterday"}]}"#)?.field == "services[0].event_time")
        #expect(properties(#"{"services": [{"service_id": 7, "properties": {"a": 1}}]}"#)?.field == "services[0].service_id")
        #expect(properties(#"{"services": [{"service_id": "B", "properties": {"a": 1}}]}"#, device: "bad id!")?.field == "path: device_id")
        #expect(properties(#"{"services": [{"service_id": "B", "properties": {"a": 1}}]}"#)?.field == nil)
    }

    @Test func iotdaGatewayReportBecomesChildPropertiesAndKeepsTheLimitOf50() throws {
        let body = #"{"devices": [{"device_id": "child-1", "services": [{"service_id": "Temp", "properties": {"t": 21.5}}]}, {"device_id": "child-2", "services": [{"service_id": "Temp", "properties": {"t": 1}}, {"service_id": "H", "properties": {"h": 2}}]}]}"#
        let records = try IoTDABodies.gatewayProperties(gatewayID: "gw", body: Array(body.utf8), recordClass: nil, now: now, maxBodyBytes: limit)
        #expect(records.map(\.child) == ["child-1", "child-2", "child-2"])
        #expect(records.allSatisfy { $0.kind == .childProperty && $0.target == "gw" })

        let one = #"{"device_id": "c", "services": [{"service_id": "T", "properties": {"t": 1}}]}"#
        let fifty = #"{"devices": ["# + Array(repeating: one, count: 50).joined(separator: ",") + "]}"
        #expect(try IoTDABodies.gatewayProperties(gatewayID: "gw", body: Array(fifty.utf8), recordClass: nil, now: now, maxBodyBytes: limit).count == 50)
        let fiftyOne = #"{"devices": ["# + Array(repeating: one, count: 51).joined(separator: ",") + "]}"
        let error = refusal { () throws(IngestError) in try IoTDABodies.gatewayProperties(gatewayID: "gw", body: Array(fiftyOne.utf8), recordClass: nil, now: now, maxBodyBytes: limit) }
        #expect(error?.field == "devices")
        #expect(error?.reason.contains("50") == true)
        let noChild = #"{"devices": [{"services": [{"service_id": "T", "properties": {"t": 1}}]}]}"#
        #expect(refusal { () throws(IngestError) in try IoTDABodies.gatewayProperties(gatewayID: "gw", body: Array(noChild.utf8), recordClass: nil, now: now, maxBodyBytes: limit) }?.field == "devices[0].device_id")
    }

    @Test func iotdaMessageKeepsNameIdAndContent() throws {
        let records = try IoTDABodies.message(deviceID: "d", body: Array(#"{"name": "alarm", "id": "a-1", "content": {"door": "open"}}"#.utf8), recordClass: nil, now: now, maxBodyBytes: limit)
        #expect(text(records[0]) == #"{"name":"alarm","id":"a-1","content":{"door":"open"}}"#)
        let unnamed = try IoTDABodies.message(deviceID: "d", body: Array(#"{"content": "x"}"#.utf8), recordClass: nil, now: now, maxBodyBytes: limit)
        #expect(text(unnamed[0]).hasPrefix(#"{"name":"message","id":""#))
        #expect(refusal { () throws(IngestError) in try IoTDABodies.message(deviceID: "d", body: Array(#"{"name": "n"}"#.utf8), recordClass: nil, now: now, maxBodyBytes: limit) }?.field == "content")
    }

    @Test func deviceAuthBodyIsChecked() throws {
        let good = #"{"device_id": "d-001", "sign_type": 0, "timestamp": "2026112203", "password": "\#(String(repeating: "ab", count: 32))"}"#
        let request = try IoTDABodies.auth(body: Array(good.utf8))
        #expect(request.deviceID == "d-001")
        #expect(request.timestamp == "2026112203")
        func auth(_ body: String) -> IngestError? { refusal { () throws(IngestError) in try IoTDABodies.auth(body: Array(body.utf8)) } }
        #expect(auth(good.replacingOccurrences(of: "2026112203", with: "2026-11-22"))?.field == "timestamp")
        #expect(auth(good.replacingOccurrences(of: "\"ab", with: "\"AB"))?.field == "password")
        #expect(auth(good.replacingOccurrences(of: "\"sign_type\": 0", with: "\"sign_type\": 2"))?.field == "sign_type")
        #expect(auth(good.replacingOccurrences(of: "d-001", with: "d 001"))?.field == "device_id")
    }

    @Test func cumulocityMeasurementAndCollection() throws {
        let one = #"{"source": {"id": "12345"}, "type": "c8y_Temperature", "time": "2026-11-22T03:10:10.555Z", "c8y_Temperature": {"T": {"value": 21.5, "unit": "C"}}}"#
        let single = try CumulocityBodies.measurements(body: Array(one.utf8), recordClass: nil, now: now, maxBodyBytes: limit)
        #expect(!single.collection)
        #expect(single.records.count == 1)
        #expect(single.records[0].target == "12345")
        #expect(text(single.records[0]) == #"{"source":{"id":"12345"},"type":"c8y_Temperature","time":"2026-11-22T03:10:10.555Z","c8y_Temperature":{"T":{"value":21.5,"unit":"C"}}}"#)
        let collection = try CumulocityBodies.measurements(body: Array(#"{"measurements": [\#(one), \#(one)]}"#.utf8), recordClass: nil, now: now, maxBodyBytes: limit)
        #expect(collection.collection)
        #expect(collection.records.count == 2)
        func measurements(_ body: String) -> IngestError? {
            refusal { () throws(IngestError) in try CumulocityBodies.measurements(body: Array(body.utf8), recordClass: nil, now: now, maxBodyBytes: limit) }
        }
        #expect(measurements(#"{"type": "t", "c8y_T": {"T": {"value": 1}}}"#)?.field == "source")
        #expect(measurements(#"{"source": {"id": "1"}, "type": "t"}"#)?.field == "fragments")
        #expect(measurements(#"{"source": {"id": "1"}, "type": "t", "c8y_T": 5}"#)?.field == "fragments")
        #expect(measurements(#"{"measurements": [\#(one), {"source": {"id": "1"}, "c8y_T": {"T": {"value": 1}}}]}"#)?.field == "measurements[1].type")
    }

    @Test func recordLinesAreAllOrNothing() {
        let good = #"{"kind":"property","device_id":"d","service_id":"S","properties":{"a":1}}"#
        switch RecordLines.read(body: Array("\(good)\n\n\(good)".utf8), now: now, maxBodyBytes: limit) {
        case .records(let records, let lines):
            #expect(records.count == 2)
            #expect(lines == [1, 3])
        case .refused: Issue.record("refused good lines")
        }
        switch RecordLines.read(body: Array("\(good)\n{\"kind\":\"nope\"}\n\(good)\n".utf8), now: now, maxBodyBytes: limit) {
        case .records: Issue.record("stored a request with a bad line")
        case .refused(let errors, let goodLines):
            #expect(errors.map(\.line) == [2])
            #expect(errors[0].error.hasPrefix("kind:"))
            #expect(goodLines == [1, 3])
        }
    }

    @Test func jsonElementsReadsArraysWithTheProjectScanner() throws {
        let elements = try JSON.elements(of: Array(#" [ {"a": 1 }, "x", [1, 2], null ] "#.utf8))
        #expect(elements.map(\.type) == [.object, .string, .array, .null])
        #expect(String(decoding: elements[0].raw, as: UTF8.self) == #"{"a":1}"#)
        #expect(try JSON.elements(of: Array("[]".utf8)).isEmpty)
        #expect(throws: JSON.SyntaxError.self) { try JSON.elements(of: Array("[1,]".utf8)) }
        #expect(throws: JSON.SyntaxError.self) { try JSON.elements(of: Array("[1] 2".utf8)) }
        #expect(throws: JSON.SyntaxError.self) { try JSON.elements(of: [0x5b, 0x22, 0xff, 0x22, 0x5d]) }  // invalid UTF-8
    }
}
