import EdgeTransport
import Foundation
import Logging
import Testing

/// Certificate, pin, protocol-version and plain-HTTP policy against a real TLS server.
@Suite struct TLSVerificationTests {
    let logger = Logger(label: "edgebuf.tests.transport")

    @Test func untrustedCertificateNamesTheIssuerAndSendsNothing() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        // Trusting only an unrelated CA: the server's chain does not verify (curl 60).
        let untrusting = try HTTPClient(
            configuration: testConfiguration(server.pki) { $0.tls.caFile = server.pki.interceptCACertificate },
            logger: logger)
        let error = try #require(await transportError {
            try await untrusting.send(HTTPRequest(method: .post, url: server.url("/echo?token=s3cret"), body: [1]))
        })
        #expect(error.kind == .tlsUntrusted)
        #expect(error.curlCode == 60)
        #expect(!error.isTransient)
        #expect(error.label == "tls_untrusted")
        #expect(error.issuer?.contains("CN=Edgebuf Test CA") == true)
        #expect(error.description.hasPrefix("the server's certificate is not trusted (issuer: "))
        #expect(error.description.contains("Edgebuf Test CA"))
        #expect(error.description.contains("Nothing was sent."))
        #expect(!error.description.contains("s3cret"))
        await untrusting.shutdown()

        // The server logged no request from it: a request from a trusting client is the first.
        try await expectOnlyTheNextRequestReaches(server)
    }

    @Test func matchingPinIsAcceptedAmongSeveral() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        // Rotation: an old (unused) pin and the current one.
        let client = try HTTPClient(
            configuration: testConfiguration(server.pki) {
                $0.tls.pinnedPublicKeys = [server.pki.interceptPin, server.pki.serverPin]
            },
            logger: logger)
        let response = try await client.send(HTTPRequest(url: server.url("/echo")))
        #expect(response.status == 200)
        await client.shutdown()
    }

    @Test func pinMismatchIsRefusedAndNamesTheIssuer() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(
            configuration: testConfiguration(server.pki) { $0.tls.pinnedPublicKeys = [server.pki.interceptPin] },
            logger: logger)
        let error = try #require(await transportError { try await client.send(HTTPRequest(url: server.url("/echo"))) })
        #expect(error.kind == .pinMismatch)
        #expect(error.curlCode == 90)
        #expect(!error.isTransient)
        #expect(error.description.hasPrefix("the server's public key does not match any configured pin (issuer: "))
        #expect(error.issuer?.contains("Edgebuf Test CA") == true)
        await client.shutdown()
        try await expectOnlyTheNextRequestReaches(server)
    }

    @Test func malformedPinIsAConfigurationError() throws {
        let pki = try TestPKI.shared()
        // libcurl would read this as the path of a key file.
        let error = #expect(throws: TransportError.self) {
            _ = try HTTPConnection(configuration: testConfiguration(pki) { $0.tls.pinnedPublicKeys = ["/etc/passwd"] })
        }
        #expect(error?.kind == .invalidConfiguration)
    }

    @Test func serverLimitedToTLS11IsRefused() async throws {
        let server = try await TestServer.start(.tls11Only)
        defer { server.stop() }
        // Control: prove the server really completes a TLS 1.1 handshake here, or skip.
        let control = try runCommand(
            ["curl", "-sS", "-o", "/dev/null", "--noproxy", "*", "--cacert", server.pki.caCertificate,
             "--tlsv1.1", "--tls-max", "1.1", "--ciphers", "DEFAULT:@SECLEVEL=0", server.url("/echo")],
            allowFailure: true)
        if control.status != 0 {
            try Test.cancel("this OpenSSL cannot serve TLS 1.1 at all (control curl exited \(control.status))")
        }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let error = try #require(await transportError { try await client.send(HTTPRequest(url: server.url("/echo"))) })
        #expect(error.kind == .tlsHandshakeFailed)
        #expect(error.curlCode == 35)
        #expect(!error.isTransient)
        #expect(error.description.contains("TLS 1.2"))
        #expect(try await server.requests(atLeast: 1).count == 1) // only the control's
        await client.shutdown()
    }

    @Test func plainHTTPIsRefusedUnlessAllowed() async throws {
        let server = try await TestServer.start(.plain)
        defer { server.stop() }
        let url = server.url("/echo", scheme: "http")
        let strict = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let error = try #require(await transportError { try await strict.send(HTTPRequest(url: url)) })
        #expect(error.kind == .plainHTTPRefused)
        #expect(error.curlCode == nil)
        #expect(!error.isTransient)
        await strict.shutdown()

        let relaxed = try HTTPClient(configuration: testConfiguration(server.pki) { $0.allowPlainHTTP = true }, logger: logger)
        let response = try await relaxed.send(HTTPRequest(url: url))
        #expect(response.status == 200)
        #expect(try await server.requests(atLeast: 1).count == 1) // the refused one never reached the server
        await relaxed.shutdown()
    }

    @Test func clientCertificateIsRequiredAndAccepted() async throws {
        let server = try await TestServer.start(.requireClientCertificate)
        defer { server.stop() }
        let anonymous = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let error = try #require(await transportError { try await anonymous.send(HTTPRequest(url: server.url("/echo"))) })
        #expect(error.kind == .clientCertificateRejected)
        #expect(!error.isTransient)
        await anonymous.shutdown()

        let device = try HTTPClient(
            configuration: testConfiguration(server.pki) {
                $0.tls.clientCertificate = server.pki.clientCertificate
                $0.tls.clientKey = server.pki.clientKey
            },
            logger: logger)
        #expect(try await device.send(HTTPRequest(url: server.url("/echo"))).status == 200)
        await device.shutdown()
    }

    @Test func probeReportsThePresentedCertificate() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let certificate = try #require(TLSProbe.presentedCertificate(
            url: server.url("/"), configuration: testConfiguration(server.pki)))
        #expect(certificate.subject == "CN=localhost")
        #expect(certificate.issuer.contains("CN=Edgebuf Test CA"))
        let notAfter = try #require(certificate.notAfterDate)
        let notBefore = try #require(certificate.notBeforeDate)
        #expect(notAfter.timeIntervalSince(notBefore) > 86_400) // -days 2
        #expect(TLSProbe.presentedCertificate(url: server.url("/", scheme: "http")) == nil)
        try await expectOnlyTheNextRequestReaches(server) // the probe sent no HTTP request
    }

    /// Sends one good request and checks that it is the only one the server ever logged.
    private func expectOnlyTheNextRequestReaches(_ server: TestServer) async throws {
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        #expect(try await client.send(HTTPRequest(url: server.url("/echo"))).status == 200)
        #expect(try await server.requests(atLeast: 1).count == 1)
        await client.shutdown()
    }
}
