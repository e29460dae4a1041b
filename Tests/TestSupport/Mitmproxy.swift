import Foundation

/// mitmproxy (`mitmdump`) on 127.0.0.1 as an HTTP proxy: intercepting TLS with its own CA (the
/// corporate proxy a device must refuse), or with `tunnelOnly` a plain CONNECT tunnel for
/// 127.0.0.1 (test-peers.md). Killed when released.
public final class Mitmproxy: @unchecked Sendable {
    public let directory = TemporaryDirectory("edgebuf-mitm")
    public let port: Int
    public let process: ChildProcess
    /// `http://127.0.0.1:PORT`, for a `proxy` key or `https_proxy`.
    public var proxyURL: String { "http://127.0.0.1:\(port)" }
    /// The CA mitmproxy signs its forged certificates with (created at first start).
    public var caFile: String { directory.file("mitmproxy-ca-cert.pem") }

    /// `upstreamCA`: the CA mitmproxy itself trusts for the real server.
    public init(upstreamCA: String?, tunnelOnly: Bool) throws {
        // ChildProcess hands every open descriptor to the child. Started while `Simulator.python`
        // runs its one-time `python3 -c` (a Process with pipes), this peer would hold that run's
        // pipes open and every Simulator after it would wait for the peer to exit: resolve it first.
        _ = Simulator.python
        port = try freePort()
        var arguments = ["--listen-host", "127.0.0.1", "--listen-port", String(port), "--set", "confdir=\(directory.path)"]
        if let upstreamCA { arguments += ["--set", "ssl_verify_upstream_trusted_ca=\(upstreamCA)"] }
        if tunnelOnly { arguments += ["--ignore-hosts", #"^127\.0\.0\.1$"#] }
        process = try ChildProcess(try which("mitmdump"), arguments,
                                   stdout: directory.file("stdout"), stderr: directory.file("stderr"))
        let port = self.port
        let process = self.process
        guard poll(timeout: .seconds(20), { isListening(port: port) || !process.isRunning }), process.isRunning else {
            throw TestFailure("mitmdump did not start: \(process.stderrText) \(process.stdoutText)")
        }
    }

    deinit { process.kill9() }

    /// What mitmdump printed (one line per flow).
    public var output: String { process.stdoutText + process.stderrText }
}
