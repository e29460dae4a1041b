import Foundation

/// `tools/idle_cutter.py`: a TCP relay to `upstreamPort` that forgets a connection once it has
/// been idle for `idleSeconds`, like a firewall: `silent` (stops forwarding, never closes: no
/// FIN, no RST), `close` (FIN) or `reset` (RST). TLS passes through to the upstream.
public final class IdleCutter: @unchecked Sendable {
    public enum Mode: String, Sendable { case silent, close, reset }

    public let directory = TemporaryDirectory("edgebuf-cutter")
    public let process: ChildProcess
    public let port: Int

    public init(upstreamPort: Int, idleSeconds: Double, mode: Mode = .silent) throws {
        let ready = directory.file("ready.json")
        let child = try ChildProcess(Simulator.python, [
            repositoryRoot + "/tools/idle_cutter.py", "--upstream", "127.0.0.1:\(upstreamPort)",
            "--idle", String(idleSeconds), "--mode", mode.rawValue, "--ready-file", ready,
        ], stdout: directory.file("stdout"), stderr: directory.file("stderr"))
        process = child
        let started = poll(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: ready) || !child.isRunning }
        guard started, child.isRunning, let text = try? String(contentsOfFile: ready, encoding: .utf8),
              let info = try? parseObject(text), let port = info.int("port") else {
            let log = child.stderrText
            child.kill9()
            throw TestFailure("idle_cutter.py did not start: \(log)")
        }
        self.port = port
    }

    deinit { process.stop() }
}
