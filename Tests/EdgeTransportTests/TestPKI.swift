import Foundation

/// Certificates made at test time with the openssl CLI in a temporary directory (never
/// committed): a test CA with a server certificate for localhost/127.0.0.1/::1 and a client
/// certificate, plus an unrelated "Intercept CA". Made once per test process, removed at exit.
struct TestPKI: Sendable {
    let directory: URL
    var caCertificate: String { path("ca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }
    var interceptCACertificate: String { path("intercept-ca.crt") }
    var serverScript: String { path("server.py") }
    /// `sha256//...` of the server certificate's public key.
    let serverPin: String
    /// `sha256//...` of the Intercept CA's public key (a pin nobody presents).
    let interceptPin: String

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private static let made: Result<TestPKI, TestFailure> = {
        do {
            return .success(try make())
        } catch {
            return .failure(TestFailure("making test certificates failed: \(error)"))
        }
    }()

    /// The process-wide PKI (thread-safe lazy initialization of a static let).
    static func shared() throws -> TestPKI { try made.get() }

    private static func make() throws -> TestPKI {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("edgebuf-transport-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        TestPKI.cleanupDirectory.set(directory.path)
        atexit {
            if let path = TestPKI.cleanupDirectory.get() { try? FileManager.default.removeItem(atPath: path) }
        }
        func openssl(_ arguments: [String]) throws { try runCommand(["openssl"] + arguments, in: directory) }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        let caExtensions = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]

        try openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                     "-subj", "/O=edgebuf tests/CN=Edgebuf Test CA"] + caExtensions)
        try openssl(["req", "-x509"] + ec + ["-keyout", "intercept-ca.key", "-out", "intercept-ca.crt", "-days", "2",
                     "-subj", "/O=Corporate Proxy/CN=Intercept CA"] + caExtensions)

        try "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
            .write(to: directory.appendingPathComponent("server.ext"), atomically: true, encoding: .utf8)
        try openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "server.crt", "-days", "2", "-extfile", "server.ext"])

        try "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
            .write(to: directory.appendingPathComponent("client.ext"), atomically: true, encoding: .utf8)
        try openssl(["req"] + ec + ["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=device-001"])
        try openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "client.crt", "-days", "2", "-extfile", "client.ext"])

        try TestServerScript.source.write(to: directory.appendingPathComponent("server.py"), atomically: true, encoding: .utf8)

        func pin(_ certificate: String) throws -> String {
            // The recipe from curl's CURLOPT_PINNEDPUBLICKEY documentation.
            let command = "openssl x509 -in \(certificate) -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"
            let hash = try runCommand(["sh", "-c", command], in: directory).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard hash.count == 44 else { throw TestFailure("unexpected pin \(hash)") }
            return "sha256//" + hash
        }
        return TestPKI(directory: directory, serverPin: try pin("server.crt"), interceptPin: try pin("intercept-ca.crt"))
    }

    /// Where atexit finds the directory (a C callback cannot capture it).
    private static let cleanupDirectory = LockedString()
}

final class LockedString: @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?
    func set(_ new: String) { lock.lock(); value = new; lock.unlock() }
    func get() -> String? { lock.lock(); defer { lock.unlock() }; return value }
}
