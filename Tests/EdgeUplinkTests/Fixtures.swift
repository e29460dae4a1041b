import EdgeStore
import EdgeUplink
import Foundation
import TestSupport


/// Records built through the real validation path, so payloads have their stored shape.
enum Fixture {
    static let now: Int64 = 1_795_317_010_555  // 2026-11-22T03:10:10.555Z

    static func stored(_ id: Int64, _ input: RecordInput) -> StoredRecord {
        let record = try! input.validated(now: now, maxBodyBytes: .max)
        return StoredRecord(id: id, kind: record.kind, recordClass: record.recordClass, target: record.target,
                            child: record.child, eventTime: record.eventTime, enqueuedAt: now, payload: record.payload)
    }

    static func filler(_ count: Int) -> [UInt8] {
        Array(#"{"v":""#.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: count) + Array(#""}"#.utf8)
    }

    static func property(_ id: Int64, device: String = "d1", service: String = "Battery", filler: Int = 0) -> StoredRecord {
        var input = RecordInput(kind: .property)
        input.deviceID = device
        input.serviceID = service
        input.properties = self.filler(filler)
        return stored(id, input)
    }

    static func message(_ id: Int64, device: String = "d1", filler: Int = 0) -> StoredRecord {
        var input = RecordInput(kind: .message)
        input.deviceID = device
        input.name = "alarm"
        input.content = self.filler(filler)
        input.messageID = "m\(id)"
        return stored(id, input)
    }

    static func child(_ id: Int64, gateway: String = "gw", child: String, filler: Int = 0) -> StoredRecord {
        var input = RecordInput(kind: .childProperty)
        input.gatewayID = gateway
        input.deviceID = child
        input.serviceID = "Temp"
        input.properties = self.filler(filler)
        return stored(id, input)
    }

    static func measurement(_ id: Int64, source: String = "1001", filler: Int = 0) -> StoredRecord {
        var input = RecordInput(kind: .measurement)
        input.source = source
        input.type = "c8y_Temperature"
        input.fragments = Array(#"{"c8y_Temperature":{"T":{"value":21.5,"unit":"C"},"pad":""#.utf8)
            + [UInt8](repeating: UInt8(ascii: "y"), count: filler) + Array(#""}}"#.utf8)
        return stored(id, input)
    }

    /// The body parsed by Foundation (tests only): nil if it is not valid JSON.
    static func json(_ body: [UInt8]) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(body))
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func iotdaError(_ status: Int, _ code: String, _ message: String = "error", extra: String = "") -> ExchangeResult {
        .response(PlatformResponse(status: status, body: Array(#"{"error_code":"\#(code)","error_msg":"\#(message)"\#(extra)}"#.utf8)))
    }

    static let ok = ExchangeResult.response(PlatformResponse(status: 200))
}
