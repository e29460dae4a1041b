import Foundation
import TestSupport

/// `edgebuf run` with an `[ingest]` section on a free loopback port, in a fresh directory.
final class IngestDaemon: @unchecked Sendable {
    let directory = TemporaryDirectory("edgebuf-ingest")
    let port: Int
    let database: String
    let configPath: String
    private(set) var process: ChildProcess?
    private var starts = 0

    /// `ingest` is added to `[ingest]`; `extra` after it (other sections).
    init(ingest: String = "", extra: String = "", host: String = "127.0.0.1") throws {
        port = try freePort()
        database = directory.file("edgebuf.db")
        configPath = directory.file("edgebuf.toml")
        let text = "[ingest]\nlisten = \"\(host):\(port)\"\n\(ingest)\n\(extra)\n"
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Starts the daemon and waits until it accepts connections.
    @discardableResult
    func start() throws -> ChildProcess {
        starts += 1
        let child = try ChildProcess(edgebufBinary, ["run", "--config", configPath, "--db", database, "--log-level", "debug"],
                                     stdout: directory.file("run-\(starts).out"), stderr: directory.file("run-\(starts).err"))
        process = child
        let up = poll(timeout: .seconds(60)) { isListening(port: port) || !child.isRunning }
        guard up, child.isRunning else {
            throw TestFailure("edgebuf run did not start serving: \(child.stderrText.suffix(1500))")
        }
        return child
    }

    /// The outbox, one decoded record a line.
    func records() throws -> [JSONDict] {
        let result = try edgebuf(["outbox", "list", "--json", "--limit", "10000000", "--db", database])
        guard result.status == 0 else { throw TestFailure("outbox list failed: \(result.stderr)") }
        return try parseLines(result.stdout)
    }

    func curl(_ arguments: [String]) throws -> CommandResult {
        try run(try which("curl"), ["-sS", "--max-time", "60"] + arguments)
    }

    /// Runs a Python script with the port as its first argument.
    func python(_ script: String, _ arguments: [String] = [], name: String = "client.py") throws -> CommandResult {
        let path = directory.file(name)
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        return try run(try which("python3"), [path, String(port)] + arguments)
    }

    /// Everything the daemon wrote to stdout and stderr.
    var logs: String { (process?.stdoutText ?? "") + (process?.stderrText ?? "") }

    deinit { process?.kill9() }
}

/// The HTTP status line's code of each response curl printed with `-i` (100 Continue included).
func statusCodes(_ text: String) -> [Int] {
    text.replacingOccurrences(of: "\r", with: "").split(separator: "\n").compactMap { line in
        guard line.hasPrefix("HTTP/1.") else { return nil }
        let parts = line.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) : nil
    }
}
