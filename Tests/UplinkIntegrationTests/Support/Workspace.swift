import EdgeStore
import Foundation
import TestSupport

/// One edgebuf installation under test: a fresh database and a configuration file in a
/// temporary directory, and the built binary to drive it.
final class Workspace: @unchecked Sendable {
    let directory = TemporaryDirectory("edgebuf-it")
    var db: String { directory.file("edgebuf.db") }
    var config: String { directory.file("edgebuf.toml") }

    /// How edgebuf reaches the platform.
    struct Uplink {
        var platform = "iotda"
        var url: String
        var caFile: String?
        var proxy: String?
        var deviceID = "gw-1"
        var secret = Simulator.devices["gw-1"]!
        var username = "t1/alice"
        var password = Simulator.cumulocityUsers["t1/alice"]!
        /// Other `[uplink]` keys, as raw TOML values.
        var extra: [String: String] = [:]

        init(platform: String = "iotda", simulator: Simulator, extra: [String: String] = [:]) {
            self.platform = platform
            url = simulator.url
            caFile = simulator.caFile
            self.extra = extra
        }

        init(platform: String = "iotda", url: String, caFile: String?, extra: [String: String] = [:]) {
            self.platform = platform
            self.url = url
            self.caFile = caFile
            self.extra = extra
        }
    }

    init(_ uplink: Uplink) throws {
        try write(uplink)
    }

    /// (Re)writes the configuration file. Retries are fast: backoff 50 ms to 500 ms.
    func write(_ uplink: Uplink) throws {
        func quoted(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var keys: [String: String] = [
            "platform": quoted(uplink.platform),
            "url": quoted(uplink.url),
            "backoff_initial": quoted("50ms"),
            "backoff_max": quoted("500ms"),
            "request_timeout": "20",
            "connect_timeout": "5",
        ]
        if uplink.platform == "iotda" {
            keys["device_id"] = quoted(uplink.deviceID)
            keys["secret"] = quoted(uplink.secret)
        } else {
            keys["username"] = quoted(uplink.username)
            keys["password"] = quoted(uplink.password)
        }
        if uplink.url.hasPrefix("http://") { keys["allow_plain_http"] = "true" }
        if let ca = uplink.caFile { keys["ca_file"] = quoted(ca) }
        if let proxy = uplink.proxy { keys["proxy"] = quoted(proxy) }
        for (key, value) in uplink.extra { keys[key] = value }
        let text = "[uplink]\n" + keys.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
    }

    // MARK: Commands

    /// Runs `edgebuf --db DB --config CONFIG arguments...`.
    func eb(_ arguments: [String], stdin: String? = nil) throws -> CommandResult {
        try edgebuf(["--db", db, "--config", config] + arguments, stdin: stdin)
    }

    /// Enqueues JSON lines; every line must be stored.
    func enqueue(_ lines: [String]) throws {
        let result = try eb(["enqueue", "--jsonl"], stdin: lines.joined(separator: "\n") + "\n")
        guard result.status == 0 else { throw TestFailure("enqueue failed (\(result.status)): \(result.stderr.prefix(2000))") }
    }

    /// `flush --json`; returns the result and its wall time. A flush still running 5 s past
    /// its own `--timeout` is killed (status 137), so a hanging flush fails the test instead
    /// of stalling the suite.
    func flush(timeout: Double = 60, extra: [String] = []) throws -> (result: Finished, seconds: Double) {
        flushCount += 1
        let tag = "flush-\(flushCount)"
        let started = ContinuousClock.now
        let child = try ChildProcess(edgebufBinary, ["--db", db, "--config", config, "flush", "--timeout", String(timeout), "--json"] + extra,
                                     stdout: directory.file("\(tag).out"), stderr: directory.file("\(tag).err"))
        var status = child.wait(timeout: .milliseconds(Int64((timeout + 5) * 1000)))
        if status == nil {
            child.kill9()
            status = child.exitStatus
        }
        let elapsed = ContinuousClock.now - started
        let result = Finished(status: status ?? -1, stdout: child.stdoutText, stderr: child.stderrText)
        return (result, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
    private var flushCount = 0

    /// A finished (or killed) command.
    struct Finished {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Starts `edgebuf run`.
    func startRun(logLevel: String = "notice", tag: String = "run") throws -> ChildProcess {
        try ChildProcess(edgebufBinary, ["--db", db, "--config", config, "--log-level", logLevel, "run"],
                         stdout: directory.file("\(tag).out"), stderr: directory.file("\(tag).err"))
    }

    // MARK: Reading the database through the CLI

    /// `outbox list --json`: the records still waiting.
    func outbox() throws -> [JSONDict] {
        let result = try eb(["outbox", "list", "--json", "--limit", "1000000"])
        guard result.status == 0 else { throw TestFailure("outbox list: \(result.stderr)") }
        return try parseLines(result.stdout)
    }

    func deadLetters() throws -> [JSONDict] {
        let result = try eb(["dead-letters", "list", "--json", "--limit", "1000000"])
        guard result.status == 0 else { throw TestFailure("dead-letters list: \(result.stderr)") }
        return try parseLines(result.stdout)
    }

    /// `audit list --json`.
    func audit() throws -> [JSONDict] {
        let result = try eb(["audit", "list", "--json", "--limit", "10000000"])
        guard result.status == 0 else { throw TestFailure("audit list: \(result.stderr)") }
        return try parseLines(result.stdout)
    }

    /// The details of the audit rows with event "request", oldest first (each with its `at`).
    func auditRequests() throws -> [JSONDict] {
        try audit().filter { $0.string("event") == "request" }.map { row in
            var detail = row.object("detail") ?? [:]
            detail["at"] = row["at"]
            return detail
        }
    }

    /// `audit verify --json`: whether the chain is intact (and the exit code agrees).
    func auditIntact() throws -> Bool {
        let result = try eb(["audit", "verify", "--json"])
        let answer = try parseObject(result.stdout)
        return result.status == 0 && answer.bool("intact") == true
    }

    /// The uplink's last saved state (runtime_state), read straight from the file.
    func uplinkState() throws -> JSONDict? {
        let connection = try Database.open(path: db)
        let statement = try connection.prepare("SELECT state FROM runtime_state WHERE component = 'uplink'")
        guard try statement.step() else { return nil }
        return try parseObject(statement.text(0))
    }
}

// MARK: Records

/// JSON lines for enqueue, each carrying a unique `seq` (in properties, message content or a
/// measurement fragment) so the test can find it among what the simulator accepted.
enum Line {
    static func property(seq: Int, device: String = "gw-1", service: String = "S", eventTime: String? = nil,
                         extra: JSONDict = [:], recordClass: String? = nil) -> String {
        var properties: JSONDict = ["seq": seq]
        for (key, value) in extra { properties[key] = value }
        var line: JSONDict = ["kind": "property", "device_id": device, "service_id": service, "properties": properties]
        if let eventTime { line["event_time"] = eventTime }
        if let recordClass { line["class"] = recordClass }
        return jsonText(line)
    }

    static func child(seq: Int, gateway: String = "gw-1", child: String, service: String = "T", eventTime: String? = nil,
                      extra: JSONDict = [:]) -> String {
        var properties: JSONDict = ["seq": seq]
        for (key, value) in extra { properties[key] = value }
        var line: JSONDict = ["kind": "child_property", "gateway_id": gateway, "device_id": child, "service_id": service, "properties": properties]
        if let eventTime { line["event_time"] = eventTime }
        return jsonText(line)
    }

    static func message(seq: Int, device: String = "gw-1", name: String = "note", id: String? = nil, extra: JSONDict = [:]) -> String {
        var content: JSONDict = ["seq": seq]
        for (key, value) in extra { content[key] = value }
        var line: JSONDict = ["kind": "message", "device_id": device, "name": name, "content": content]
        if let id { line["id"] = id }
        return jsonText(line)
    }

    static func measurement(seq: Int, source: String = "4711", type: String = "c8y_T", time: String? = nil, extra: JSONDict = [:]) -> String {
        var fragments: JSONDict = ["c8y_Seq": ["n": ["value": seq]]]
        for (key, value) in extra { fragments[key] = value }
        var line: JSONDict = ["kind": "measurement", "source": source, "type": type, "fragments": fragments]
        if let time { line["time"] = time }
        return jsonText(line)
    }
}

/// The `seq` an accepted record carries (properties, message content, measurement fragment).
func seqOf(_ record: JSONDict) -> Int? {
    if let properties = record.object("properties") { return properties.int("seq") }
    if let content = record.object("content") { return content.int("seq") }
    if let fragments = record.object("fragments") { return fragments.object("c8y_Seq")?.object("n")?.int("value") }
    return nil
}

/// How many times each seq was accepted.
func acceptedCounts(_ records: [JSONDict]) -> [Int: Int] {
    var counts: [Int: Int] = [:]
    for record in records { if let seq = seqOf(record) { counts[seq, default: 0] += 1 } }
    return counts
}
