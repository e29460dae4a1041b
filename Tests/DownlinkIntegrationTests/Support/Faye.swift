import Foundation
import TestSupport

/// A real Faye server (`tools/faye/start`), with handshake authentication for `t1/dev`.
final class Faye: @unchecked Sendable {
    static let user = "t1/dev"
    static let password = "pw-dev"

    let directory = TemporaryDirectory("edgebuf-faye")
    private(set) var process: ChildProcess
    let port: Int
    let url: String
    let timeout: Int
    let wrapper: [String]
    private var starts = 0

    /// `timeout`: how long Faye holds an idle connect. `wrapper` runs it elsewhere (a namespace).
    init(timeout: Int = 25, port: Int? = nil, wrapper: [String] = []) throws {
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
    func restart() throws {
        process.kill9()
        starts += 1
        // The port is free again once the old listener is gone.
        _ = poll(timeout: .seconds(10)) { !isListening(port: port) || !wrapper.isEmpty }
        let (process, _) = try Self.launch(directory: directory, timeout: timeout, port: port, wrapper: wrapper, tag: starts)
        self.process = process
    }

    /// Publishes `data` items on `channel`.
    func publish(_ channel: String, _ data: [JSONDict]) throws {
        try DownlinkIntegrationTests.publish(url, channel: channel, data: data, wrapper: wrapper)
    }

    deinit { process.kill9() }
}
