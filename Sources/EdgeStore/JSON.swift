/// A strict, allocation-light JSON reader for the enqueue path.
///
/// It validates RFC 8259 JSON (UTF-8 only, no NUL or control characters in strings, no lone
/// surrogate escapes, bounded depth) and hands back a top-level object's members with their
/// values minified, byte for byte otherwise as given: numbers keep every digit (no round trip
/// through Double), strings keep their escapes. Foundation's JSONSerialization is far slower
/// and rounds large numbers.
public enum JSON {
    /// Nesting deeper than this is refused (a stack-exhaustion guard).
    public static let maximumDepth = 64

    /// The type of a JSON value.
    public enum ValueType: String, Sendable {
        case object, array, string, number, bool, null
    }

    /// One member of a top-level object.
    public struct Member: Sendable {
        /// The decoded key.
        public let key: String
        /// The value's type.
        public let type: ValueType
        /// The decoded string, when `type` is `.string`.
        public let string: String?
        /// The value as written; nil for a string without escapes, whose bytes are its text in
        /// quotes (most ids and names: no copy is made for them).
        let written: [UInt8]?

        init(key: String, type: ValueType, written: [UInt8]?, string: String?) {
            self.key = key
            self.type = type
            self.written = written
            self.string = string
        }

        /// The value, minified.
        public var raw: [UInt8] {
            if let written { return written }
            var quoted: [UInt8] = []
            quoted.reserveCapacity((string?.utf8.count ?? 0) + 2)
            quoted.append(UInt8(ascii: "\""))
            quoted.append(contentsOf: (string ?? "").utf8)
            quoted.append(UInt8(ascii: "\""))
            return quoted
        }
    }

    /// A syntax error with its byte offset.
    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public let offset: Int
        public let reason: String
        public var description: String { "\(reason) at byte \(offset + 1)" }
    }

    /// Parses `bytes` as one JSON object and returns its members in order.
    /// Throws for anything else, including duplicate keys.
    public static func members(of bytes: [UInt8]) throws(SyntaxError) -> [Member] {
        try members(of: bytes[...])
    }

    /// Parses `bytes` as one JSON object and returns its members in order, without copying
    /// the input first (a line of a larger read). Offsets in errors count from its first byte.
    public static func members(of bytes: ArraySlice<UInt8>) throws(SyntaxError) -> [Member] {
        try scanning(bytes) { scanner throws(SyntaxError) in try scanner.topLevelObject() }
    }

    /// Validates `bytes` as one JSON value and returns it minified, with its type.
    public static func minify(_ bytes: [UInt8]) throws(SyntaxError) -> (type: ValueType, raw: [UInt8]) {
        try scanning(bytes[...]) { scanner throws(SyntaxError) in
            scanner.skipWhitespace()
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            let type = try scanner.value(depth: 0, into: &out)
            scanner.skipWhitespace()
            guard scanner.atEnd else { throw scanner.error("unexpected data after the JSON value") }
            return (type, out)
        }
    }

    /// Appends `string` as a JSON string literal (quoted and escaped).
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most strings (ids, names) need no escape: append them whole.
        if !string.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: string.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5c, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5c, 0x5c])
            case 0x0a: out.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: out.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5c, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `string` as a JSON string literal.
    public static func quoted(_ string: String) -> String {
        var out: [UInt8] = []
        appendString(string, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// Where the scanner puts the bytes it reads: an array when it minifies, nowhere when it only
/// validates (a value with no whitespace in it is then copied once, whole).
protocol JSONOutput {
    mutating func put(_ byte: UInt8)
    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>)
}

extension Array: JSONOutput where Element == UInt8 {
    mutating func put(_ byte: UInt8) { append(byte) }
    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) { append(contentsOf: bytes) }
}

/// Validation only: the bytes go nowhere.
struct JSONDiscard: JSONOutput {
    @inline(__always) mutating func put(_ byte: UInt8) {}
    @inline(__always) mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {}
}

extension JSON {
    /// Runs `body` over the bytes of `bytes` without copying them.
    static func scanning<T>(_ bytes: ArraySlice<UInt8>, _ body: (inout Scanner) throws(SyntaxError) -> T) throws(SyntaxError) -> T {
        let result: Result<T, SyntaxError> = bytes.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer)
            return Result { () throws(SyntaxError) -> T in try body(&scanner) }
        }
        return try result.get()
    }

    /// A scanner over bytes that stay valid while it runs (see `scanning`). Offsets in its
    /// errors count from the first byte.
    struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        /// Set when `skipWhitespace` skipped anything: a value scanned with it still false was
        /// already minified, byte for byte.
        var skippedWhitespace = false

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { index >= bytes.count }

        func error(_ reason: String) -> SyntaxError { SyntaxError(offset: index, reason: reason) }

        /// The bytes `range` as a new array (one allocation of the exact size).
        func copy(_ range: Range<Int>) -> [UInt8] { Array(UnsafeBufferPointer(rebasing: bytes[range])) }

        mutating func skipWhitespace() {
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0a, 0x0d: index += 1
                default:
                    if index != start { skippedWhitespace = true }
                    return
                }
            }
            if index != start { skippedWhitespace = true }
        }

        mutating func topLevelObject() throws(SyntaxError) -> [Member] {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else {
                throw error(atEnd ? "empty input, expected a JSON object" : "expected a JSON object")
            }
            index += 1
            var members: [Member] = []
            members.reserveCapacity(8)
            var discard = JSONDiscard()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
            } else {
                while true {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
                    let key = try string(into: &discard)
                    // Records have a handful of members: a linear scan beats hashing.
                    guard !members.contains(where: { $0.key == key }) else { throw error("duplicate member \"\(key)\"") }
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
                    index += 1
                    skipWhitespace()
                    let start = index
                    let raw: [UInt8]?
                    let type: ValueType
                    var decoded: String? = nil
                    if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                        let text = try string(into: &discard)
                        decoded = text
                        // Every escape is longer than what it decodes to: the same length means
                        // none, and the bytes are the text in quotes (no copy needed).
                        raw = index - start == text.utf8.count + 2 ? nil : copy(start..<index)
                        type = .string
                    } else {
                        // Validate first; copy the value whole when it held no whitespace,
                        // else scan it again to minify it.
                        skippedWhitespace = false
                        type = try value(depth: 1, into: &discard)
                        if skippedWhitespace {
                            let end = index
                            index = start
                            var out: [UInt8] = []
                            out.reserveCapacity(end - start)
                            _ = try value(depth: 1, into: &out)
                            raw = out
                        } else {
                            raw = copy(start..<index)
                        }
                    }
                    members.append(Member(key: key, type: type, written: raw, string: decoded))
                    skipWhitespace()
                    guard index < bytes.count else { throw error("unterminated object") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; break }
                    throw error("expected ',' or '}' in an object")
                }
            }
            skipWhitespace()
            guard atEnd else { throw error("unexpected data after the JSON object") }
            return members
        }

        mutating func value<Output: JSONOutput>(depth: Int, into out: inout Output) throws(SyntaxError) -> ValueType {
            guard index < bytes.count else { throw error("unexpected end of input, expected a value") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard depth < JSON.maximumDepth else { throw error("nesting deeper than \(JSON.maximumDepth) levels") }
                try container(close: UInt8(ascii: "}"), isObject: true, depth: depth, into: &out)
                return .object
            case UInt8(ascii: "["):
                guard depth < JSON.maximumDepth else { throw error("nesting deeper than \(JSON.maximumDepth) levels") }
                try container(close: UInt8(ascii: "]"), isObject: false, depth: depth, into: &out)
                return .array
            case UInt8(ascii: "\""):
                _ = try string(into: &out, decode: false)
                return .string
            case UInt8(ascii: "t"): try literal("true", into: &out); return .bool
            case UInt8(ascii: "f"): try literal("false", into: &out); return .bool
            case UInt8(ascii: "n"): try literal("null", into: &out); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try number(into: &out)
                return .number
            default:
                throw error("unexpected character, expected a JSON value")
            }
        }

        mutating func container<Output: JSONOutput>(close: UInt8, isObject: Bool, depth: Int, into out: inout Output) throws(SyntaxError) {
            out.put(bytes[index])
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == close {
                out.put(close)
                index += 1
                return
            }
            while true {
                skipWhitespace()
                if isObject {
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
                    _ = try string(into: &out, decode: false)
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
                    out.put(UInt8(ascii: ":"))
                    index += 1
                    skipWhitespace()
                }
                _ = try value(depth: depth + 1, into: &out)
                skipWhitespace()
                guard index < bytes.count else { throw error(isObject ? "unterminated object" : "unterminated array") }
                if bytes[index] == UInt8(ascii: ",") {
                    out.put(UInt8(ascii: ","))
                    index += 1
                    continue
                }
                if bytes[index] == close {
                    out.put(close)
                    index += 1
                    return
                }
                throw error(isObject ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array")
            }
        }

        mutating func literal<Output: JSONOutput>(_ word: StaticString, into out: inout Output) throws(SyntaxError) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("invalid literal") }
            let ok = word.withUTF8Buffer { expected in
                for offset in 0..<count where bytes[index + offset] != expected[offset] { return false }
                return true
            }
            guard ok else { throw error("invalid literal") }
            out.put(UnsafeBufferPointer(rebasing: bytes[index..<(index + count)]))
            index += count
        }

        mutating func number<Output: JSONOutput>(into out: inout Output) throws(SyntaxError) {
            let start = index
            func digit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, digit(bytes[index]) else { throw error("invalid number") }
            if bytes[index] == 0x30 {
                index += 1
                if index < bytes.count, digit(bytes[index]) { throw error("invalid number (leading zero)") }
            } else {
                while index < bytes.count, digit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard index < bytes.count, digit(bytes[index]) else { throw error("invalid number (no digit after '.')") }
                while index < bytes.count, digit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard index < bytes.count, digit(bytes[index]) else { throw error("invalid number (no digit in exponent)") }
                while index < bytes.count, digit(bytes[index]) { index += 1 }
            }
            out.put(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        }

        /// Scans a string literal, copying it as written into `out`; returns the decoded text
        /// when `decode` is true (empty otherwise).
        mutating func string<Output: JSONOutput>(into out: inout Output, decode: Bool = true) throws(SyntaxError) -> String {
            let start = index
            index += 1  // opening quote
            // Fast path: printable ASCII without escapes up to the closing quote, the usual
            // case for names and ids; the text is the bytes themselves.
            var end = index
            while end < bytes.count {
                let byte = bytes[end]
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { break }
                end += 1
            }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                index = end + 1
                out.put(UnsafeBufferPointer(rebasing: bytes[start..<index]))
                return decode ? String(decoding: UnsafeBufferPointer(rebasing: bytes[(start + 1)..<end]), as: UTF8.self) : ""
            }
            // The rest, byte by byte, from the first byte that needs a closer look.
            var decoded: [UInt8] = []
            if decode { decoded.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[(start + 1)..<end])) }
            index = end
            while true {
                guard index < bytes.count else { throw error("unterminated string") }
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    out.put(UnsafeBufferPointer(rebasing: bytes[start..<index]))
                    return decode ? String(decoding: decoded, as: UTF8.self) : ""
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw error("unterminated escape") }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""): decoded.append(0x22)
                    case UInt8(ascii: "\\"): decoded.append(0x5c)
                    case UInt8(ascii: "/"): decoded.append(0x2f)
                    case UInt8(ascii: "b"): decoded.append(0x08)
                    case UInt8(ascii: "f"): decoded.append(0x0c)
                    case UInt8(ascii: "n"): decoded.append(0x0a)
                    case UInt8(ascii: "r"): decoded.append(0x0d)
                    case UInt8(ascii: "t"): decoded.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if scalar >= 0xD800 && scalar <= 0xDBFF {
                            guard index + 1 < bytes.count, bytes[index] == 0x5c, bytes[index + 1] == UInt8(ascii: "u") else {
                                throw error("unpaired surrogate in \\u escape")
                            }
                            index += 2
                            let low = try hex4()
                            guard low >= 0xDC00 && low <= 0xDFFF else { throw error("unpaired surrogate in \\u escape") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        if scalar == 0 { throw error("NUL character (\\u0000) in a string") }
                        if decode, let unicode = Unicode.Scalar(scalar) {
                            decoded.append(contentsOf: String(Character(unicode)).utf8)
                        }
                    default:
                        throw error("invalid escape")
                    }
                case 0..<0x20:
                    throw error(byte == 0 ? "NUL byte in a string" : "unescaped control character in a string")
                case 0x20..<0x80:
                    if decode { decoded.append(byte) }
                    index += 1
                default:
                    let length = try utf8Sequence()
                    if decode { decoded.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<(index + length)])) }
                    index += length
                }
            }
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[index]
                let nibble: UInt32
                switch b {
                case 0x30...0x39: nibble = UInt32(b - 0x30)
                case 0x41...0x46: nibble = UInt32(b - 0x41 + 10)
                case 0x61...0x66: nibble = UInt32(b - 0x61 + 10)
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | nibble
                index += 1
            }
            return value
        }

        /// Validates one UTF-8 multi-byte sequence at `index` (RFC 3629: no overlongs, no
        /// surrogates, nothing above U+10FFFF) and returns its length.
        func utf8Sequence() throws(SyntaxError) -> Int {
            let b0 = bytes[index]
            func cont(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) throws(SyntaxError) {
                guard index + offset < bytes.count, range.contains(bytes[index + offset]) else {
                    throw error("invalid UTF-8")
                }
            }
            switch b0 {
            case 0xC2...0xDF: try cont(1); return 2
            case 0xE0: try cont(1, 0xA0...0xBF); try cont(2); return 3
            case 0xE1...0xEC, 0xEE...0xEF: try cont(1); try cont(2); return 3
            case 0xED: try cont(1, 0x80...0x9F); try cont(2); return 3
            case 0xF0: try cont(1, 0x90...0xBF); try cont(2); try cont(3); return 4
            case 0xF1...0xF3: try cont(1); try cont(2); try cont(3); return 4
            case 0xF4: try cont(1, 0x80...0x8F); try cont(2); try cont(3); return 4
            default: throw error("invalid UTF-8")
            }
        }
    }
}

extension JSON.ValueType {
    /// The type with its article, for error messages: "an object", "a number", "null".
    public var withArticle: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }
}
