/// A small JSON tree over a notification's stored bytes, for its dedupe key: the few fields
/// the key reads (`realtimeAction`, `data`, `id`, `lastUpdated`) and the canonical form its
/// content hash covers. No Foundation: `JSONSerialization` with sorted keys cost ~40 % of the
/// CPU per notification (issue 12).
///
/// The input is JSON that has already been validated (EdgeStore's strict reader minified it,
/// or Foundation wrote it); anything else throws, and the caller falls back to hashing the
/// bytes as they are. Never traps.
///
/// The canonical form: no whitespace outside strings; object members sorted by their decoded
/// names (UTF-8 byte order); strings decoded and written again with the fewest escapes (`"`,
/// `\` and control characters only), so `"\/"`, `"\u0041"` and `"A"` spellings agree; numbers
/// and literals exactly as written (a server does not spell its numbers two ways, and reading
/// them through a `Double` would merge ids that differ in the 17th digit).
struct KeyJSON {
    indirect enum Node {
        /// Members in the order given.
        case object([Member])
        case array([Node])
        /// A string literal: its bytes in the source (quotes included), and whether it has escapes.
        case string(Range<Int>, escaped: Bool)
        /// A number, `true`, `false` or `null`, as written.
        case scalar(Range<Int>)
    }

    /// An object member: its name as a string literal node's range and escape flag.
    struct Member {
        var name: Range<Int>
        var nameEscaped: Bool
        var value: Node
    }

    struct Malformed: Error {}

    let bytes: [UInt8]
    let root: Node

    init(_ bytes: [UInt8]) throws(Malformed) {
        self.bytes = bytes
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        root = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw Malformed() }
    }

    // MARK: Reading

    /// The member `name` of an object node (the first one with that name).
    func member(_ node: Node, _ name: StaticString) -> Node? {
        guard case .object(let members) = node else { return nil }
        return name.withUTF8Buffer { wanted in
            members.first { member in
                if member.nameEscaped { return (try? decodeString(member.name)).map { $0.elementsEqual(wanted) } ?? false }
                return bytes[(member.name.lowerBound + 1)..<(member.name.upperBound - 1)].elementsEqual(wanted)
            }?.value
        }
    }

    /// A string node's decoded text; nil for other nodes.
    func string(_ node: Node?) -> String? {
        guard case .string(let range, let escaped)? = node else { return nil }
        if !escaped { return String(decoding: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)], as: UTF8.self) }
        return (try? decodeString(range)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A scalar node's text as written (a number, `true`, `false`, `null`).
    func scalarText(_ node: Node?) -> String? {
        guard case .scalar(let range)? = node else { return nil }
        return String(decoding: bytes[range], as: UTF8.self)
    }

    // MARK: Canonical form

    /// The canonical JSON of `node` (see the type's comment).
    func canonical(_ node: Node) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        append(node, to: &out)
        return out
    }

    private func append(_ node: Node, to out: inout [UInt8]) {
        switch node {
        case .scalar(let range):
            out.append(contentsOf: bytes[range])
        case .string(let range, let escaped):
            if escaped, let decoded = try? decodeString(range) {
                Self.appendMinimallyEscaped(decoded, to: &out)
            } else {
                out.append(contentsOf: bytes[range])
            }
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            // Names decoded only where they have escapes (rare); the rest as they stand.
            let names: [ArraySlice<UInt8>] = members.map { member in
                if member.nameEscaped, let decoded = try? decodeString(member.name) { return decoded[...] }
                return bytes[(member.name.lowerBound + 1)..<(member.name.upperBound - 1)]
            }
            // A stable sort: equal names (not possible in validated input) keep their order.
            let order = members.indices.sorted { a, b in
                names[a].lexicographicallyPrecedes(names[b]) || (names[a].elementsEqual(names[b]) && a < b)
            }
            for (position, index) in order.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                if members[index].nameEscaped {
                    Self.appendMinimallyEscaped(names[index], to: &out)
                } else {
                    out.append(contentsOf: bytes[members[index].name])
                }
                out.append(UInt8(ascii: ":"))
                append(members[index].value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// `decoded` as a JSON string literal escaping only what must be: `"`, `\`, U+0000-U+001F.
    static func appendMinimallyEscaped(_ decoded: some Sequence<UInt8>, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in decoded {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0..<0x20: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The decoded UTF-8 of the string literal at `range` (quotes included).
    func decodeString(_ range: Range<Int>) throws(Malformed) -> [UInt8] {
        var parser = Parser(bytes: bytes, index: range.lowerBound + 1)
        var decoded: [UInt8] = []
        try parser.stringBody(decodeInto: &decoded)
        return decoded
    }

    // MARK: Parsing

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0a || bytes[index] == 0x0d {
                index += 1
            }
        }

        mutating func value(depth: Int) throws(Malformed) -> Node {
            // Deeper than any notification; bounded so that hostile input cannot exhaust the stack.
            guard index < bytes.count, depth <= 512 else { throw Malformed() }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var members: [Member] = []
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw Malformed() }
                    let nameStart = index
                    index += 1
                    let nameEscaped = try skipStringBody()
                    let name = nameStart..<index
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw Malformed() }
                    index += 1
                    skipWhitespace()
                    members.append(Member(name: name, nameEscaped: nameEscaped, value: try value(depth: depth + 1)))
                    skipWhitespace()
                    guard index < bytes.count else { throw Malformed() }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "}") else { throw Malformed() }
                    index += 1
                    return .object(members)
                }
            case UInt8(ascii: "["):
                index += 1
                var items: [Node] = []
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                while true {
                    skipWhitespace()
                    items.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard index < bytes.count else { throw Malformed() }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "]") else { throw Malformed() }
                    index += 1
                    return .array(items)
                }
            case UInt8(ascii: "\""):
                let start = index
                index += 1
                let escaped = try skipStringBody()
                return .string(start..<index, escaped: escaped)
            default:
                // A number or a literal: up to the next structural character or whitespace.
                let start = index
                while index < bytes.count, Self.isScalarByte(bytes[index]) { index += 1 }
                if index < bytes.count, !Self.endsScalar(bytes[index]) { throw Malformed() }
                guard index > start else { throw Malformed() }
                return .scalar(start..<index)
            }
        }

        /// Bytes of numbers and of `true`, `false`, `null`.
        static func isScalarByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "E"): return true
            default: return false
            }
        }

        static func endsScalar(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0a, 0x0d: return true
            default: return false
            }
        }

        /// Skips a string's body after the opening quote, through the closing one; true when
        /// it has escapes.
        mutating func skipStringBody() throws(Malformed) -> Bool {
            var escaped = false
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\"") { return escaped }
                if byte == UInt8(ascii: "\\") {
                    guard index < bytes.count else { throw Malformed() }
                    escaped = true
                    index += 1
                }
            }
            throw Malformed()
        }

        /// Decodes a string's body after the opening quote, through the closing one.
        mutating func stringBody(decodeInto out: inout [UInt8]) throws(Malformed) {
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\"") { return }
                guard byte == UInt8(ascii: "\\") else { out.append(byte); continue }
                guard index < bytes.count else { throw Malformed() }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar <= 0xDBFF {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { throw Malformed() }
                        index += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else { throw Malformed() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw Malformed() }
                    out.append(contentsOf: unicode.utf8)
                default:
                    throw Malformed()
                }
            }
            throw Malformed()
        }

        mutating func hex4() throws(Malformed) -> UInt32 {
            guard index + 4 <= bytes.count else { throw Malformed() }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[index]
                let nibble: UInt32
                switch b {
                case 0x30...0x39: nibble = UInt32(b - 0x30)
                case 0x41...0x46: nibble = UInt32(b - 0x41 + 10)
                case 0x61...0x66: nibble = UInt32(b - 0x61 + 10)
                default: throw Malformed()
                }
                value = value << 4 | nibble
                index += 1
            }
            return value
        }
    }
}
