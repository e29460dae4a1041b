import EdgeStore
import Foundation
import TestSupport

/// One edgebuf installation that receives: a fresh database and a `[downlink]` configuration
/// in a temporary directory, the daemon, and readers for the inbox, status and audit.
final class Receiver: @unchecked Sendable {
    let directory = TemporaryDirectory("edgebuf-dl")
    var db: String { directory.file("edgebuf.db") }
    var config: String { directory.file("edgebuf.toml") }
    private var runs = 0
    /// The pid of the daemon started last: state rows of an earlier (killed) one do not count.
    private var daemonPID: Int?

    /// `[downlink]` keys as raw TOML values; `url` and `channels` are required.
    init(url: String, channels: [String] = ["/operations/42"], username: String? = "t1/dev", password: String? = "pw-dev",
         extra: [String: String] = [:]) throws {
        func quoted(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var keys: [String: String] = [
            "url": quoted(url),
            "channels": "[" + channels.map(quoted).joined(separator: ", ") + "]",
            "backoff_initial": quoted("100ms"),
            "backoff_max": quoted("1s"),
            "credentials_backoff": quoted("30s"),
            "poll_deadline_margin": quoted("3s"),
        ]
        if let username { keys["username"] = quoted(username) }
        if let password { keys["password"] = quoted(password) }
        if url.hasPrefix("http://") { keys["allow_plain_http"] = "true" }
        for (key, value) in extra { keys[key] = value }
        let text = "[downlink]\n" + keys.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
    }

    /// Starts `edgebuf run` (optionally wrapped, e.g. by `ip netns exec NS`).
    func start(logLevel: String = "info", wrapper: [String] = []) throws -> ChildProcess {
        runs += 1
        let arguments = ["--db", db, "--config", config, "--log-level", logLevel, "run"]
        let (executable, rest) = wrapper.isEmpty ? (edgebufBinary, arguments) : (wrapper[0], Array(wrapper.dropFirst()) + [edgebufBinary] + arguments)
        let child = try ChildProcess(executable, rest, stdout: directory.file("run-\(runs).out"), stderr: directory.file("run-\(runs).err"))
        daemonPID = Int(child.pid)
        return child
    }

    func eb(_ arguments: [String]) throws -> CommandResult {
        try edgebuf(["--db", db, "--config", config] + arguments)
    }

    /// `inbox list --json`.
    func inbox() throws -> [JSONDict] {
        let result = try eb(["inbox", "list", "--json", "--limit", "1000000"])
        guard result.status == 0 else { throw TestFailure("inbox list: \(result.stderr)") }
        return try parseLines(result.stdout)
    }

    /// The notifications (not the gap markers).
    func notifications() throws -> [JSONDict] {
        try inbox().filter { $0.string("kind") == "notification" }
    }

    func gaps() throws -> [JSONDict] {
        try inbox().filter { $0.string("kind") == "gap" }
    }

    /// The `n` of each stored notification's data (bare, or in Cumulocity's
    /// `{"realtimeAction", "data"}` wrapper), in inbox order.
    func numbers() throws -> [Int] {
        try notifications().compactMap { $0.object("data")?.int("n") ?? $0.object("data")?.object("data")?.int("n") }
    }

    /// The downlink's last saved state, read straight from the file.
    func state() throws -> JSONDict? {
        guard FileManager.default.fileExists(atPath: db) else { return nil }
        let connection = try Database.open(path: db)
        let statement = try connection.prepare("SELECT state FROM runtime_state WHERE component = 'downlink'")
        guard try statement.step() else { return nil }
        return try parseObject(statement.text(0))
    }

    /// Waits until the daemon started last reports `phase`.
    @discardableResult
    func waitFor(phase: String, timeout: Duration = .seconds(30)) throws -> Bool {
        try poll(timeout: timeout, interval: .milliseconds(50)) {
            guard let state = try? state() else { return false }
            return state.string("phase") == phase && (daemonPID == nil || state.int("pid") == daemonPID)
        }
    }

    /// Waits until the inbox holds `count` notifications; returns whether it did.
    @discardableResult
    func waitFor(notifications count: Int, timeout: Duration = .seconds(30)) throws -> Bool {
        try poll(timeout: timeout, interval: .milliseconds(100)) { (try? notifications().count) ?? 0 >= count }
    }

    func audit() throws -> [JSONDict] {
        let result = try eb(["audit", "list", "--json", "--limit", "10000000"])
        guard result.status == 0 else { throw TestFailure("audit list: \(result.stderr)") }
        return try parseLines(result.stdout)
    }

    func auditIntact() throws -> Bool {
        let result = try eb(["audit", "verify", "--json"])
        let answer = try parseObject(result.stdout)
        return result.status == 0 && answer.bool("intact") == true
    }
}
