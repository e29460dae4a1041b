import Foundation

/// Decoded JSON (via JSONSerialization), with small accessors for test assertions.
public typealias JSONDict = [String: Any]

public func parseJSON(_ text: String) throws -> Any {
    guard let data = text.data(using: .utf8) else { throw TestFailure("not UTF-8") }
    do {
        return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    } catch {
        throw TestFailure("not JSON (\(error)): \(text.prefix(300))")
    }
}

public func parseObject(_ text: String) throws -> JSONDict {
    guard let object = try parseJSON(text) as? JSONDict else { throw TestFailure("not a JSON object: \(text.prefix(300))") }
    return object
}

/// JSON lines (one object a line).
public func parseLines(_ text: String) throws -> [JSONDict] {
    try text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map { try parseObject(String($0)) }
}

public func jsonText(_ value: Any) -> String {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}

extension Dictionary where Key == String, Value == Any {
    public func string(_ key: String) -> String? { self[key] as? String }
    public func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
    public func object(_ key: String) -> JSONDict? { self[key] as? JSONDict }
    public func bool(_ key: String) -> Bool? { (self[key] as? NSNumber)?.boolValue }
    public func isNull(_ key: String) -> Bool { self[key] == nil || self[key] is NSNull }
}

/// Structural equality of two decoded JSON values.
public func jsonEqual(_ a: Any?, _ b: Any?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let x as NSObject, let y as NSObject): return x.isEqual(y)
    default: return false
    }
}

/// RFC 3339 with milliseconds, as edgebuf prints it, to a Date.
public func parseTimestamp(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
}
