import EdgeStore

/// IoTDA's device API bodies (../shared/reference/iotda-https.md) turned into outbox records.
/// Pure: the same input always gives the same records or the same error.
public enum IoTDABodies {
    /// The platform's limit of child devices per gateway report over HTTPS.
    public static let maximumChildDevices = 50

    static let servicesExample = #"{"services": [{"service_id": "Battery", "properties": {"level": 87}, "event_time": "2026-11-22T03:10:10.555Z"}]}"#
    static let devicesExample = #"{"devices": [{"device_id": "child-1", "services": [{"service_id": "Temp", "properties": {"t": 21.5}}]}]}"#

    /// `POST /v5/devices/{device_id}/sys/properties/report`: one property record per service.
    public static func properties(deviceID: String, body: [UInt8], recordClass: String?, now: Int64,
                                  maxBodyBytes: Int) throws(IngestError) -> [NewRecord] {
        let members = try BodyReader.object(body, field: "body", example: servicesExample)
        try BodyReader.only(members, ["services"], at: "")
        return try services(members["services"], prefix: "services", kind: .property, deviceID: deviceID, gatewayID: nil,
                            recordClass: recordClass, now: now, maxBodyBytes: maxBodyBytes)
    }

    /// `POST /v5/devices/{gateway_id}/sys/gateway/sub-devices/properties/report`: one
    /// child_property record per child and service; at most 50 children, as the platform.
    public static func gatewayProperties(gatewayID: String, body: [UInt8], recordClass: String?, now: Int64,
                                         maxBodyBytes: Int) throws(IngestError) -> [NewRecord] {
        let members = try BodyReader.object(body, field: "body", example: devicesExample)
        try BodyReader.only(members, ["devices"], at: "")
        let devices = try BodyReader.array(members["devices"], field: "devices", example: devicesExample, max: maximumChildDevices)
        var records: [NewRecord] = []
        for (index, device) in devices.enumerated() {
            let prefix = "devices[\(index)]"
            let fields = try BodyReader.object(device.raw, field: prefix, example: devicesExample)
            try BodyReader.only(fields, ["device_id", "services"], at: prefix)
            guard let child = try BodyReader.string(fields["device_id"], field: "\(prefix).device_id") else {
                throw IngestError(field: "\(prefix).device_id", reason: "is missing", hint: "Give the child device's id.")
            }
            records += try services(fields["services"], prefix: "\(prefix).services", kind: .childProperty, deviceID: child,
                                    gatewayID: gatewayID, recordClass: recordClass, now: now, maxBodyBytes: maxBodyBytes)
        }
        return records
    }

    static func services(_ member: JSON.Member?, prefix: String, kind: RecordKind, deviceID: String, gatewayID: String?,
                         recordClass: String?, now: Int64, maxBodyBytes: Int) throws(IngestError) -> [NewRecord] {
        let list = try BodyReader.array(member, field: prefix, example: servicesExample)
        var records: [NewRecord] = []
        records.reserveCapacity(list.count)
        for (index, service) in list.enumerated() {
            let at = "\(prefix)[\(index)]"
            let fields = try BodyReader.object(service.raw, field: at, example: servicesExample)
            try BodyReader.only(fields, ["service_id", "properties", "event_time"], at: at)
            var input = RecordInput(kind: kind)
            input.recordClass = recordClass
            input.deviceID = deviceID
            input.gatewayID = gatewayID
            input.serviceID = try BodyReader.string(fields["service_id"], field: "\(at).service_id")
            input.properties = fields["properties"]?.raw
            input.eventTime = try BodyReader.string(fields["event_time"], field: "\(at).event_time").map(normalizedEventTime)
            records.append(try validated(input, at: at, now: now, maxBodyBytes: maxBodyBytes))
        }
        return records
    }

    /// `POST /v5/devices/{device_id}/sys/messages/up`: `{"name", "id", "content"}` as IoTDA
    /// documents it; `content` is required, `name` defaults to "message", `id` to a stable one
    /// derived from the record.
    public static func message(deviceID: String, body: [UInt8], recordClass: String?, now: Int64,
                               maxBodyBytes: Int) throws(IngestError) -> [NewRecord] {
        let example = #"{"name": "alarm", "id": "a-1", "content": {"text": "door open"}}"#
        let members = try BodyReader.object(body, field: "body", example: example)
        try BodyReader.only(members, ["name", "id", "content"], at: "")
        var input = RecordInput(kind: .message)
        input.recordClass = recordClass
        input.deviceID = deviceID
        input.name = try BodyReader.string(members["name"], field: "name") ?? "message"
        input.messageID = try BodyReader.string(members["id"], field: "id")
        input.content = members["content"]?.raw
        return [try validated(input, at: "", now: now, maxBodyBytes: maxBodyBytes)]
    }

    /// The fields of `POST /v5/device-auth`.
    public struct AuthRequest: Sendable, Equatable {
        public let deviceID: String
        public let signType: Int
        public let timestamp: String
        /// Lowercase hex of HMAC-SHA256(key: timestamp, message: secret).
        public let password: String
    }

    public static func auth(body: [UInt8]) throws(IngestError) -> AuthRequest {
        let example = #"{"device_id": "d-001", "sign_type": 0, "timestamp": "2026112203", "password": "<64 hex>"}"#
        let members = try BodyReader.object(body, field: "body", example: example)
        try BodyReader.only(members, ["device_id", "sign_type", "timestamp", "password"], at: "")
        func required(_ key: String) throws(IngestError) -> String {
            guard let value = try BodyReader.string(members[key], field: key), !value.isEmpty else {
                throw IngestError(field: key, reason: "is missing", hint: "Send e.g. \(example).")
            }
            return value
        }
        let device = try required("device_id")
        do { _ = try RecordInput.checkedIdentifier(device) } catch { throw IngestError(error, at: "") }
        let timestamp = try required("timestamp")
        guard timestamp.utf8.count == 10, timestamp.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw IngestError(field: "timestamp", reason: "must be the UTC hour as YYYYMMDDHH", hint: "Send e.g. \"2026112203\".")
        }
        let password = try required("password")
        guard password.utf8.count == 64, password.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw IngestError(field: "password", reason: "must be 64 lowercase hex digits (HMAC-SHA256)", hint: "Sign the device secret with the timestamp as the key.")
        }
        var signType = 0
        if let member = members["sign_type"] {
            guard member.type == .number, let n = Int(String(decoding: member.raw, as: UTF8.self)), n == 0 || n == 1 else {
                throw IngestError(field: "sign_type", reason: "must be 0 or 1", hint: "0: the timestamp is not checked; 1: it is.")
            }
            signType = n
        }
        return AuthRequest(deviceID: device, signType: signType, timestamp: timestamp, password: password)
    }

    /// IoTDA's MQTT docs write event_time as `yyyyMMdd'T'HHmmss'Z'`; the outbox takes RFC 3339,
    /// so that form is rewritten (unverified which one the HTTPS API itself takes: accept both).
    static func normalizedEventTime(_ value: String) -> String {
        let b = Array(value.utf8)
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z"),
              b[0..<8].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), b[9..<15].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return value }
        let s = value
        func part(_ from: Int, _ length: Int) -> Substring {
            let start = s.utf8.index(s.utf8.startIndex, offsetBy: from)
            return Substring(s.utf8[start..<s.utf8.index(start, offsetBy: length)])
        }
        return "\(part(0, 4))-\(part(4, 2))-\(part(6, 2))T\(part(9, 2)):\(part(11, 2)):\(part(13, 2))Z"
    }

    static func validated(_ input: RecordInput, at prefix: String, now: Int64, maxBodyBytes: Int) throws(IngestError) -> NewRecord {
        do { return try input.validated(now: now, maxBodyBytes: maxBodyBytes) } catch {
            // The device (or gateway) id comes from the path, not the body.
            if error.field == "gateway_id" || (input.kind != .childProperty && error.field == "device_id") {
                throw IngestError(field: "path: \(input.kind == .childProperty ? "gateway_id" : "device_id")", reason: error.reason, hint: error.hint)
            }
            throw IngestError(error, at: prefix)
        }
    }
}
