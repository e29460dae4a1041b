import Foundation
import TOMLKit

/// A configuration problem: which file and key, why, what to do.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let file: String
    /// `section.key`, or empty for the whole file.
    public let key: String
    public let reason: String

    public init(file: String, key: String, reason: String) {
        self.file = file
        self.key = key
        self.reason = reason
    }

    public var description: String {
        key.isEmpty ? "config \(file): \(reason)" : "config \(file): \(key): \(reason)"
    }
}

/// A parsed TOML configuration file. Each module reads its own `[section]` through
/// `section(_:)`; `finish()` then refuses any key nobody read, naming it (a typo in a
/// limit or a TLS setting must not be ignored silently).
public final class ConfigDocument {
    public let file: String
    private let root: TOMLTable
    private var sections: [String: ConfigSection] = [:]

    /// Sections edgebuf knows. Others are refused by `finish()`.
    public static let knownSections = ["database", "uplink", "downlink", "inbox", "audit", "ingest", "log"]

    public init(file: String, text: String) throws {
        self.file = file
        if let problem = ConfigSection.unsafeForParser(text) {
            throw ConfigurationError(file: file, key: "", reason: "not valid TOML: \(problem)")
        }
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(file: file, key: "", reason: "not valid TOML: \(error.description) at line \(error.source.begin.line), column \(error.source.begin.column)")
        }
    }

    /// Reads and parses `path`.
    public convenience init(path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ConfigurationError(file: path, key: "", reason: "cannot be read (\(error.localizedDescription)); check the path given with --config")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: path, key: "", reason: "is not UTF-8 text")
        }
        try self.init(file: path, text: text)
    }

    /// An empty document (no file given).
    public static func empty() -> ConfigDocument {
        // swiftlint:disable:next force_try
        try! ConfigDocument(file: "(none)", text: "")
    }

    /// Whether the file has a `[name]` section (even an empty one).
    public func contains(_ name: String) -> Bool { root[name] != nil }

    /// The section `[name]`, empty when absent.
    public func section(_ name: String) throws -> ConfigSection {
        if let existing = sections[name] { return existing }
        let table: TOMLTable
        if let value = root[name] {
            guard let t = value.table else {
                throw ConfigurationError(file: file, key: name, reason: "must be a table ([\(name)])")
            }
            table = t
        } else {
            table = TOMLTable()
        }
        let section = ConfigSection(file: file, name: name, table: table)
        sections[name] = section
        return section
    }

    /// Refuses unknown sections and keys that no module read.
    public func finish() throws {
        for key in root.keys.sorted() {
            guard Self.knownSections.contains(key) else {
                throw ConfigurationError(file: file, key: key, reason: "unknown section; known sections are \(Self.knownSections.map { "[\($0)]" }.joined(separator: ", "))")
            }
            let section = try section(key)
            for name in section.table.keys.sorted() where !section.read.contains(name) {
                throw ConfigurationError(file: file, key: "\(key).\(name)", reason: "unknown key; see the configuration reference in the README")
            }
        }
    }
}

/// One `[section]` of the configuration. Getters return nil when the key is absent and
/// throw when it has the wrong type or an invalid value.
public final class ConfigSection {
    let file: String
    public let name: String
    let table: TOMLTable
    fileprivate(set) var read: Set<String> = []

    init(file: String, name: String, table: TOMLTable) {
        self.file = file
        self.name = name
        self.table = table
    }

    /// An error about `key` of this section.
    public func error(_ key: String, _ reason: String) -> ConfigurationError {
        ConfigurationError(file: file, key: "\(name).\(key)", reason: reason)
    }

    private func value(_ key: String) -> TOMLValueConvertible? {
        read.insert(key)
        return table[key]
    }

    public func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else { throw error(key, "must be a string (in quotes)") }
        return string
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard let bool = value.bool else { throw error(key, "must be true or false") }
        return bool
    }

    public func int(_ key: String, range: ClosedRange<Int64>) throws -> Int64? {
        guard let value = value(key) else { return nil }
        guard let int = value.int else { throw error(key, "must be a whole number") }
        guard range.contains(Int64(int)) else { throw error(key, "must be between \(range.lowerBound) and \(range.upperBound)") }
        return Int64(int)
    }

    public func double(_ key: String, range: ClosedRange<Double>) throws -> Double? {
        guard let value = value(key) else { return nil }
        guard let number = value.double ?? value.int.map(Double.init) else { throw error(key, "must be a number") }
        guard range.contains(number) else { throw error(key, "must be between \(range.lowerBound) and \(range.upperBound)") }
        return number
    }

    public func stringArray(_ key: String) throws -> [String]? {
        guard let value = value(key) else { return nil }
        if let single = value.string { return [single] }
        guard let array = value.array else { throw error(key, "must be a list of strings") }
        var result: [String] = []
        for item in array {
            guard let s = item.string else { throw error(key, "must be a list of strings") }
            result.append(s)
        }
        return result
    }

    /// A duration: a number of seconds, or a string with a unit (`500ms`, `30s`, `5m`, `2h`, `7d`).
    public func seconds(_ key: String, range: ClosedRange<Double>) throws -> Double? {
        guard let value = value(key) else { return nil }
        let seconds: Double
        if let n = value.double ?? value.int.map(Double.init) {
            seconds = n
        } else if let text = value.string, let parsed = Self.parseDuration(text) {
            seconds = parsed
        } else {
            throw error(key, "must be a duration: seconds as a number, or a string like \"30s\", \"5m\", \"2h\", \"7d\"")
        }
        guard range.contains(seconds) else { throw error(key, "must be between \(range.lowerBound) s and \(range.upperBound) s") }
        return seconds
    }

    /// A size: bytes as a number, or a string with a unit (`512KB`, `64MB`, `1GB`; powers of 1024).
    public func bytes(_ key: String, range: ClosedRange<Int64>) throws -> Int64? {
        guard let value = value(key) else { return nil }
        let bytes: Int64
        if let n = value.int {
            bytes = Int64(n)
        } else if let text = value.string, let parsed = Self.parseBytes(text) {
            bytes = parsed
        } else {
            throw error(key, "must be a size: bytes as a number, or a string like \"512KB\", \"64MB\", \"1GB\"")
        }
        guard range.contains(bytes) else { throw error(key, "must be between \(range.lowerBound) and \(range.upperBound) bytes") }
        return bytes
    }

    /// A path to a file that holds a secret, or the secret itself: never both.
    public func secret(_ key: String) throws -> Secret? {
        let inline = try string(key)
        let file = try string("\(key)_file")
        switch (inline, file) {
        case (nil, nil): return nil
        case (let value?, nil): return Secret(value)
        case (nil, let path?):
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                return Secret(text.trimmingCharacters(in: .newlines))
            } catch {
                throw self.error("\(key)_file", "cannot be read (\(path)); check the path and its permissions")
            }
        case (_?, _?):
            throw self.error(key, "give either \(key) or \(key)_file, not both")
        }
    }

    /// What the TOML parser (toml++ inside TOMLKit) would mishandle: it reads the text as a C
    /// string, so a NUL byte silently ends the file there; and a table header whose name starts
    /// with a character that cannot start a key (`[,x]`, `[.x]`, `[=]`), or that has no name
    /// on its line (`[` then a line break), trips an assertion that aborts the process. Both are refused here, naming the line.
    static func unsafeForParser(_ text: String) -> String? {
        var inMultiline: String?  // the delimiter of the multi-line string we are in
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            if line.contains("\u{0}") { return "a NUL byte at line \(number); the file must be text" }
            if let delimiter = inMultiline {
                if line.components(separatedBy: delimiter).count % 2 == 0 { inMultiline = nil }
                continue
            }
            for delimiter in ["\"\"\"", "'''"] where line.components(separatedBy: delimiter).count % 2 == 0 {
                inMultiline = delimiter
            }
            var rest = line.drop { $0 == " " || $0 == "\t" }
            guard rest.first == "[" else { continue }
            rest = rest.dropFirst()
            if rest.first == "[" { rest = rest.dropFirst() }
            rest = rest.drop { $0 == " " || $0 == "\t" }
            guard let first = rest.first else {
                // `[` alone on its line: the parser would read the name from the next line and
                // trip the same assertion.
                return "table header at line \(number) has no name on its line: give a section name, e.g. [database]"
            }
            let startsAKey = first.isASCII && (first.isLetter || first.isNumber) || "_-\"'] ".contains(first)
            if !startsAKey {
                return "table header at line \(number) starts with '\(first)': give a section name, e.g. [database]"
            }
        }
        return nil
    }

    static func parseDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for (unit, factor) in units where trimmed.hasSuffix(unit) {
            if let n = Double(trimmed.dropLast(unit.count).trimmingCharacters(in: .whitespaces)), n >= 0 { return n * factor }
        }
        return nil
    }

    static func parseBytes(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("B", 1)]
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        for (unit, factor) in units where trimmed.hasSuffix(unit) {
            // Finite and within Int64 (1e300KB or infGB must be an error, not a trap).
            if let n = Double(trimmed.dropLast(unit.count).trimmingCharacters(in: .whitespaces)), n >= 0, n.isFinite,
               n * Double(factor) < 9.0e18 {
                return Int64(n * Double(factor))
            }
        }
        return Int64(trimmed)
    }
}

/// A secret value (password, device secret). Its description never shows the value, so it
/// cannot leak through a log line, an error or `status`.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself: use it only to build a request.
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
