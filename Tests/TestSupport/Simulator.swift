import Foundation

/// `tools/simulator.py`, started directly with the real Python interpreter (on this machine
/// `python3` may be a pyenv shim that forks, and signalling the shim leaves the simulator
/// running), stopped with SIGTERM. Its control API is spoken with curl.
public final class Simulator: @unchecked Sendable {
    public static let devices = ["gw-1": "secret-1"]
    public static let cumulocityUsers = ["t1/alice": "pw-1"]

    public let directory = TemporaryDirectory("edgebuf-sim")
    public let process: ChildProcess
    public let url: String
    public let port: Int
    /// The CA that signed the simulator's certificate (with --https).
    public let caFile: String?

    /// The interpreter behind `python3`.
    public static let python: String = {
        let shim = (try? which("python3")) ?? "/usr/bin/python3"
        let answer = try? run(shim, ["-c", "import sys; print(sys.executable)"])
        let path = answer?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return path.isEmpty ? shim : path
    }()

    public init(https: Bool = false, extra: [String] = []) throws {
        var arguments = [repositoryRoot + "/tools/simulator.py", "--ready-file", directory.file("ready.json"),
                         "--state-dir", directory.file("state")]
        if https { arguments.append("--https") }
        for (id, secret) in Self.devices { arguments += ["--device", "\(id)=\(secret)"] }
        for (user, password) in Self.cumulocityUsers { arguments += ["--cumulocity-user", "\(user):\(password)"] }
        let child = try ChildProcess(Self.python, arguments + extra,
                                     stdout: directory.file("stdout"), stderr: directory.file("stderr"))
        process = child
        let ready = directory.file("ready.json")
        let started = poll(timeout: .seconds(20)) {
            FileManager.default.fileExists(atPath: ready) || !child.isRunning
        }
        guard started, child.isRunning,
              let line = try? String(contentsOfFile: ready, encoding: .utf8), let info = try? parseObject(line) else {
            let log = child.stderrText
            child.kill9()
            throw TestFailure("the simulator did not start: \(log)")
        }
        url = info.string("url") ?? ""
        port = info.int("port") ?? 0
        caFile = info.string("ca_file")
        precondition(info.int("pid") == Int(child.pid), "the simulator runs as the spawned process")
    }

    /// An `[uplink]` section for the IoTDA device gw-1 against this simulator over plain HTTP,
    /// retrying fast (backoff 50 ms to 500 ms).
    public var iotdaUplinkSection: String {
        """
        [uplink]
        platform = "iotda"
        url = "\(url)"
        allow_plain_http = true
        device_id = "gw-1"
        secret = "\(Self.devices["gw-1"]!)"
        backoff_initial = "50ms"
        backoff_max = "500ms"

        """
    }

    deinit { process.stop() }

    // MARK: Control API

    /// One control request; the answer's JSON.
    @discardableResult
    public func control(_ method: String, _ path: String, _ body: Any? = nil) throws -> Any {
        var arguments = ["-sS", "--max-time", "20", "-X", method, "-w", "\n%{http_code}"]
        if let caFile { arguments += ["--cacert", caFile] }
        var input: String?
        if let body {
            arguments += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
            input = jsonText(body)
        }
        let result = try run("/usr/bin/curl", arguments + [url + path], stdin: input)
        guard result.status == 0, let cut = result.stdout.lastIndex(of: "\n") else {
            throw TestFailure("control \(method) \(path): curl exit \(result.status) \(result.stderr)")
        }
        let status = result.stdout[result.stdout.index(after: cut)...]
        guard status == "200" else { throw TestFailure("control \(method) \(path): HTTP \(status) \(result.stdout)") }
        return try parseJSON(String(result.stdout[..<cut]))
    }

    /// Queues faults (each a fault object of SIMULATOR.md).
    public func fault(_ faults: JSONDict...) throws {
        try control("POST", "/_sim/faults", faults)
    }

    public func configure(_ changes: JSONDict) throws {
        try control("POST", "/_sim/config", changes)
    }

    /// Every accepted record, in acceptance order.
    public func accepted() throws -> [JSONDict] {
        (try control("GET", "/_sim/accepted") as? JSONDict)?["records"] as? [JSONDict] ?? []
    }

    /// The platform request log (data and auth requests; never control requests).
    public func requests() throws -> [JSONDict] {
        (try control("GET", "/_sim/requests") as? JSONDict)?["requests"] as? [JSONDict] ?? []
    }

    /// Data requests only (not device-auth).
    public func dataRequests() throws -> [JSONDict] {
        try requests().filter { $0.string("path") != "/v5/device-auth" }
    }

    public func stats() throws -> JSONDict {
        try control("GET", "/_sim/stats") as? JSONDict ?? [:]
    }
}
