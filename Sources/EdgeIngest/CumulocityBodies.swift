import EdgeStore

/// Cumulocity's measurement API bodies turned into outbox records. Pure.
public enum CumulocityBodies {
    static let example = #"{"source": {"id": "12345"}, "type": "c8y_Temperature", "time": "2026-11-22T03:10:10.555Z", "c8y_Temperature": {"T": {"value": 21.5, "unit": "C"}}}"#

    /// `POST /measurement/measurements`: one measurement, or a measurementcollection
    /// (`{"measurements": [...]}`). Every member besides `source`, `type` and `time` is a
    /// fragment, as Cumulocity reads it.
    public static func measurements(body: [UInt8], recordClass: String?, now: Int64, maxBodyBytes: Int) throws(IngestError) -> (records: [NewRecord], collection: Bool) {
        let members = try BodyReader.object(body, field: "body", example: example)
        if members.count == 1, let list = members["measurements"], list.type == .array {
            let elements = try BodyReader.array(list, field: "measurements", example: #"{"measurements": [\#(example)]}"#)
            var records: [NewRecord] = []
            records.reserveCapacity(elements.count)
            for (index, element) in elements.enumerated() {
                let at = "measurements[\(index)]"
                let fields = try BodyReader.object(element.raw, field: at, example: example)
                records.append(try measurement(fields, at: at, recordClass: recordClass, now: now, maxBodyBytes: maxBodyBytes))
            }
            return (records, true)
        }
        return ([try measurement(members, at: "", recordClass: recordClass, now: now, maxBodyBytes: maxBodyBytes)], false)
    }

    static func measurement(_ members: [JSON.Member], at prefix: String, recordClass: String?, now: Int64, maxBodyBytes: Int) throws(IngestError) -> NewRecord {
        func name(_ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }
        var input = RecordInput(kind: .measurement)
        input.recordClass = recordClass
        var fragments: [UInt8] = [UInt8(ascii: "{")]
        for member in members {
            switch member.key {
            case "source":
                let source = try BodyReader.object(member.raw, field: name("source"), example: #"{"id": "12345"}"#)
                try BodyReader.only(source, ["id", "self", "name"], at: name("source"))
                input.source = try BodyReader.string(source["id"], field: name("source.id"))
                if input.source == nil {
                    throw IngestError(field: name("source.id"), reason: "is missing", hint: "Give the managed object's id, e.g. {\"id\": \"12345\"}.")
                }
            case "type": input.type = try BodyReader.string(member, field: name("type"))
            case "time": input.time = try BodyReader.string(member, field: name("time"))
            default:
                if fragments.count > 1 { fragments.append(UInt8(ascii: ",")) }
                JSON.appendString(member.key, to: &fragments)
                fragments.append(UInt8(ascii: ":"))
                fragments.append(contentsOf: member.raw)
            }
        }
        fragments.append(UInt8(ascii: "}"))
        input.fragments = fragments
        do { return try input.validated(now: now, maxBodyBytes: maxBodyBytes) } catch {
            // `fragments` is not a field of Cumulocity's body: the fragments are its other members.
            throw IngestError(error, at: error.field == "fragments" ? (prefix.isEmpty ? "" : prefix) : prefix)
        }
    }
}
