import EdgeTransport
import Foundation
import Logging
import Testing

/// mitmproxy as a real corporate proxy: a plain CONNECT tunnel for 127.0.0.1 (ignore-hosts),
/// a TLS-intercepting one for localhost, which the client must refuse.
@Suite struct ProxyTests {
    let logger = Logger(label: "edgebuf.tests.transport")

    @Test func tunnelWorksAndInterceptionIsRefused() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let confdir = server.pki.directory.appendingPathComponent("mitmproxy-\(UUID().uuidString)")
        let port = try freePort()
        let mitm = try Subprocess("mitmdump", [
            "--set", "confdir=\(confdir.path)", "--listen-host", "127.0.0.1", "--listen-port", "\(port)",
            "--ignore-hosts", #"^127\.0\.0\.1$"#,
            // mitmproxy itself trusts the test CA upstream, like a corporate proxy would.
            "--set", "ssl_verify_upstream_trusted_ca=\(server.pki.caCertificate)",
        ])
        defer { mitm.stop() }
        _ = try await mitm.line(startingWith: "Proxy server listening", within: .seconds(15))
        let proxied = testConfiguration(server.pki) { $0.proxy = "http://127.0.0.1:\(port)" }

        let client = try HTTPClient(configuration: proxied, logger: logger)
        let tunneled = try await client.send(HTTPRequest(url: server.url("/echo")))
        #expect(tunneled.status == 200)

        let error = try #require(await transportError {
            try await client.send(HTTPRequest(url: server.url("/echo", host: "localhost")))
        })
        #expect(error.kind == .tlsUntrusted)
        #expect(error.issuer?.contains("mitmproxy") == true)
        #expect(error.description.hasPrefix("the server's certificate is not trusted (issuer: CN=mitmproxy, O=mitmproxy); a TLS-intercepting proxy is the usual cause. Nothing was sent."))
        await client.shutdown()

        var pinnedConfiguration = proxied
        pinnedConfiguration.tls.pinnedPublicKeys = [server.pki.serverPin]
        let pinned = try HTTPClient(configuration: pinnedConfiguration, logger: logger)
        // Even trusting mitmproxy's CA, the pin catches the interception.
        var trustingMitm = pinnedConfiguration
        trustingMitm.tls.caFile = confdir.appendingPathComponent("mitmproxy-ca-cert.pem").path
        let fooled = try HTTPClient(configuration: trustingMitm, logger: logger)
        let pinError = try #require(await transportError {
            try await fooled.send(HTTPRequest(url: server.url("/echo", host: "localhost")))
        })
        #expect(pinError.kind == .pinMismatch)
        #expect(pinError.issuer?.contains("mitmproxy") == true)
        #expect(try await pinned.send(HTTPRequest(url: server.url("/echo"))).status == 200)
        await pinned.shutdown()
        await fooled.shutdown()
        #expect(try await server.requests(atLeast: 2).count == 2) // the tunneled one and the pinned one
    }
}
