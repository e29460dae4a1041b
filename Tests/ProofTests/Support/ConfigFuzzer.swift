import TestSupport

/// Seeded generator of configuration files: valid documents with random keys of `[database]`
/// and `[uplink]`, broken ones whose error is known (the message must name the key or say
/// the file is not valid TOML), and random byte damage (any verdict, but never a crash).
struct ConfigFuzzer {
    struct Case {
        let bytes: [UInt8]
        /// nil: valid or not, edgebuf decides (random damage). Otherwise the file is wrong and
        /// the message must contain one of these.
        let mustName: [String]?
        let label: String
    }

    let seed: UInt64
    private var random: SplitMix64

    init(seed: UInt64) {
        self.seed = seed
        random = SplitMix64(seed: seed)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...items.count - 1)] }
    mutating func chance(_ percent: Int) -> Bool { int(1...100) <= percent }

    /// A valid document: section -> [(key, raw TOML value)].
    mutating func validSections() -> [(String, [(String, String)])] {
        var database: [(String, String)] = []
        let options: [(String, [String])] = [
            ("synchronous", ["\"full\"", "\"normal\""]),
            ("busy_timeout", ["\"500ms\"", "10", "\"2m\"", "0.25"]),
            ("check_on_open", ["true", "false"]),
            ("max_bytes", ["\"512MB\"", "1048576", "\"64KB\"", "\"1GB\""]),
            ("max_records", ["1", "5000000", "12345"]),
            ("max_age", ["\"7d\"", "3600", "\"90m\""]),
            ("when_full", ["\"reject-new\"", "\"drop-oldest\""]),
            ("max_file_bytes", ["\"1GB\"", "\"64MB\"", "134217728"]),
        ]
        for (key, values) in options where chance(50) { database.append((key, pick(values))) }
        var uplink: [(String, String)] = []
        if chance(60) {
            if chance(50) {
                uplink = [("platform", "\"iotda\""), ("device_id", "\"gw-1\""), ("secret", "\"s3cr3t\"")]
                if chance(30) { uplink.append(("sign_type", pick(["0", "1"]))) }
                if chance(30) { uplink.append(("max_children_per_request", "50")) }
            } else {
                uplink = [("platform", "\"cumulocity\""), ("username", "\"t1/alice\""), ("password", "\"pw\"")]
            }
            uplink.append(("url", "\"https://127.0.0.1:1\""))
            let more: [(String, [String])] = [
                ("backoff_initial", ["\"1s\"", "0.5"]), ("backoff_max", ["\"5m\"", "300"]),
                ("request_timeout", ["60", "\"30s\""]), ("connect_timeout", ["10", "\"500ms\""]),
                ("max_body_bytes", ["1048576", "\"512KB\""]), ("unauthorized_backoff", ["\"15m\""]),
                ("max_requests_per_second", ["0", "2.5", "100"]), ("max_bytes_per_second", ["\"1MB\"", "0"]),
                ("pinned_public_keys", ["[\"sha256//AAAA\"]"]),
            ]
            for (key, values) in more where chance(40) { uplink.append((key, pick(values))) }
        }
        var sections: [(String, [(String, String)])] = []
        if !database.isEmpty || chance(50) { sections.append(("database", database)) }
        if !uplink.isEmpty { sections.append(("uplink", uplink)) }
        return sections
    }

    static func render(_ sections: [(String, [(String, String)])]) -> String {
        sections.map { name, keys in "[\(name)]\n" + keys.map { "\($0.0) = \($0.1)\n" }.joined() }.joined(separator: "\n")
    }

    mutating func next() -> Case {
        var sections = validSections()
        let text = Self.render(sections)
        func with(_ section: String, _ key: String, _ value: String) -> [UInt8] {
            if let index = sections.firstIndex(where: { $0.0 == section }) {
                sections[index].1.removeAll { $0.0 == key }
                sections[index].1.append((key, value))
            } else {
                sections.append((section, [(key, value)]))
            }
            return Array(Self.render(sections).utf8)
        }
        switch int(0...27) {
        case 0...3:
            return Case(bytes: Array(text.utf8), mustName: nil, label: "valid")
        case 4:
            let key = pick(["max_byte", "Max_bytes", "sync", "maxRecords"])
            return Case(bytes: with("database", key, "5"), mustName: ["database.\(key)"], label: "unknown key")
        case 5:
            let name = pick(["databse", "Uplink", "network", "database.extra"])
            return Case(bytes: Array((text + "\n[\(name)]\nx = 1\n").utf8),
                        mustName: name.contains(".") ? ["database.extra"] : [name], label: "unknown section")
        case 6:
            let (key, value) = pick([("max_records", "\"many\""), ("check_on_open", "\"yes\""), ("busy_timeout", "true"),
                                     ("max_bytes", "[1]"), ("synchronous", "1"), ("when_full", "\"sometimes\""),
                                     ("synchronous", "\"sometimes\""), ("max_age", "\"-5s\""), ("busy_timeout", "\"5 fortnights\"")])
            return Case(bytes: with("database", key, value), mustName: ["database.\(key)"], label: "wrong value \(key) = \(value)")
        case 7:
            // Sizes and durations far beyond any range, including ones that overflow a 64-bit
            // integer only after the unit is applied.
            let (key, value) = pick([("max_bytes", "\"1e300KB\""), ("max_file_bytes", "\"infGB\""), ("max_bytes", "\"9e18GB\""),
                                     ("max_bytes", "\"99999999999999999999B\""), ("max_file_bytes", "\"1e30MB\"")])
            return Case(bytes: with("database", key, value), mustName: ["database.\(key)"], label: "huge size \(key) = \(value)")
        case 8:
            let (key, value) = pick([("busy_timeout", "\"1e300d\""), ("max_age", "\"infs\""), ("busy_timeout", "inf"),
                                     ("busy_timeout", "nan"), ("max_age", "-1"), ("max_records", "0"), ("max_records", "-9223372036854775808")])
            return Case(bytes: with("database", key, value), mustName: ["database.\(key)"], label: "out of range \(key) = \(value)")
        case 9:
            let digits = String(repeating: "9", count: int(20...400))
            return Case(bytes: with("database", "max_records", digits), mustName: ["not valid TOML", "database.max_records"], label: "\(digits.count)-digit integer")
        case 10:
            return Case(bytes: with("database", "max_records", "1e400"), mustName: ["not valid TOML", "database.max_records"], label: "1e400")
        case 11:
            return Case(bytes: Array("database = 5\n".utf8), mustName: ["database: must be a table"], label: "section as a value")
        case 12:
            let bytes = Array("[database]\nsynchronous = \"f".utf8) + [pick([0xFF, 0xC0, 0x80, 0xED])] + Array("ull\"\n".utf8)
            return Case(bytes: bytes, mustName: ["is not UTF-8"], label: "invalid UTF-8")
        case 13:
            return Case(bytes: Array(text.utf8) + [0x00] + Array("\n".utf8), mustName: ["not valid TOML"], label: "NUL byte")
        case 14:
            let levels = int(300...20_000)
            return Case(bytes: with("database", "x", String(repeating: "[", count: levels) + String(repeating: "]", count: levels)),
                        mustName: ["not valid TOML", "database.x"], label: "\(levels)-level array")
        case 15:
            let levels = int(300...5_000)
            return Case(bytes: with("database", "x", String(repeating: "{a=", count: levels) + "1" + String(repeating: "}", count: levels)),
                        mustName: ["not valid TOML", "database.x"], label: "\(levels)-level inline table")
        case 16:
            let document = pick(["[database]\nwhen_full = \"reject-new\"\nwhen_full = \"drop-oldest\"\n", "[database]\n[uplink]\n[database]\n"])
            return Case(bytes: Array(document.utf8), mustName: ["not valid TOML"], label: "duplicate key or table")
        case 17:
            let big = String(repeating: "u", count: 2 << 20)
            return Case(bytes: with("database", "note", "\"\(big)\""), mustName: ["database.note"], label: "2 MB value")
        case 18:
            return Case(bytes: Array("[uplink]\nplatform = \"iotda\"\nurl = \"https://127.0.0.1:1\"\nsecret = \"s\"\n".utf8),
                        mustName: ["uplink.device_id"], label: "iotda without device_id")
        case 19:
            return Case(bytes: Array("[uplink]\nplatform = \"iotda\"\nurl = \"https://127.0.0.1:1\"\ndevice_id = \"d\"\nsecret_file = \"/nonexistent/secret\"\n".utf8),
                        mustName: ["uplink.secret_file"], label: "missing secret_file")
        case 20:
            return Case(bytes: Array("[uplink]\nplatform = \"cumulocity\"\nurl = \"https://127.0.0.1:1\"\nusername = \"t/u\"\npassword = \"a\"\npassword_file = \"/etc/hostname\"\n".utf8),
                        mustName: ["uplink.password"], label: "password and password_file")
        case 21:
            let (key, value) = pick([("max_requests_per_second", "nan"), ("connect_timeout", "inf"), ("sign_type", "2"),
                                     ("max_bytes_per_second", "\"1e30GB\""), ("url", "\"http://127.0.0.1:1\""), ("platform", "\"aws\""),
                                     ("max_body_bytes", "\"infKB\""), ("backoff_max", "-inf")])
            return Case(bytes: with("uplink", key, value), mustName: ["uplink.\(key)"], label: "uplink \(key) = \(value)")
        case 22:
            return Case(bytes: Array((text + "\n[log]\nlevel = \"debug\"\n").utf8), mustName: ["log.level"], label: "unknown [log] key")
        case 23:
            var bytes = Array(text.utf8)
            guard !bytes.isEmpty else { return Case(bytes: [], mustName: nil, label: "empty") }
            bytes = Array(bytes.prefix(int(0...bytes.count - 1)))
            return Case(bytes: bytes, mustName: nil, label: "truncated")
        default:
            return Case(bytes: mutate(Array(text.utf8)), mustName: nil, label: "mutated")
        }
    }

    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        for _ in 0..<int(1...6) {
            guard !out.isEmpty else { break }
            let at = int(0...out.count - 1)
            switch int(0...3) {
            case 0: out[at] ^= UInt8(1 << int(0...7))
            case 1: out.insert(pick(Array("=\"[]{}.,#'\\\n 0e-".utf8) + [0x00, 0xFF]), at: at)
            case 2: out.remove(at: at)
            default: out.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
            }
        }
        return out
    }
}
