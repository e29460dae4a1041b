import Foundation
import TestSupport

/// A configuration file for `edgebuf doctor`, written from raw TOML values per section.
final class DoctorConfig: @unchecked Sendable {
    let directory = TemporaryDirectory("edgebuf-doctor")
    var path: String { directory.file("edgebuf.toml") }

    init(_ sections: [String: [String: String]]) throws {
        var text = ""
        for (section, keys) in sections.sorted(by: { $0.key < $1.key }) {
            text += "[\(section)]\n"
            for (key, value) in keys.sorted(by: { $0.key < $1.key }) { text += "\(key) = \(value)\n" }
            text += "\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// `[uplink]` for the simulator's IoTDA device `gw-1`.
    static func iotda(url: String, caFile: String?, secret: String = Simulator.devices["gw-1"]!,
                      extra: [String: String] = [:]) throws -> DoctorConfig {
        var uplink = ["platform": quoted("iotda"), "url": quoted(url), "device_id": quoted("gw-1"),
                      "secret": quoted(secret), "connect_timeout": "5", "request_timeout": "20"]
        if let caFile { uplink["ca_file"] = quoted(caFile) }
        for (key, value) in extra { uplink[key] = value }
        return try DoctorConfig(["uplink": uplink])
    }

    /// `[downlink]` for a Faye server (plain HTTP).
    static func faye(url: String, password: String = FayeServer.password, extra: [String: String] = [:]) throws -> DoctorConfig {
        var downlink = ["url": quoted(url), "channels": #"["/operations/4711"]"#, "username": quoted(FayeServer.user),
                        "password": quoted(password), "allow_plain_http": "true"]
        for (key, value) in extra { downlink[key] = value }
        return try DoctorConfig(["downlink": downlink])
    }
}

func quoted(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

/// One run of `edgebuf doctor`: exit status, output, and the parsed `--json` report.
struct DoctorOutcome {
    let status: Int32
    let stdout: String
    let stderr: String
    let report: JSONDict?

    var endpoints: [JSONDict] { report?["endpoints"] as? [JSONDict] ?? [] }

    /// The checks of endpoint `index`, by check name.
    func checks(_ index: Int = 0) -> [String: JSONDict] {
        guard index < endpoints.count, let list = endpoints[index]["checks"] as? [JSONDict] else { return [:] }
        var byName: [String: JSONDict] = [:]
        for check in list { if let name = check.string("check") { byName[name] = check } }
        return byName
    }

    /// The verdict of `check` at endpoint `index`.
    func verdict(_ check: String, _ index: Int = 0) -> String? { checks(index)[check]?.string("verdict") }

    /// The details of `check`.
    func details(_ check: String, _ index: Int = 0) -> JSONDict { checks(index)[check]?.object("details") ?? [:] }

    /// Everything printed, for messages and leak checks.
    var output: String { stdout + stderr }
}

/// Runs `edgebuf [--config C] doctor ARGS`; with `json` adds `--json` and parses stdout.
/// `faketime` (e.g. "+600") shifts the doctor's wall clock with libfaketime.
func runDoctor(config: DoctorConfig?, _ arguments: [String] = [], json: Bool = true,
               environment: [String: String] = [:], faketime: String? = nil) throws -> DoctorOutcome {
    var command = (config.map { ["--config", $0.path] } ?? []) + ["doctor"] + arguments
    if json { command.append("--json") }
    let result: RunResult
    if let faketime {
        // The monotonic clock stays real: only the wall clock (what the clock check reads) moves.
        var env = environment
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        result = try runToFiles(try which("faketime"), ["-f", faketime, edgebufBinary] + command, environment: env)
    } else {
        result = try runToFiles(edgebufBinary, command, environment: environment)
    }
    let report = json ? try? parseObject(result.stdout) : nil
    return DoctorOutcome(status: result.status, stdout: result.stdout, stderr: result.stderr, report: report)
}

/// Runs a command with its output going to files rather than pipes, killed after `timeout`.
///
/// `ChildProcess` (posix_spawn) hands every open descriptor to what it starts. A peer started
/// by a test running in parallel (Faye, mitmproxy, a simulator) would then hold the write end
/// of a pipe read here, and the read would wait for that peer's end. Files have no such end.
func runToFiles(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                timeout: Duration = .seconds(120)) throws -> RunResult {
    let directory = TemporaryDirectory("edgebuf-doctor-run")
    let child = try ChildProcess(executable, arguments, stdout: directory.file("stdout"), stderr: directory.file("stderr"),
                                 environment: environment)
    guard let status = child.wait(timeout: timeout) else {
        child.kill9()
        throw TestFailure("\(executable) \(arguments.joined(separator: " ")) still ran after \(timeout): \(child.stderrText.suffix(2000))")
    }
    return RunResult(status: status, stdout: child.stdoutText, stderr: child.stderrText)
}

/// What `runToFiles` returns.
struct RunResult {
    let status: Int32
    let stdout: String
    let stderr: String
    var output: String { stdout + stderr }
}

/// The public-key pin of a PEM certificate, computed by the openssl CLI (independently of the
/// doctor's own DER reader).
func opensslPin(certificate: String) throws -> String {
    let script = "openssl x509 -in '\(certificate)' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"
    let result = try runToFiles("/bin/bash", ["-c", script])
    guard result.status == 0 else { throw TestFailure("openssl pin: \(result.stderr)") }
    return "sha256//" + result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}
