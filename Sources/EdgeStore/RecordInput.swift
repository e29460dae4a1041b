import Crypto

/// A record as an application hands it over (CLI flags, a JSON line, the Swift API), before
/// validation. JSON-valued fields hold JSON text.
public struct RecordInput: Sendable {
    public var kind: RecordKind
    public var recordClass: String?
    public var deviceID: String?
    public var gatewayID: String?
    public var serviceID: String?
    /// JSON object (property, child_property).
    public var properties: [UInt8]?
    /// RFC 3339 time of measurement; default now.
    public var eventTime: String?
    public var name: String?
    /// Any JSON value (message).
    public var content: [UInt8]?
    public var messageID: String?
    public var source: String?
    public var type: String?
    public var time: String?
    /// JSON object of Cumulocity fragments (measurement; the result of an operation_status).
    public var fragments: [UInt8]?
    /// The Cumulocity operation id (operation_status).
    public var operationID: String?
    /// EXECUTING, SUCCESSFUL or FAILED (operation_status).
    public var status: String?
    /// Why the operation failed (operation_status with FAILED), at most 1 KiB.
    public var failureReason: String?

    /// JSON fields a JSON line has already validated and minified (no second scan).
    var minified = MinifiedFields()

    struct MinifiedFields {
        var properties = false
        var content = false
    }

    public init(kind: RecordKind) { self.kind = kind }

    /// The fields each kind takes in a JSON line, besides `kind` and `class`.
    public static func fields(of kind: RecordKind) -> [String] {
        switch kind {
        case .property: return ["device_id", "service_id", "properties", "event_time"]
        case .message: return ["device_id", "name", "content", "id"]
        case .childProperty: return ["gateway_id", "device_id", "service_id", "properties", "event_time"]
        case .measurement: return ["source", "type", "time", "fragments"]
        case .operationStatus: return ["operation_id", "status", "failure_reason", "fragments"]
        }
    }

    /// Checks every field and builds the stored form. `now` is the default event time and the
    /// enqueue time; `maxBodyBytes` the platform's request limit the record must fit in alone.
    public func validated(now: Int64, maxBodyBytes: Int) throws(ValidationError) -> NewRecord {
        // An operation's status is what the platform's operator waits for: critical unless
        // the application says otherwise.
        let recordClass = try Self.recordClass(recordClass, default: kind == .operationStatus ? .critical : .normal)
        var payload: [UInt8] = []
        let target: String
        var child: String? = nil
        var when = now
        switch kind {
        case .property, .childProperty:
            if kind == .childProperty {
                target = try Self.identifier(gatewayID, field: "gateway_id", what: "gateway")
                child = try Self.identifier(deviceID, field: "device_id", what: "child device")
            } else {
                target = try Self.identifier(deviceID, field: "device_id", what: "device")
            }
            let service = try Self.text(serviceID, field: "service_id", maxLength: 64,
                                        hint: "Give the service_id of the product model, e.g. \"Battery\".")
            let props = try Self.jsonObject(properties, field: "properties", example: #"{"level": 87}"#, minified: minified.properties)
            when = try Self.time(eventTime, field: "event_time") ?? now
            payload.reserveCapacity(props.count + service.utf8.count + 64)
            payload.append(contentsOf: #"{"service_id":"#.utf8)
            JSON.appendString(service, to: &payload)
            payload.append(contentsOf: #","properties":"#.utf8)
            payload.append(contentsOf: props)
            payload.append(contentsOf: #","event_time":""#.utf8)
            Timestamp.append(milliseconds: when, to: &payload)
            payload.append(UInt8(ascii: "\""))
            payload.append(UInt8(ascii: "}"))
        case .message:
            target = try Self.identifier(deviceID, field: "device_id", what: "device")
            let name = try Self.text(self.name, field: "name", maxLength: 128, hint: "Give the message a name, e.g. \"alarm\".")
            guard let content, !content.isEmpty else {
                throw ValidationError(field: "content", reason: "is missing", hint: #"Give the message content as JSON, e.g. {"text": "door open"} or "door open"."#)
            }
            var minified = content
            if !self.minified.content {
                do { minified = try JSON.minify(content).raw } catch {
                    throw ValidationError(field: "content", reason: "is not valid JSON (\(error))", hint: #"Quote text as a JSON string, e.g. "door open"."#)
                }
            }
            let id: String
            if let messageID {
                id = try Self.text(messageID, field: "id", maxLength: 128, hint: "Leave id out to get a stable one derived from the record.")
            } else {
                id = Self.derivedMessageID(device: target, name: name, content: minified, enqueuedAt: now)
            }
            payload.append(contentsOf: #"{"name":"#.utf8)
            JSON.appendString(name, to: &payload)
            payload.append(contentsOf: #","id":"#.utf8)
            JSON.appendString(id, to: &payload)
            payload.append(contentsOf: #","content":"#.utf8)
            payload.append(contentsOf: minified)
            payload.append(UInt8(ascii: "}"))
        case .measurement:
            target = try Self.identifier(source, field: "source", what: "source managed object")
            let type = try Self.text(self.type, field: "type", maxLength: 128, hint: #"Give the measurement type, e.g. "c8y_TemperatureMeasurement"."#)
            when = try Self.time(time, field: "time") ?? now
            let fragments = try Self.fragments(self.fragments)
            payload.append(contentsOf: #"{"source":{"id":"#.utf8)
            JSON.appendString(target, to: &payload)
            payload.append(contentsOf: #"},"type":"#.utf8)
            JSON.appendString(type, to: &payload)
            payload.append(contentsOf: #","time":""#.utf8)
            Timestamp.append(milliseconds: when, to: &payload)
            payload.append(UInt8(ascii: "\""))
            payload.append(UInt8(ascii: ","))
            payload.append(contentsOf: fragments.dropFirst())  // the members and the closing brace
        case .operationStatus:
            target = try Self.identifier(operationID, field: "operation_id", what: "operation")
            let status = try Self.operationStatus(self.status)
            payload.append(contentsOf: #"{"status":"#.utf8)
            JSON.appendString(status.rawValue, to: &payload)
            if let failureReason {
                guard status == .failed else {
                    throw ValidationError(field: "failure_reason", reason: "is given for status \(status.rawValue)", hint: "Only a FAILED status takes a failure reason; leave it out.")
                }
                let reason = try Self.failureReason(failureReason)
                payload.append(contentsOf: #","failureReason":"#.utf8)
                JSON.appendString(reason, to: &payload)
            }
            if let raw = try Self.resultFragments(self.fragments) {
                payload.append(UInt8(ascii: ","))
                payload.append(contentsOf: raw.dropFirst())  // the members and the closing brace
            } else {
                payload.append(UInt8(ascii: "}"))
            }
        }
        let record = NewRecord(kind: kind, recordClass: recordClass, target: target, child: child,
                               eventTime: when, payload: payload)
        let bodyBytes = kind.singleRecordBodyBytes(payloadBytes: payload.count, child: child)
        if bodyBytes > maxBodyBytes {
            throw ValidationError(field: "record", reason: "its request body would be \(bodyBytes) bytes, over the platform limit of \(maxBodyBytes) bytes, so it could never be sent",
                                  hint: "Split the data into several smaller records.")
        }
        return record
    }

    /// A message id that a resend of the same record carries again: the first 128 bits of
    /// SHA-256 over device, name, content and enqueue time, in hex.
    static func derivedMessageID(device: String, name: String, content: [UInt8], enqueuedAt: Int64) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(device.utf8) + [0] + Array(name.utf8) + [0])
        hasher.update(data: content)
        withUnsafeBytes(of: enqueuedAt.bigEndian) { hasher.update(bufferPointer: $0) }
        return Hex.encode(hasher.finalize().prefix(16))
    }

    static func recordClass(_ name: String?, default fallback: RecordClass = .normal) throws(ValidationError) -> RecordClass {
        guard let name else { return fallback }
        guard let value = RecordClass(name: name) else {
            throw ValidationError(field: "class", reason: "\"\(name.prefix(40))\" is not a record class", hint: "Use critical, normal or bulk.")
        }
        return value
    }

    /// IoTDA device ids: 1 to 128 characters of letters, digits, `_` and `-`.
    static func identifier(_ value: String?, field: String, what: String) throws(ValidationError) -> String {
        let hint = "A \(what) id is 1 to 128 characters of letters, digits, '_' and '-'."
        guard let value, !value.isEmpty else { throw ValidationError(field: field, reason: "is missing", hint: hint) }
        guard value.utf8.count <= 128 else {
            throw ValidationError(field: field, reason: "is \(value.utf8.count) characters long", hint: hint)
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                throw ValidationError(field: field, reason: "contains a character that is not allowed (\(String(decoding: [byte], as: UTF8.self).debugDescription))", hint: hint)
            }
        }
        return value
    }

    static func text(_ value: String?, field: String, maxLength: Int, hint: String) throws(ValidationError) -> String {
        guard let value, !value.isEmpty else { throw ValidationError(field: field, reason: "is missing", hint: hint) }
        // Printable ASCII (the usual case): one pass over the bytes.
        if value.utf8.count <= maxLength, value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return value }
        guard value.unicodeScalars.count <= maxLength else {
            throw ValidationError(field: field, reason: "is longer than \(maxLength) characters", hint: hint)
        }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw ValidationError(field: field, reason: "contains a control character", hint: hint)
        }
        return value
    }

    static func jsonObject(_ value: [UInt8]?, field: String, example: String, minified: Bool = false) throws(ValidationError) -> [UInt8] {
        guard let value, !value.isEmpty else {
            throw ValidationError(field: field, reason: "is missing", hint: "Give a JSON object, e.g. \(example).")
        }
        if minified {
            guard value.first == UInt8(ascii: "{") else {
                let type = (try? JSON.minify(value).type) ?? .null
                throw ValidationError(field: field, reason: "must be a JSON object, not \(type.withArticle)", hint: "Give a JSON object, e.g. \(example).")
            }
            return value
        }
        let parsed: (type: JSON.ValueType, raw: [UInt8])
        do { parsed = try JSON.minify(value) } catch {
            throw ValidationError(field: field, reason: "is not valid JSON (\(error))", hint: "Give a JSON object, e.g. \(example).")
        }
        guard parsed.type == .object else {
            throw ValidationError(field: field, reason: "must be a JSON object, not \(parsed.type.withArticle)", hint: "Give a JSON object, e.g. \(example).")
        }
        return parsed.raw
    }

    static func time(_ value: String?, field: String) throws(ValidationError) -> Int64? {
        guard let value else { return nil }
        guard let ms = Timestamp.parse(value) else {
            throw ValidationError(field: field, reason: "\"\(value.prefix(40))\" is not an RFC 3339 time with a time zone",
                                  hint: "Use e.g. 2026-11-22T03:10:10.555Z or 2026-11-22T04:10:10+01:00; leave it out for now.")
        }
        return ms
    }

    /// Cumulocity fragment names that are the measurement's own fields.
    static let reservedFragmentNames: Set<String> = ["id", "self", "source", "type", "time"]

    static func fragments(_ value: [UInt8]?) throws(ValidationError) -> [UInt8] {
        let example = #"{"c8y_Temperature": {"T": {"value": 21.5, "unit": "C"}}}"#
        let raw = try jsonObject(value, field: "fragments", example: example)
        let members: [JSON.Member]
        do { members = try JSON.members(of: raw) } catch {
            throw ValidationError(field: "fragments", reason: "is not a valid JSON object (\(error))", hint: "Give e.g. \(example).")
        }
        guard !members.isEmpty else {
            throw ValidationError(field: "fragments", reason: "is empty", hint: "A measurement needs at least one fragment, e.g. \(example).")
        }
        for member in members {
            if reservedFragmentNames.contains(member.key) {
                throw ValidationError(field: "fragments", reason: "\"\(member.key)\" is a field of the measurement itself, not a fragment",
                                      hint: "Pass source, type and time as their own fields.")
            }
            if member.type != .object {
                throw ValidationError(field: "fragments", reason: "fragment \"\(member.key.prefix(40))\" must be a JSON object, not \(member.type.withArticle)",
                                      hint: "Give e.g. \(example).")
            }
        }
        return raw
    }

    static func operationStatus(_ value: String?) throws(ValidationError) -> OperationStatus {
        let hint = "Give the status the device reports: EXECUTING, SUCCESSFUL or FAILED."
        guard let value, !value.isEmpty else { throw ValidationError(field: "status", reason: "is missing", hint: hint) }
        guard let status = OperationStatus(rawValue: value) else {
            throw ValidationError(field: "status", reason: "\"\(value.prefix(40))\" is not an operation status a device reports", hint: hint)
        }
        return status
    }

    static func failureReason(_ value: String) throws(ValidationError) -> String {
        let hint = "Give one line of at most \(OperationStatus.maxFailureReasonBytes) bytes, e.g. \"exit status 2: disk full\"."
        guard !value.isEmpty else { throw ValidationError(field: "failure_reason", reason: "is empty", hint: hint) }
        guard value.utf8.count <= OperationStatus.maxFailureReasonBytes else {
            throw ValidationError(field: "failure_reason", reason: "is \(value.utf8.count) bytes long", hint: hint)
        }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw ValidationError(field: "failure_reason", reason: "contains a control character", hint: hint)
        }
        return value
    }

    /// Fields of the operation itself, which a result fragment must not overwrite.
    static let reservedOperationFields: Set<String> = ["id", "self", "status", "failureReason", "deviceId", "creationTime", "lastUpdated"]

    /// The result fragments of an operation status: a JSON object whose members go into the
    /// PUT body next to `status` (nil when absent or empty).
    static func resultFragments(_ value: [UInt8]?) throws(ValidationError) -> [UInt8]? {
        guard let value else { return nil }
        let example = #"{"c8y_Command": {"result": "done"}}"#
        let raw = try jsonObject(value, field: "fragments", example: example)
        let members: [JSON.Member]
        do { members = try JSON.members(of: raw) } catch {
            throw ValidationError(field: "fragments", reason: "is not a valid JSON object (\(error))", hint: "Give e.g. \(example).")
        }
        for member in members where reservedOperationFields.contains(member.key) {
            throw ValidationError(field: "fragments", reason: "\"\(member.key)\" is a field of the operation itself, not a fragment",
                                  hint: "Pass status and failure_reason as their own fields.")
        }
        return members.isEmpty ? nil : raw
    }
}

extension RecordInput {
    /// Reads one JSON line: an object with `kind`, optional `class` and the kind's fields in
    /// snake_case. An unknown field is refused (a typo would otherwise drop data silently).
    public static func fromJSONLine(_ line: [UInt8]) throws(ValidationError) -> RecordInput {
        try fromJSONLine(line[...])
    }

    /// Reads one JSON line in place (a line of a larger read, not copied first).
    public static func fromJSONLine(_ line: ArraySlice<UInt8>) throws(ValidationError) -> RecordInput {
        let members: [JSON.Member]
        do { members = try JSON.members(of: line) } catch {
            throw ValidationError(field: "line", reason: "is not a JSON object (\(error))",
                                  hint: #"Write one JSON object per line, e.g. {"kind": "property", "device_id": "d1", "service_id": "Battery", "properties": {"level": 87}}."#)
        }
        guard let kindMember = members.first(where: { $0.key == "kind" }) else {
            throw ValidationError(field: "kind", reason: "is missing", hint: "Add \"kind\": one of property, message, child_property, measurement, operation_status.")
        }
        guard let kindName = kindMember.string, let kind = RecordKind(rawValue: kindName) else {
            throw ValidationError(field: "kind", reason: "is not one of property, message, child_property, measurement, operation_status",
                                  hint: "Add \"kind\": one of property, message, child_property, measurement, operation_status.")
        }
        var input = RecordInput(kind: kind)
        let allowed = LineField.allowed(for: kind)
        for member in members {
            // One hash lookup a member instead of comparing it with every field name.
            guard let field = LineField.byName[member.key], allowed.contains(field) else {
                throw ValidationError(field: member.key.count > 64 ? String(member.key.prefix(64)) + "…" : member.key,
                                      reason: "is not a field of a \(kind.rawValue) record",
                                      hint: "A \(kind.rawValue) takes: \(fields(of: kind).joined(separator: ", ")), and class.")
            }
            switch field {
            case .kind: break
            case .recordClass: input.recordClass = try string(member)
            case .deviceID: input.deviceID = try string(member)
            case .gatewayID: input.gatewayID = try string(member)
            case .serviceID: input.serviceID = try string(member)
            case .properties: input.properties = member.raw; input.minified.properties = true
            case .eventTime: input.eventTime = try string(member)
            case .name: input.name = try string(member)
            case .content: input.content = member.raw; input.minified.content = true
            case .id: input.messageID = try string(member)
            case .source: input.source = try string(member)
            case .type: input.type = try string(member)
            case .time: input.time = try string(member)
            case .fragments: input.fragments = member.raw
            case .operationID: input.operationID = try string(member)
            case .status: input.status = try string(member)
            case .failureReason: input.failureReason = try string(member)
            }
        }
        return input
    }

    /// The members a JSON line may have, by name.
    enum LineField: Int {
        case kind, recordClass, deviceID, gatewayID, serviceID, properties, eventTime, name, content, id
        case source, type, time, fragments, operationID, status, failureReason

        static let byName: [String: LineField] = [
            "kind": .kind, "class": .recordClass, "device_id": .deviceID, "gateway_id": .gatewayID,
            "service_id": .serviceID, "properties": .properties, "event_time": .eventTime, "name": .name,
            "content": .content, "id": .id, "source": .source, "type": .type, "time": .time,
            "fragments": .fragments, "operation_id": .operationID, "status": .status, "failure_reason": .failureReason,
        ]

        /// A set of fields as bits.
        struct Set {
            let bits: Int
            func contains(_ field: LineField) -> Bool { bits & (1 << field.rawValue) != 0 }
        }

        /// `kind`, `class` and the fields of `kind` (`RecordInput.fields(of:)`).
        static func allowed(for kind: RecordKind) -> Set { allowedByKind[kind]! }

        static let allowedByKind: [RecordKind: Set] = Dictionary(uniqueKeysWithValues: RecordKind.allCases.map { kind in
            (kind, set(RecordInput.fields(of: kind)))
        })

        static func set(_ names: [String]) -> Set {
            Set(bits: (names + ["kind", "class"]).reduce(0) { $0 | (1 << byName[$1]!.rawValue) })
        }
    }

    static func string(_ member: JSON.Member) throws(ValidationError) -> String {
        guard let value = member.string else {
            throw ValidationError(field: member.key, reason: "must be a JSON string, not \(member.type.withArticle)", hint: "Quote the value.")
        }
        return value
    }
}
