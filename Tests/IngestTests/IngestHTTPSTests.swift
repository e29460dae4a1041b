import Foundation
import TestSupport
import Testing

/// `[ingest]` off loopback: HTTPS (cert_file/key_file) and the token are both required.
@Suite(.serialized) struct IngestHTTPSTests {
    /// A self-signed certificate for 127.0.0.1 made with openssl; the key 0600.
    static func certificate(in directory: TemporaryDirectory) throws -> (cert: String, key: String) {
        let cert = directory.file("cert.pem"), key = directory.file("key.pem")
        let made = try run(try which("openssl"), ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                  "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                                                  "-addext", "subjectAltName=IP:127.0.0.1"])
        guard made.status == 0 else { throw TestFailure("openssl failed: \(made.stderr)") }
        chmod(key, 0o600)
        return (cert, key)
    }

    /// Listening on 0.0.0.0 with a token and a certificate: HTTPS with the token stores, without
    /// it 403 on an IoTDA path and 401 on /v1/records; plain HTTP and TLS 1.1 get no answer and store nothing.
    @Test func offLoopbackServesHTTPSWithTheToken() throws {
        let keys = TemporaryDirectory("edgebuf-ingest-tls")
        let (cert, key) = try Self.certificate(in: keys)
        let token = "https-token-0123456789abcdef"
        let daemon = try IngestDaemon(ingest: "token = \"\(token)\"\ncert_file = \"\(cert)\"\nkey_file = \"\(key)\"", host: "0.0.0.0")
        try daemon.start()
        let url = "https://127.0.0.1:\(daemon.port)/v5/devices/t-1/sys/properties/report"
        let body = IngestClientTests.property
        let stored = try daemon.curl(["-i", "--cacert", cert, "-H", "Authorization: Bearer \(token)", "-d", body, url])
        #expect(statusCodes(stored.stdout) == [200], "\(stored.stdout) \(stored.stderr)")
        let refused = try daemon.curl(["-i", "--cacert", cert, "-d", body, url])
        #expect(statusCodes(refused.stdout) == [403], "\(refused.stdout) \(refused.stderr)")
        let records = try daemon.curl(["-i", "--cacert", cert, "--data-binary", "{}", "https://127.0.0.1:\(daemon.port)/v1/records"])
        #expect(statusCodes(records.stdout) == [401], "\(records.stdout) \(records.stderr)")
        let plain = try daemon.curl(["-i", "-H", "Authorization: Bearer \(token)", "-d", body, "http://127.0.0.1:\(daemon.port)/v5/devices/t-1/sys/properties/report"])
        #expect(statusCodes(plain.stdout).isEmpty, "plain HTTP to the HTTPS port was answered: \(plain.stdout)")
        let old = try daemon.curl(["-i", "--cacert", cert, "--tls-max", "1.1", "-H", "Authorization: Bearer \(token)", "-d", body, url])
        #expect(statusCodes(old.stdout).isEmpty, "TLS 1.1 was accepted: \(old.stdout)")
        #expect(try daemon.records().count == 1)
        #expect(daemon.process?.isRunning == true)
        daemon.process?.stop()
        #expect(!daemon.logs.contains(token))
    }

    /// A key file others may read, a certificate without a key, and off loopback without
    /// HTTPS: exit 78 naming the key.
    @Test func unsafeHTTPSSettingsExit78() throws {
        let keys = TemporaryDirectory("edgebuf-ingest-tls")
        let (cert, key) = try Self.certificate(in: keys)
        chmod(key, 0o644)
        let token = "https-token-0123456789abcdef"
        for (ingest, name) in [("cert_file = \"\(cert)\"\nkey_file = \"\(key)\"", "ingest.key_file"),
                               ("cert_file = \"\(cert)\"", "ingest.key_file"),
                               ("listen = \"0.0.0.0:8780\"\ntoken = \"\(token)\"", "ingest.cert_file"),
                               ("cert_file = \"\(key)\"\nkey_file = \"\(key)\"", "ingest.cert_file")] {
            let directory = TemporaryDirectory("edgebuf-ingest-config")
            let config = directory.file("c.toml")
            try "[ingest]\n\(ingest)\n".write(toFile: config, atomically: true, encoding: .utf8)
            let result = try edgebuf(["run", "--config", config, "--db", directory.file("db")])
            #expect(result.status == 78, "\(ingest): \(result.stderr)")
            #expect(result.stderr.contains(name), "\(ingest): \(result.stderr)")
            #expect(!result.stderr.contains(token))
        }
    }
}
