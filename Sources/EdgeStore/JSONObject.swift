/// Builds a JSON object with members in the order added: audit details and `--json` output.
/// Audit callers add facts only (counts, ids, hashes, statuses), never secrets or payloads.
public struct JSONObject: Sendable {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]

    public init() {}

    private mutating func key(_ name: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        JSON.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func add(_ name: String, _ value: String?) {
        key(name)
        if let value { JSON.appendString(value, to: &bytes) } else { bytes.append(contentsOf: Array("null".utf8)) }
    }

    public mutating func add(_ name: String, _ value: Int64?) {
        key(name)
        bytes.append(contentsOf: Array((value.map { String($0) } ?? "null").utf8))
    }

    public mutating func add(_ name: String, _ value: Int?) { add(name, value.map { Int64($0) }) }

    public mutating func add(_ name: String, _ value: Double) {
        key(name)
        bytes.append(contentsOf: Array((value.isFinite ? String(value) : "null").utf8))
    }

    public mutating func add(_ name: String, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: Array((value ? "true" : "false").utf8))
    }

    /// Adds a list of strings.
    public mutating func add(_ name: String, _ values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            JSON.appendString(value, to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Adds already-serialized JSON (a record payload, an audit detail).
    public mutating func add(_ name: String, rawJSON: [UInt8]) {
        key(name)
        bytes.append(contentsOf: rawJSON)
    }

    /// The object as JSON text.
    public var json: String { String(decoding: bytes + [UInt8(ascii: "}")], as: UTF8.self) }
}
