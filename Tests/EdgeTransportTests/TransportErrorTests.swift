@testable import EdgeTransport
import Testing

/// The classification table and redaction, without sockets.
@Suite struct TransportErrorTests {
    let url = "https://user:pa55@iot.example.com:8943/v5/devices/d1?sig=abc#frag"

    @Test func urlLosesUserinfoQueryAndFragment() {
        #expect(TransportError.redact(url: url) == "https://iot.example.com:8943/v5/devices/d1")
        #expect(TransportError.redact(url: "https://h/p") == "https://h/p")
        #expect(TransportError.redact(url: "https://a@b@h") == "https://h")
    }

    @Test func curlTextIsScrubbedOfSecrets() {
        let error = TransportError.classify(curlCode: 6, message: "Could not resolve user:pa55 sig=abc#frag", url: url)
        #expect(error.curlMessage?.contains("pa55") == false)
        #expect(error.curlMessage?.contains("sig=abc") == false)
        #expect(!error.description.contains("pa55"))
        #expect(error.url == "https://iot.example.com:8943/v5/devices/d1")
    }

    @Test(arguments: [
        (6, "", TransportError.Kind.dnsFailed, true),
        (7, "Failed to connect", .connectFailed, true),
        (28, "Operation timed out after 1000 milliseconds", .timedOut, true),
        (28, "Operation too slow. Less than 1 bytes/sec", .timedOut, true),
        (52, "Empty reply from server", .connectionClosed, true),
        (56, "Recv failure: Connection reset by peer", .connectionClosed, true),
        (18, "transfer closed with 10 bytes remaining", .connectionClosed, true),
        (35, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL", .connectionClosed, true),
        (35, "error:0A00042E:SSL routines::tlsv1 alert protocol version", .tlsHandshakeFailed, false),
        (56, "OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert certificate required", .clientCertificateRejected, false),
        (60, "SSL certificate problem: unable to get local issuer certificate", .tlsUntrusted, false),
        (90, "SSL: public key does not match pinned public key", .pinMismatch, false),
        (63, "Maximum file size exceeded", .responseTooLarge, false),
        (42, "Callback aborted", .cancelled, false),
        (5, "Could not resolve proxy: p", .proxyFailed, true),
        (3, "URL using bad/illegal format", .invalidRequest, false),
        (58, "could not load PEM client certificate", .invalidConfiguration, false),
        (16, "", .other, true),
        (99, "", .other, false),
    ])
    func classification(code: Int, message: String, kind: TransportError.Kind, transient: Bool) {
        let error = TransportError.classify(curlCode: code, message: message, url: url)
        #expect(error.kind == kind)
        #expect(error.isTransient == transient)
        #expect(error.curlCode == code)
    }

    @Test func proxyStatusDecidesOverTheCurlCode() {
        var observation = TransportError.Observation()
        observation.proxyConnectStatus = 407
        let auth = TransportError.classify(curlCode: 56, message: "CONNECT tunnel failed, response 407", url: url, observation: observation)
        #expect(auth.kind == .proxyFailed && auth.proxyStatus == 407 && !auth.isTransient)
        observation.proxyConnectStatus = 502
        let bad = TransportError.classify(curlCode: 56, message: "CONNECT tunnel failed, response 502", url: url, observation: observation)
        #expect(bad.kind == .proxyFailed && bad.isTransient)
    }

    @Test func writeErrorIsTooLargeOnlyWhenALimitWasHit() {
        var observation = TransportError.Observation()
        #expect(TransportError.classify(curlCode: 23, message: nil, url: url, observation: observation).kind == .other)
        observation.sizeLimitHit = true
        observation.bodyLimit = 10
        let error = TransportError.classify(curlCode: 23, message: nil, url: url, observation: observation)
        #expect(error.kind == .responseTooLarge)
        #expect(error.description.contains("10 bytes"))
    }

    @Test func labelsArePayloadFree() {
        #expect(TransportError.classify(curlCode: 60, message: "x", url: url).label == "tls_untrusted")
        #expect(TransportError.classify(curlCode: 99, message: "x", url: url).label == "curl_99")
    }

    @Test func untrustedMessageSaysWhatWhyAndWhatToDo() {
        let error = TransportError.classify(curlCode: 60, message: "SSL certificate problem: unable to get local issuer certificate", url: url)
            .withIssuer("CN=mitmproxy, O=mitmproxy")
        #expect(error.description.hasPrefix(
            "the server's certificate is not trusted (issuer: CN=mitmproxy, O=mitmproxy); a TLS-intercepting proxy is the usual cause. Nothing was sent."))
        let expired = TransportError.classify(curlCode: 60, message: "SSL certificate problem: certificate has expired", url: url)
        #expect(expired.description.contains("clock"))
        #expect(expired.description.contains("issuer: unknown"))
    }
}
