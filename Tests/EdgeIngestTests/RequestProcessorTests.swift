import Crypto
@testable import EdgeBuffer
@testable import EdgeIngest
@testable import EdgeStore
import Foundation
import Testing

/// Routing, the token, the size limit and the answers, without sockets.
@Suite struct RequestProcessorTests {
    let now: Int64 = 1_795_317_010_555
    let token = "s3cret-token-0123456789"

    func processor(token: String? = nil, maxBody: Int = 1 << 20) -> RequestProcessor {
        RequestProcessor(maxBodyBytes: maxBody, recordLimit: 1 << 20, tokens: TokenBook(token: token))
    }

    func head(_ method: String, _ uri: String, authorization: String? = nil, accessToken: String? = nil, length: Int? = nil) -> RequestProcessor.Head {
        RequestProcessor.Head(method: method, uri: uri, authorization: authorization, accessToken: accessToken, contentLength: length)
    }

    @Test func routes() {
        #expect(IngestRoute(method: "POST", uri: "/v5/device-auth") == .iotdaAuth)
        #expect(IngestRoute(method: "POST", uri: "/v5/devices/d-1/sys/properties/report?x=1") == .iotdaProperties(deviceID: "d-1"))
        #expect(IngestRoute(method: "POST", uri: "/v5/devices/d-1/sys/messages/up") == .iotdaMessage(deviceID: "d-1"))
        #expect(IngestRoute(method: "POST", uri: "/v5/devices/gw/sys/gateway/sub-devices/properties/report") == .iotdaGatewayProperties(gatewayID: "gw"))
        #expect(IngestRoute(method: "POST", uri: "/measurement/measurements") == .cumulocityMeasurements)
        #expect(IngestRoute(method: "POST", uri: "/v1/records") == .records)
        #expect(IngestRoute(method: "GET", uri: "/healthz") == .health)
        #expect(IngestRoute(method: "GET", uri: "/metrics") == .metrics)
        #expect(IngestRoute(method: "GET", uri: "/v1/records") == .wrongMethod(allowed: "POST"))
        #expect(IngestRoute(method: "POST", uri: "/v5/devices//sys/x/report") == .notFound)
        #expect(IngestRoute(method: "POST", uri: "*") == .notFound)
    }

    @Test func tokenIsRequiredWhenConfiguredAndNeverEchoed() {
        let p = processor(token: token)
        let uri = "/v5/devices/d/sys/properties/report"
        // IoTDA's "token invalid or expired" (403 IOTDA.000004), on which its clients authenticate again.
        let refused = p.admit(head("POST", uri), route: .iotdaProperties(deviceID: "d"), now: now)
        #expect(refused?.status == 403)
        #expect(refused?.bodyText.contains("IOTDA.000004") == true)
        let wrong = p.admit(head("POST", uri, authorization: "Bearer \(token)x"), route: .iotdaProperties(deviceID: "d"), now: now)
        #expect(wrong?.status == 403)
        #expect(p.admit(head("POST", "/v1/records"), route: .records, now: now)?.status == 401)
        #expect(wrong?.bodyText.contains(token) == false)
        #expect(p.admit(head("POST", uri, authorization: "Bearer \(token)"), route: .iotdaProperties(deviceID: "d"), now: now) == nil)
        #expect(p.admit(head("GET", "/metrics"), route: .metrics, now: now)?.status == 401)
        #expect(p.admit(head("GET", "/healthz"), route: .health, now: now) == nil)
        // Without a token configured, loopback requests need none.
        #expect(processor().admit(head("POST", uri), route: .iotdaProperties(deviceID: "d"), now: now) == nil)
    }

    @Test func deviceAuthChecksTheSignatureOfTheTokenAndIssuesALocalToken() throws {
        let p = processor(token: token)
        let timestamp = "2026112203"
        let mac = HMAC<SHA256>.authenticationCode(for: Array(token.utf8), using: SymmetricKey(data: Array(timestamp.utf8)))
        let password = mac.map { String(format: "%02x", $0) }.joined()
        let body = #"{"device_id": "d-1", "sign_type": 0, "timestamp": "\#(timestamp)", "password": "\#(password)"}"#
        guard case .respond(let answer) = p.decide(head("POST", "/v5/device-auth"), route: .iotdaAuth, body: Array(body.utf8), now: now) else {
            Issue.record("no answer"); return
        }
        #expect(answer.status == 200)
        let issued = try #require(try JSON.members(of: answer.body).first { $0.key == "access_token" }?.string)
        #expect(issued != token)
        let uri = "/v5/devices/d-1/sys/properties/report"
        #expect(p.admit(head("POST", uri, accessToken: issued), route: .iotdaProperties(deviceID: "d-1"), now: now) == nil)
        #expect(p.admit(head("POST", uri, accessToken: issued), route: .iotdaProperties(deviceID: "d-1"), now: now + TokenBook.lifetimeSeconds * 1000 + 1)?.status == 403)
        #expect(p.admit(head("POST", uri, accessToken: "guess"), route: .iotdaProperties(deviceID: "d-1"), now: now)?.status == 403)

        let forged = body.replacingOccurrences(of: password, with: String(repeating: "0", count: 64))
        guard case .respond(let refused) = p.decide(head("POST", "/v5/device-auth"), route: .iotdaAuth, body: Array(forged.utf8), now: now) else {
            Issue.record("no answer"); return
        }
        #expect(refused.status == 401)
    }

    @Test func signType1ChecksTheHourLikeThePlatform() {
        let p = processor()
        func auth(_ timestamp: String) -> Int? {
            let body = #"{"device_id": "d-1", "sign_type": 1, "timestamp": "\#(timestamp)", "password": "\#(String(repeating: "0", count: 64))"}"#
            guard case .respond(let answer) = p.decide(head("POST", "/v5/device-auth"), route: .iotdaAuth, body: Array(body.utf8), now: now) else { return nil }
            return answer.status
        }
        // now is 2026-11-22T03:10:10.555Z
        #expect(auth("2026112203") == 200)
        #expect(auth("2026112202") == 200)
        #expect(auth("2026112204") == 200)
        #expect(auth("2026112201") == 401)
        #expect(auth("2026112106") == 401)
    }

    @Test func oversizedBodyIsRefusedFromItsLength() {
        let p = processor(maxBody: 2048)
        let refused = p.admit(head("POST", "/v1/records", length: 2049), route: .records, now: now)
        #expect(refused?.status == 413)
        #expect(refused?.close == true)
        #expect(p.admit(head("POST", "/v1/records", length: 2048), route: .records, now: now) == nil)
    }

    @Test func storeFailuresMapTo507And503() {
        let full = OutboxFullError(policy: CapacityPolicy(), records: 1, bytes: 1, limit: "max_records")
        let answer = RequestProcessor.failure(route: .records, error: full)
        #expect(answer.status == 507)
        #expect(answer.bodyText.contains("NOT stored"))
        #expect(RequestProcessor.failure(route: .records, error: OutboxClosedError()).status == 503)
    }

    @Test func badRecordLineAnswers400WithEveryBadLine() {
        let body = "{\"kind\":\"property\",\"device_id\":\"d\",\"service_id\":\"S\",\"properties\":{}}\nnot json\n"
        guard case .respond(let answer) = processor().decide(head("POST", "/v1/records"), route: .records, body: Array(body.utf8), now: now) else {
            Issue.record("stored a request with a bad line"); return
        }
        #expect(answer.status == 400)
        #expect(answer.bodyText.hasPrefix(#"{"line":2,"error":"line: is not a JSON object"#))
        #expect(answer.bodyText.contains(#""stored":0"#))
    }
}

/// `[ingest]` parsing and the refusals of unsafe combinations.
@Suite struct IngestConfigurationTests {
    func parse(_ text: String) throws -> IngestConfiguration {
        let document = try ConfigDocument(file: "t.toml", text: text)
        let configuration = try IngestConfiguration(document: document)
        try document.finish()
        return configuration
    }

    func refusedKey(_ text: String) -> String? {
        do {
            _ = try parse(text)
            return nil
        } catch let error as ConfigurationError {
            return error.key
        } catch {
            return "other: \(error)"
        }
    }

    @Test func defaults() throws {
        let c = try parse("[ingest]\n")
        #expect(c.isConfigured)
        #expect(c.listen == IngestConfiguration.Address(host: "127.0.0.1", port: 8780))
        #expect(c.maxConnections == 256)
        #expect(c.maxBodyBytes == 1 << 20)
        #expect(c.token == nil)
        #expect(!(try parse("")).isConfigured)
    }

    @Test func keys() throws {
        let c = try parse("""
            [ingest]
            listen = "[::1]:9000"
            unix_socket = "/run/edgebuf/ingest.sock"
            token = "0123456789abcdef0123"
            max_connections = 10
            max_body_bytes = "512KB"
            header_timeout = "2s"
            idle_timeout = 30
            body_timeout = "500ms"
            """)
        #expect(c.listen == IngestConfiguration.Address(host: "::1", port: 9000))
        #expect(c.unixSocket == "/run/edgebuf/ingest.sock")
        #expect(c.token?.value == "0123456789abcdef0123")
        #expect("\(c.token!)" == "<redacted>")
        #expect(c.maxConnections == 10)
        #expect(c.maxBodyBytes == 512 << 10)
        #expect(c.headerTimeout == .seconds(2))
        #expect(c.bodyTimeout == .milliseconds(500))
    }

    @Test func unsafeCombinationsAreRefusedNamingTheKey() {
        #expect(refusedKey("[ingest]\nlisten = \"0.0.0.0:8780\"\n") == "ingest.token")
        #expect(refusedKey("[ingest]\nlisten = \"192.168.1.5:8780\"\ntoken = \"0123456789abcdef0123\"\n") == "ingest.cert_file")
        #expect(refusedKey("[ingest]\ncert_file = \"/etc/c.pem\"\n") == "ingest.key_file")
        #expect(refusedKey("[ingest]\nkey_file = \"/etc/c.key\"\n") == "ingest.cert_file")
        #expect(refusedKey("[ingest]\ncert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent.key\"\n") == "ingest.cert_file")
        #expect(refusedKey("[ingest]\ntoken = \"short\"\n") == "ingest.token")
        #expect(refusedKey("[ingest]\nlisten = \"nonsense\"\n") == "ingest.listen")
        #expect(refusedKey("[ingest]\nunix_socket = \"relative.sock\"\n") == "ingest.unix_socket")
        #expect(refusedKey("[ingest]\nmax_connections = 0\n") == "ingest.max_connections")
        #expect(refusedKey("[ingest]\nmax_body_bytes = \"2MB\"\nmax_buffered_bytes = \"1MB\"\n") == "ingest.max_buffered_bytes")
        #expect(refusedKey("[ingest]\nlisten_typo = 1\n") == "ingest.listen_typo")
    }
}
