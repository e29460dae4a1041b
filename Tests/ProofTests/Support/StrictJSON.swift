/// An independent RFC 8259 recogniser for the fuzzer's oracle: written from the grammar, not
/// from edgebuf's scanner, so that a line edgebuf accepts can be checked against something
/// that does not share its bugs. It only answers "valid, and how deep", nothing else.
enum StrictJSON {
    /// The deepest nesting of objects and arrays (1 for `{}`), or nil when `bytes` is not one
    /// JSON value surrounded by optional whitespace, in valid UTF-8 without lone surrogates.
    static func depth(_ bytes: [UInt8]) -> Int? {
        guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        guard parser.value(level: 0) else { return nil }
        parser.skipWhitespace()
        return parser.index == bytes.count ? parser.deepest : nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0
        var deepest = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func literal(_ text: String) -> Bool {
            let expected = Array(text.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else { return false }
            index += expected.count
            return true
        }

        mutating func value(level: Int) -> Bool {
            switch current {
            case UInt8(ascii: "{"):
                deepest = max(deepest, level + 1)
                index += 1
                skipWhitespace()
                if current == UInt8(ascii: "}") { index += 1; return true }
                while true {
                    skipWhitespace()
                    guard current == UInt8(ascii: "\""), string() else { return false }
                    skipWhitespace()
                    guard current == UInt8(ascii: ":") else { return false }
                    index += 1
                    skipWhitespace()
                    guard value(level: level + 1) else { return false }
                    skipWhitespace()
                    if current == UInt8(ascii: ",") { index += 1; continue }
                    if current == UInt8(ascii: "}") { index += 1; return true }
                    return false
                }
            case UInt8(ascii: "["):
                deepest = max(deepest, level + 1)
                index += 1
                skipWhitespace()
                if current == UInt8(ascii: "]") { index += 1; return true }
                while true {
                    skipWhitespace()
                    guard value(level: level + 1) else { return false }
                    skipWhitespace()
                    if current == UInt8(ascii: ",") { index += 1; continue }
                    if current == UInt8(ascii: "]") { index += 1; return true }
                    return false
                }
            case UInt8(ascii: "\""):
                return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            case .some(let byte) where byte == UInt8(ascii: "-") || isDigit(byte):
                return number()
            default:
                return false
            }
        }

        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

        mutating func digits() -> Int {
            var count = 0
            while let byte = current, isDigit(byte) { index += 1; count += 1 }
            return count
        }

        mutating func number() -> Bool {
            if current == UInt8(ascii: "-") { index += 1 }
            if current == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                return false
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { return false }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { return false }
            }
            return true
        }

        func hex(_ byte: UInt8) -> UInt32? {
            switch byte {
            case 0x30...0x39: return UInt32(byte - 0x30)
            case 0x41...0x46: return UInt32(byte - 0x41 + 10)
            case 0x61...0x66: return UInt32(byte - 0x61 + 10)
            default: return nil
            }
        }

        mutating func escapedUnit() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var unit: UInt32 = 0
            for offset in 0..<4 {
                guard let digit = hex(bytes[index + offset]) else { return nil }
                unit = unit << 4 | digit
            }
            index += 4
            return unit
        }

        /// A string; the UTF-8 of the whole input was checked already.
        mutating func string() -> Bool {
            index += 1  // the opening quote
            while let byte = current {
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return true
                case 0x00..<0x20:
                    return false  // control characters must be escaped
                case UInt8(ascii: "\\"):
                    guard let escape = current else { return false }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                         UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        guard let unit = escapedUnit() else { return false }
                        if (0xDC00...0xDFFF).contains(unit) { return false }  // a low surrogate alone
                        if (0xD800...0xDBFF).contains(unit) {
                            guard current == UInt8(ascii: "\\") else { return false }
                            index += 1
                            guard current == UInt8(ascii: "u") else { return false }
                            index += 1
                            guard let low = escapedUnit(), (0xDC00...0xDFFF).contains(low) else { return false }
                        }
                    default:
                        return false
                    }
                default:
                    continue
                }
            }
            return false  // unterminated
        }
    }
}
