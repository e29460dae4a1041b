import EdgeTransport
import Foundation
import Testing

/// A running instance of `TestServerScript` on 127.0.0.1 and a kernel-chosen port.
final class TestServer: Sendable {
    enum Mode: Sendable {
        case https
        case tls11Only
        case requireClientCertificate
        case plain
        /// Plain HTTP that answers CONNECT with the given status (a refusing proxy).
        case refusingProxy(status: Int)
    }

    let port: Int
    let process: Subprocess
    let pki: TestPKI

    private init(port: Int, process: Subprocess, pki: TestPKI) {
        self.port = port
        self.process = process
        self.pki = pki
    }

    static func start(_ mode: Mode = .https) async throws -> TestServer {
        let pki = try TestPKI.shared()
        var arguments = ["-W", "ignore", pki.serverScript]
        switch mode {
        case .https:
            arguments += ["--cert", pki.serverCertificate, "--key", pki.serverKey]
        case .tls11Only:
            arguments += ["--cert", pki.serverCertificate, "--key", pki.serverKey, "--tls-max", "1.1"]
        case .requireClientCertificate:
            arguments += ["--cert", pki.serverCertificate, "--key", pki.serverKey, "--client-ca", pki.caCertificate]
        case .plain:
            break
        case .refusingProxy(let status):
            arguments += ["--connect-status", "\(status)"]
        }
        let process = try Subprocess("python3", arguments)
        let line = try await process.line(startingWith: "port ")
        guard let port = Int(line.dropFirst(5)) else { throw TestFailure("bad port line \(line)") }
        return TestServer(port: port, process: process, pki: pki)
    }

    /// `https://127.0.0.1:PORT` + path (or `http://` for the plain modes).
    func url(_ path: String, host: String = "127.0.0.1", scheme: String = "https") -> String {
        "\(scheme)://\(host):\(port)\(path)"
    }

    /// The `request ...` lines the server logged so far.
    var requests: [String] { process.lines.filter { $0.hasPrefix("request ") } }

    /// The `request ...` lines once there are at least `count` (the log line travels through
    /// a pipe and may arrive after the response did).
    func requests(atLeast count: Int) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(5)
        while requests.count < count {
            guard ContinuousClock.now < deadline else { throw TestFailure("server logged \(requests) only") }
            try await Task.sleep(for: .milliseconds(5))
        }
        return requests
    }

    func stop() { process.stop() }
}

/// A configuration trusting the test CA, with no proxy regardless of the environment.
func testConfiguration(_ pki: TestPKI, _ change: (inout TransportConfiguration) -> Void = { _ in }) -> TransportConfiguration {
    var configuration = TransportConfiguration(tls: TLSConfiguration(caFile: pki.caCertificate), proxy: "")
    configuration.connectTimeout = .seconds(5)
    configuration.requestTimeout = .seconds(15)
    change(&configuration)
    return configuration
}

/// The server's echo of a request.
struct Echo: Decodable {
    let method: String
    let headers: [[String]]
    let bodyLength: Int
    let bodySum: UInt32
    let clientPort: Int

    init(_ response: HTTPResponse) throws {
        self = try JSONDecoder().decode(Echo.self, from: Data(response.body))
    }

    func header(_ name: String) -> String? {
        headers.first { $0[0].lowercased() == name.lowercased() }?[1]
    }
}

/// Runs `body` and returns the `TransportError` it threw, or nil if it succeeded.
func transportError<T>(_ body: () async throws -> T) async -> TransportError? {
    do {
        _ = try await body()
        return nil
    } catch let error as TransportError {
        return error
    } catch {
        Issue.record("expected a TransportError, got \(error)")
        return nil
    }
}
