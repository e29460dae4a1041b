import Foundation

/// Lenient readers for values decoded by `JSONSerialization`, whose number types differ
/// between Darwin and Linux Foundation (NSNumber, Int, Double; booleans are NSNumbers too).
enum JSONValue {
    /// An integer from a JSON number (fractions truncated) or a numeric string; nil for
    /// booleans, other types, NaN and values out of Int64 range.
    static func int64(_ value: Any?) -> Int64? {
        guard let value else { return nil }
        if isBool(value) { return nil }
        if let int = value as? Int { return Int64(int) }
        if let int = value as? Int64 { return int }
        if let double = value as? Double { return exactInt64(double) }
        if let number = value as? NSNumber { return exactInt64(number.doubleValue) }
        if let text = value as? String {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if let int = Int64(trimmed) { return int }
            if let double = Double(trimmed) { return exactInt64(double) }
        }
        return nil
    }

    /// A string from a JSON string, or an integer's decimal text (ids come both ways).
    static func idString(_ value: Any?) -> String? {
        guard let value else { return nil }
        if let text = value as? String { return text }
        if isBool(value) { return nil }
        if let int = int64(value) { return String(int) }
        if let number = value as? NSNumber { return number.stringValue }
        return nil
    }

    /// A JSON boolean (not a number that happens to be 0 or 1).
    static func bool(_ value: Any?) -> Bool? {
        guard let value, isBool(value) else { return nil }
        return value as? Bool
    }

    /// Foundation decodes JSON `true`/`false` as a boolean-flavoured NSNumber (`__NSCFBoolean`
    /// on Darwin and Linux), which `as? Bool` cannot tell from the numbers 1 and 0.
    private static let booleanType = type(of: NSNumber(value: true))

    static func isBool(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return type(of: number) == booleanType
    }

    private static func exactInt64(_ double: Double) -> Int64? {
        guard double.isFinite, double >= -9.2e18, double <= 9.2e18 else { return nil }
        return Int64(double.rounded(.towardZero))
    }
}
