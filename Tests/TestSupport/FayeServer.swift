import Foundation

/// A real Faye Bayeux server (Debian ruby-faye on thin) started with `tools/faye/start`, plain
/// HTTP on 127.0.0.1, with Cumulocity-like handshake authentication for `user`.
public final class FayeServer: @unchecked Sendable {
    public static let user = "t1/dev"
    public static let password = "pw-dev"

    public let directory = TemporaryDirectory("edgebuf-faye")
    public private(set) var process: ChildProcess
    public let port: Int
    /// `http://127.0.0.1:PORT/notification/realtime`.
    public let url: String
    public let timeout: Int
    public let wrapper: [String]
    private var starts = 0

    /// `timeout`: how long Faye holds an idle connect. `wrapper` runs it elsewhere (a namespace).
    public init(timeout: Int = 25, port: Int? = nil, wrapper: [String] = []) throws {
        // Resolved before anything is started, so no child inherits the pipes of that lookup.
        _ = Simulator.python
        self.timeout = timeout
        self.wrapper = wrapper
        let (process, info) = try Self.launch(directory: directory, timeout: timeout, port: port, wrapper: wrapper, tag: 1)
        self.process = process
        self.port = info.int("port") ?? 0
        self.url = info.string("url") ?? ""
        starts = 1
    }

    private static func launch(directory: TemporaryDirectory, timeout: Int, port: Int?, wrapper: [String], tag: Int) throws -> (ChildProcess, JSONDict) {
        let ready = directory.file("ready-\(tag).json")
        var environment = ["EDGEBUF_FAYE_TIMEOUT": String(timeout), "EDGEBUF_FAYE_USER": user, "EDGEBUF_FAYE_PASSWORD": password]
        if let port { environment["EDGEBUF_FAYE_PORT"] = String(port) }
        let script = repositoryRoot + "/tools/faye/start"
        let command = wrapper + ["/bin/bash", script, ready]
        let child = try ChildProcess(command[0], Array(command.dropFirst()), stdout: directory.file("faye-\(tag).out"),
                                     stderr: directory.file("faye-\(tag).err"), environment: environment)
        let started = poll(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: ready) || !child.isRunning }
        guard started, child.isRunning, let text = try? String(contentsOfFile: ready, encoding: .utf8),
              let info = try? parseObject(text) else {
            let log = child.stderrText + child.stdoutText
            child.kill9()
            throw TestFailure("Faye did not start: \(log.suffix(2000))")
        }
        return (child, info)
    }

    /// Kills Faye (SIGKILL: every session and queued message is gone) and starts a new one
    /// on the same port.
    public func restart() throws {
        process.kill9()
        starts += 1
        // The port is free again once the old listener is gone.
        _ = poll(timeout: .seconds(10)) { !isListening(port: port) || !wrapper.isEmpty }
        let (process, _) = try Self.launch(directory: directory, timeout: timeout, port: port, wrapper: wrapper, tag: starts)
        self.process = process
    }

    /// Publishes `data` items on `channel`.
    public func publish(_ channel: String, _ data: [JSONDict]) throws {
        try bayeuxPublish(url, channel: channel, data: data, wrapper: wrapper)
    }

    deinit { process.kill9() }
}

/// POSTs a Bayeux publish (`[{channel, data, id}]`) to a server's mount path: how tests make
/// Faye (or the simulator) send notifications. `wrapper` runs curl elsewhere (a namespace).
public func bayeuxPublish(_ url: String, channel: String, data: [JSONDict], wrapper: [String] = []) throws {
    var messages: [JSONDict] = []
    for (index, item) in data.enumerated() {
        messages.append(["channel": channel, "data": item, "id": "pub-\(UUID().uuidString.prefix(8))-\(index)"])
    }
    let curl = ["/usr/bin/curl", "-sS", "--max-time", "20", "-H", "Content-Type: application/json", "--data-binary", "@-", url]
    let command = wrapper + curl
    let result = try run(command[0], Array(command.dropFirst()), stdin: jsonText(messages))
    guard result.status == 0, result.stdout.contains("\"successful\":true") else {
        throw TestFailure("publish to \(url) failed (curl \(result.status)): \(result.stdout.prefix(300)) \(result.stderr.prefix(300))")
    }
}
