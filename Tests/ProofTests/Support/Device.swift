import EdgeStore
import Foundation
import TestSupport

/// One edgebuf installation under attack: a database and a TOML configuration in a fresh
/// temporary directory, driven only through the built binary.
final class Device: @unchecked Sendable {
    let directory: TemporaryDirectory
    /// The database path (by default `edgebuf.db` in the directory).
    let db: String
    var config: String { directory.file("edgebuf.toml") }
    /// The configuration: section -> key -> raw TOML value (strings already quoted).
    var sections: [String: [String: String]] = [:]
    /// What `eb` and `startRun` run edgebuf through (e.g. `nsenter` into the mount namespace
    /// the database lives in); nothing by default.
    var launcher: [String] = []

    init(label: String = "edgebuf-proof", databaseName: String = "edgebuf.db") {
        directory = TemporaryDirectory(label)
        db = directory.file(databaseName)
    }

    /// A TOML basic string.
    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// `[uplink]` for the simulator: IoTDA as gw-1 (or Cumulocity as t1/alice), fast retries
    /// (backoff 50 ms to 500 ms), `extra` raw keys on top.
    func useSimulator(_ simulator: Simulator, platform: String = "iotda", extra: [String: String] = [:]) throws {
        var keys: [String: String] = [
            "platform": Self.quoted(platform),
            "url": Self.quoted(simulator.url),
            "backoff_initial": Self.quoted("50ms"),
            "backoff_max": Self.quoted("500ms"),
            "request_timeout": "20",
            "connect_timeout": "5",
        ]
        if platform == "iotda" {
            keys["device_id"] = Self.quoted("gw-1")
            keys["secret"] = Self.quoted(Simulator.devices["gw-1"]!)
        } else {
            let user = Simulator.cumulocityUsers.first!
            keys["username"] = Self.quoted(user.key)
            keys["password"] = Self.quoted(user.value)
        }
        if simulator.url.hasPrefix("http://") { keys["allow_plain_http"] = "true" }
        if let ca = simulator.caFile { keys["ca_file"] = Self.quoted(ca) }
        for (key, value) in extra { keys[key] = value }
        sections["uplink"] = keys
        try writeConfig()
    }

    func writeConfig() throws {
        var text = ""
        for (name, keys) in sections.sorted(by: { $0.key < $1.key }) {
            text += "[\(name)]\n"
            for (key, value) in keys.sorted(by: { $0.key < $1.key }) { text += "\(key) = \(value)\n" }
            text += "\n"
        }
        try text.write(toFile: config, atomically: true, encoding: .utf8)
    }

    // MARK: Commands

    /// `edgebuf --db DB --config CONFIG arguments...`, bounded (a hang fails as a timeout).
    func eb(_ arguments: [String], stdin: [UInt8] = [], environment: [String: String] = [:],
            timeout: Duration = .seconds(60)) throws -> BoundedResult {
        let arguments = ["--db", db, "--config", config] + arguments
        if launcher.isEmpty {
            return try edgebufBounded(arguments, stdin: stdin, environment: environment, timeout: timeout)
        }
        return try runBounded(launcher[0], Array(launcher.dropFirst()) + [edgebufBinary] + arguments, stdin: stdin,
                              environment: environment, timeout: timeout)
    }

    /// `eb` that must exit 0; its stdout.
    @discardableResult
    func ebOK(_ arguments: [String], stdin: [UInt8] = []) throws -> String {
        let result = try eb(arguments, stdin: stdin)
        guard result.exitCode == 0 else {
            throw TestFailure("edgebuf \(arguments.joined(separator: " ")): \(result.summary): \(result.stderrText.suffix(2000))")
        }
        return result.stdoutText
    }

    /// Enqueues JSON lines with `--ack`; all must be stored. Returns the ids in line order.
    @discardableResult
    func enqueue(_ lines: [String]) throws -> [Int64] {
        let output = try ebOK(["enqueue", "--jsonl", "--ack"], stdin: Array((lines.joined(separator: "\n") + "\n").utf8))
        return try Acks.parse(output).map(\.id)
    }

    /// Starts `edgebuf run` (through `launcher`, e.g. faketime or setpriv, when given).
    func startRun(logLevel: String = "notice", tag: String = "run", launcher: [String]? = nil,
                  environment: [String: String] = [:]) throws -> ChildProcess {
        let launcher = launcher ?? self.launcher
        let arguments = ["--db", db, "--config", config, "--log-level", logLevel, "run"]
        if launcher.isEmpty {
            return try ChildProcess(edgebufBinary, arguments, stdout: directory.file("\(tag).out"),
                                    stderr: directory.file("\(tag).err"), environment: environment)
        }
        return try ChildProcess(launcher[0], Array(launcher.dropFirst()) + [edgebufBinary] + arguments,
                                stdout: directory.file("\(tag).out"), stderr: directory.file("\(tag).err"),
                                environment: environment)
    }

    // MARK: Reading through the CLI

    /// `outbox list --json`: the records still waiting, as raw lines.
    func outboxLines() throws -> [String] {
        try ebOK(["outbox", "list", "--json", "--limit", "10000000"]).split(separator: "\n").map(String.init)
    }

    func outbox() throws -> [JSONDict] { try outboxLines().map { try parseObject($0) } }

    /// Whether the outbox can be read and is empty (false when it cannot be read).
    var outboxIsEmpty: Bool { (try? outboxLines())?.isEmpty ?? false }

    func deadLetters() throws -> [JSONDict] {
        try parseLines(try ebOK(["dead-letters", "list", "--json", "--limit", "10000000"]))
    }

    func audit() throws -> [JSONDict] {
        try parseLines(try ebOK(["audit", "list", "--json", "--limit", "10000000"]))
    }

    /// `audit verify --json` says intact and exits 0.
    func auditIntact() throws -> Bool {
        let result = try eb(["audit", "verify", "--json"])
        return result.exitCode == 0 && (try? parseObject(result.stdoutText))?.bool("intact") == true
    }
}

/// `{"line":N,"id":ID}` acknowledgements of `enqueue --jsonl --ack`.
enum Acks {
    struct Ack: Hashable {
        let line: Int
        let id: Int64
    }

    /// Every complete acknowledgement line (a line cut off by a kill is ignored).
    static func parse(_ text: String) throws -> [Ack] {
        var acks: [Ack] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let object = try? parseObject(String(line)), let number = object.int("line"),
                  let id = (object["id"] as? NSNumber)?.int64Value else {
                throw TestFailure("not an acknowledgement: \(line.prefix(200))")
            }
            acks.append(Ack(line: number, id: id))
        }
        return acks
    }
}

/// JSON lines that carry a unique `seq`, so a test can find each among what the simulator
/// accepted.
enum Records {
    static func property(_ seq: Int, device: String = "gw-1", eventTime: String? = nil, pad: Int = 0) -> String {
        var properties: JSONDict = ["seq": seq]
        if pad > 0 { properties["pad"] = String(repeating: "p", count: pad) }
        var line: JSONDict = ["kind": "property", "device_id": device, "service_id": "S", "properties": properties]
        if let eventTime { line["event_time"] = eventTime }
        return jsonText(line)
    }

    static func message(_ seq: Int, device: String = "gw-1") -> String {
        jsonText(["kind": "message", "device_id": device, "name": "note", "content": ["seq": seq]] as JSONDict)
    }

    static func measurement(_ seq: Int, source: String = "4711") -> String {
        jsonText(["kind": "measurement", "source": source, "type": "c8y_T", "fragments": ["c8y_Seq": ["n": ["value": seq]]]] as JSONDict)
    }

    /// The seq of an accepted (simulator) record or of a stored payload.
    static func seq(_ record: JSONDict) -> Int? {
        if let properties = record.object("properties") { return properties.int("seq") }
        if let content = record.object("content") { return content.int("seq") }
        let fragments = record.object("fragments") ?? record
        return fragments.object("c8y_Seq")?.object("n")?.int("value")
    }

    /// The seq of each record of `outbox list --json` / `dead-letters list --json`.
    static func seqs(ofStored records: [JSONDict]) -> [Int] {
        records.compactMap { $0.object("payload").flatMap(seq) }
    }
}

/// Seconds as a Double, for messages.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The bytes of a file, or nil when it does not exist.
func fileBytes(_ path: String) -> [UInt8]? {
    FileManager.default.contents(atPath: path).map { [UInt8]($0) }
}
