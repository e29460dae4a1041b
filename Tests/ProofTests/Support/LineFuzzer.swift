import TestSupport

/// Seeded generator of JSON lines for `enqueue --jsonl`: valid lines of every kind, and
/// mutations of them. Some mutations have a verdict known without asking edgebuf (invalid
/// UTF-8, a NUL byte, nesting beyond 64 levels, an unknown field, a wrong type, a 2 MB
/// record); random byte damage is judged by the validator in-process and checked against an
/// independent recogniser (`StrictJSON`). No line contains 0x0A: the input's line numbers are
/// exactly the generated cases'.
struct LineFuzzer {
    /// What edgebuf must do with a line.
    enum Verdict: Equatable {
        /// Stored.
        case valid
        /// Refused, reported with its line number.
        case invalid
        /// Whitespace only: skipped, neither stored nor reported.
        case blank
        /// Whatever the validator says (random damage).
        case oracle
    }

    struct Case {
        let bytes: [UInt8]
        let verdict: Verdict
        /// What was done to the line, for failure messages.
        let label: String
    }

    let seed: UInt64
    private var random: SplitMix64

    init(seed: UInt64) {
        self.seed = seed
        random = SplitMix64(seed: seed)
    }

    // MARK: Random pieces

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func chance(_ percent: Int) -> Bool { int(1...100) <= percent }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...items.count - 1)] }

    mutating func identifier() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        return String((0..<int(1...24)).map { _ in pick(alphabet) })
    }

    /// A JSON string literal with escapes and non-ASCII text.
    mutating func stringLiteral() -> String {
        let pieces = ["a", "Z", "0", " ", "é", "温度", "🚪", "\\\"", "\\\\", "\\n", "\\t", "\\u00e9", "\\ud83d\\ude80", "/", "\\/", "x"]
        return "\"" + (0..<int(0...12)).map { _ in pick(pieces) }.joined() + "\""
    }

    mutating func numberLiteral() -> String {
        switch int(0...9) {
        case 0: return "1e400"
        case 1: return "-" + "9" + String(repeating: "7", count: 399)  // 400 digits
        case 2: return "-0.0e-999"
        case 3: return "123456789012345678901234567890.000000000000000000001"
        case 4: return String(int(-1_000_000...1_000_000))
        case 5: return "0.5"
        case 6: return "1E+2"
        default: return String(int(0...1000))
        }
    }

    /// A random JSON value of at most `depth` more levels.
    mutating func value(depth: Int) -> String {
        let choice = depth <= 0 ? int(0...4) : int(0...6)
        switch choice {
        case 0: return stringLiteral()
        case 1: return numberLiteral()
        case 2: return pick(["true", "false", "null"])
        case 3: return numberLiteral()
        case 4: return stringLiteral()
        case 5: return object(depth: depth - 1)
        default: return "[" + (0..<int(0...4)).map { _ in value(depth: depth - 1) }.joined(separator: pick([",", ", ", " ,"])) + "]"
        }
    }

    mutating func object(depth: Int) -> String {
        var keys = Set<String>()
        var members: [String] = []
        for _ in 0..<int(0...5) {
            let key = identifier()
            guard keys.insert(key).inserted else { continue }
            members.append("\"\(key)\":\(value(depth: depth))")
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    mutating func time() -> String {
        pick(["2026-11-22T03:10:10.555Z", "2026-11-22T04:10:10+01:00", "1999-12-31T23:59:59Z", "2026-02-28T12:00:00.1-05:30"])
    }

    // MARK: Valid lines

    /// A valid line of a random kind, as ordered members (key, raw JSON value).
    mutating func validMembers() -> [(String, String)] {
        var members: [(String, String)]
        switch int(0...3) {
        case 0:
            members = [("kind", "\"property\""), ("device_id", "\"\(identifier())\""), ("service_id", stringLiteralShort()),
                       ("properties", object(depth: 3))]
            if chance(50) { members.append(("event_time", "\"\(time())\"")) }
        case 1:
            members = [("kind", "\"message\""), ("device_id", "\"\(identifier())\""), ("name", stringLiteralShort()),
                       ("content", value(depth: 3))]
            if chance(40) { members.append(("id", "\"\(identifier())\"")) }
        case 2:
            members = [("kind", "\"child_property\""), ("gateway_id", "\"\(identifier())\""), ("device_id", "\"\(identifier())\""),
                       ("service_id", stringLiteralShort()), ("properties", object(depth: 3))]
            if chance(50) { members.append(("event_time", "\"\(time())\"")) }
        default:
            var fragments: [String] = []
            for index in 0..<int(1...3) { fragments.append("\"c8y_F\(index)\":{\"v\":{\"value\":\(numberLiteral())}}") }
            members = [("kind", "\"measurement\""), ("source", "\"\(identifier())\""), ("type", "\"c8y_T\(int(0...9))\""),
                       ("fragments", "{" + fragments.joined(separator: ",") + "}")]
            if chance(50) { members.append(("time", "\"\(time())\"")) }
        }
        if chance(30) { members.append(("class", pick(["\"critical\"", "\"normal\"", "\"bulk\""]))) }
        // Member order does not matter.
        for index in stride(from: members.count - 1, to: 0, by: -1) { members.swapAt(index, int(0...index)) }
        return members
    }

    /// A non-empty string without control characters, at most 64 characters.
    mutating func stringLiteralShort() -> String {
        pick(["\"Battery\"", "\"温度\"", "\"a b\"", "\"S\"", "\"x\\u00e9\"", "\"🚪door\""])
    }

    static func render(_ members: [(String, String)], spaced: Bool) -> String {
        let separator = spaced ? ", " : ","
        let colon = spaced ? ": " : ":"
        return "{" + members.map { "\"\($0.0)\"\(colon)\($0.1)" }.joined(separator: separator) + "}"
    }

    // MARK: Cases

    mutating func next() -> Case {
        let members = validMembers()
        let line = Self.render(members, spaced: chance(30))
        let bytes = Array(line.utf8)
        switch int(0...29) {
        case 0...5:
            return Case(bytes: bytes, verdict: .valid, label: "valid")
        case 6:
            return Case(bytes: bytes + [0x0D], verdict: .valid, label: "CRLF")
        case 7:
            return Case(bytes: Array(pick(["", " ", "\t", "\r", "  \t \r"]).utf8), verdict: .blank, label: "blank")
        case 8:
            // Invalid UTF-8 inside a string value (a lone continuation byte, an overlong form,
            // an encoded surrogate, 0xFF, a truncated sequence, a code point above U+10FFFF).
            let bad: [[UInt8]] = [[0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xFF], [0xC3, 0x28], [0xF4, 0x90, 0x80, 0x80]]
            return Case(bytes: Self.withString(Array("ok".utf8) + pick(bad), in: members), verdict: .invalid, label: "invalid UTF-8")
        case 9:
            return Case(bytes: Self.withString(Array("a".utf8) + [0x00] + Array("b".utf8), in: members), verdict: .invalid, label: "NUL byte")
        case 10:
            let levels = int(65...400)
            let deep = String(repeating: "[", count: levels) + String(repeating: "]", count: levels)
            return Case(bytes: Array(Self.render(nest(members, deep), spaced: false).utf8), verdict: .invalid, label: "\(levels)-level nesting")
        case 11:
            let levels = int(2...40)
            let deep = String(repeating: "[", count: levels) + "1" + String(repeating: "]", count: levels)
            return Case(bytes: Array(Self.render(nest(members, deep), spaced: false).utf8), verdict: .valid, label: "\(levels)-level nesting")
        case 12:
            let name = pick(["devcie_id", "Kind", "properties2", "payload", "event-time", "\(identifier())_x"])
            return Case(bytes: Array(Self.render(members + [(name, "1")], spaced: false).utf8), verdict: .invalid, label: "unknown field \(name)")
        case 13:
            return wrongType(members)
        case 14:
            // A 2 MB record: over the 1 MB request limit, so refused at enqueue.
            let big = "\"" + String(repeating: "z", count: 2 << 20) + "\""
            let kind = members.first { $0.0 == "kind" }!.1
            let field = kind == "\"message\"" ? "content" : kind == "\"measurement\"" ? "fragments" : "properties"
            let value = field == "fragments" ? "{\"c8y_Big\":{\"v\":\(big)}}" : field == "content" ? big : "{\"big\":\(big)}"
            return Case(bytes: Array(Self.render(members.map { $0.0 == field ? ($0.0, value) : $0 }, spaced: false).utf8),
                        verdict: .invalid, label: "2 MB record")
        case 15:
            // Garbage: random bytes (never 0x0A).
            return Case(bytes: (0..<int(1...300)).map { _ in randomByte() }, verdict: .oracle, label: "random bytes")
        case 16:
            return Case(bytes: Array(bytes.prefix(int(1...bytes.count - 1))), verdict: .invalid, label: "truncated")
        case 17:
            return Case(bytes: Self.withString(Array(pick(["\\ud800", "x\\udc00", "\\ud83d\\u0041"]).utf8), in: members),
                        verdict: .invalid, label: "lone surrogate escape")
        case 18:
            return Case(bytes: Array(pick(["[]", "null", "1", "\"property\"", "{}", "{\"kind\":\"nope\"}", "[{\"kind\":\"property\"}]"]).utf8),
                        verdict: .invalid, label: "not a record")
        default:
            return Case(bytes: mutate(bytes), verdict: .oracle, label: "mutated")
        }
    }

    /// Replaces one JSON-object field's value with `deep` wrapped in an object member.
    func nest(_ members: [(String, String)], _ deep: String) -> [(String, String)] {
        members.map { member in
            switch member.0 {
            case "properties", "content": return (member.0, "{\"deep\":\(deep)}")
            case "fragments": return (member.0, "{\"c8y_Deep\":{\"v\":\(deep)}}")
            default: return member
            }
        }
    }

    mutating func wrongType(_ members: [(String, String)]) -> Case {
        var changed = members
        let index = int(0...members.count - 1)
        let (key, _) = members[index]
        let replacement: String
        switch key {
        case "kind": replacement = pick(["1", "null", "\"Property\"", "[\"property\"]"])
        case "class": replacement = pick(["\"urgent\"", "1", "true"])
        case "properties": replacement = pick(["[1,2]", "\"{}\"", "87", "null"])
        case "fragments": replacement = pick(["[]", "{}", "{\"f\":1}", "{\"time\":{\"v\":1}}", "\"x\""])
        case "event_time", "time": replacement = pick(["\"yesterday\"", "1795317010555", "\"2026-11-22T03:10:10\"", "\"2026-13-40T99:00:00Z\""])
        case "content": replacement = pick(["", "   "])  // a missing value is a syntax error
        case "device_id", "gateway_id", "source": replacement = pick(["5", "\"bad id!\"", "\"\"", "\"\(String(repeating: "a", count: 129))\"", "null"])
        case "service_id", "name", "type": replacement = pick(["false", "\"\"", "\"tab\\there\"", "{}"])
        case "id": replacement = pick(["7", "\"\"", "\"nl\\nx\""])
        default: replacement = "null"
        }
        changed[index] = (key, replacement)
        return Case(bytes: Array(Self.render(changed, spaced: false).utf8), verdict: .invalid, label: "wrong type for \(key): \(replacement)")
    }

    mutating func randomByte() -> UInt8 {
        while true {
            let byte = UInt8(truncatingIfNeeded: random.next())
            if byte != 0x0A { return byte }
        }
    }

    /// Flips, inserts and deletes a few bytes.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        for _ in 0..<int(1...4) {
            guard !out.isEmpty else { break }
            let at = int(0...out.count - 1)
            switch int(0...3) {
            case 0:
                var flipped = out[at] ^ UInt8(1 << int(0...7))
                if flipped == 0x0A { flipped = 0x0B }
                out[at] = flipped
            case 1: out.insert(pick([0x22, 0x5C, 0x7B, 0x7D, 0x2C, 0x3A, 0x00, 0xFF, 0x20, 0x30, 0x5B]), at: at)
            case 2: out.remove(at: at)
            default: out.insert(randomByte(), at: at)
            }
        }
        return out
    }
}

extension LineFuzzer {
    /// The line with `inner` (raw bytes, between quotes) as a string value where any text is
    /// allowed: a member of properties, the message content, or a measurement fragment's value.
    static func withString(_ inner: [UInt8], in members: [(String, String)]) -> [UInt8] {
        let marker = "\"@@INNER@@\""
        let replaced = members.map { member -> (String, String) in
            switch member.0 {
            case "properties": return (member.0, "{\"s\":\(marker)}")
            case "content": return (member.0, marker)
            case "fragments": return (member.0, "{\"c8y_S\":{\"v\":\(marker)}}")
            default: return member
            }
        }
        let text = Array(render(replaced, spaced: false).utf8)
        let markerBytes = Array(marker.utf8)
        guard let at = (0...(text.count - markerBytes.count)).first(where: { Array(text[$0..<$0 + markerBytes.count]) == markerBytes }) else {
            return text
        }
        return Array(text[..<at]) + [UInt8(ascii: "\"")] + inner + [UInt8(ascii: "\"")] + Array(text[(at + markerBytes.count)...])
    }
}
