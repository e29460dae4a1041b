import EdgeTransport
import Foundation
import Logging
import Testing

/// Requests over real TLS against Python's http.server + ssl.
@Suite struct HTTPSRequestTests {
    let logger = Logger(label: "edgebuf.tests.transport")

    @Test func getAndPostOverHTTPSWithTheRightCA() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)

        let get = try await client.send(HTTPRequest(url: server.url("/echo"), headers: [("X-Device", "d-001")]))
        #expect(get.status == 200)
        #expect(get.header("content-type") == "application/json")
        #expect(get.header("X-ECHO") == "yes")
        #expect(get.newConnection)
        #expect(get.timings.tlsHandshake > 0)
        let getEcho = try Echo(get)
        #expect(getEcho.method == "GET")
        #expect(getEcho.header("X-Device") == "d-001")
        #expect(getEcho.header("User-Agent") == TransportConfiguration.defaultUserAgent)

        let body = Array(#"{"services":[]}"#.utf8)
        let post = try await client.send(HTTPRequest(
            method: .post, url: server.url("/echo"), headers: [("Content-Type", "application/json")], body: body))
        #expect(post.status == 200)
        #expect(post.bytesSent == body.count)
        let postEcho = try Echo(post)
        #expect(postEcho.method == "POST")
        #expect(postEcho.bodyLength == body.count)
        #expect(postEcho.bodySum == body.reduce(0) { $0 &+ UInt32($1) })
        #expect(postEcho.header("Content-Type") == "application/json")
        await client.shutdown()
    }

    @Test func secondRequestReusesTheConnection() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let first = try await client.send(HTTPRequest(url: server.url("/echo")))
        let second = try await client.send(HTTPRequest(url: server.url("/echo")))
        #expect(first.newConnection)
        #expect(!second.newConnection)
        #expect(second.timings.connect == 0)
        // The server saw both on the same TCP connection (same client port).
        #expect(try Echo(first).clientPort == Echo(second).clientPort)
        await client.shutdown()
    }

    @Test func largePostSendsNoExpectHeaderAndNoFormContentType() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        // 1 MiB: above libcurl's threshold for adding "Expect: 100-continue" (and waiting 1 s).
        let body = (0..<1_048_576).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let response = try await client.send(HTTPRequest(method: .post, url: server.url("/echo"), body: body))
        let echo = try Echo(response)
        #expect(echo.header("Expect") == nil)
        #expect(echo.header("Content-Type") == nil) // not libcurl's x-www-form-urlencoded
        #expect(echo.bodyLength == body.count)
        #expect(echo.bodySum == body.reduce(0) { $0 &+ UInt32($1) })
        #expect(response.bytesSent == body.count)
        await client.shutdown()
    }

    @Test func methodAndBodyDoNotLeakIntoTheNextRequest() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        _ = try await client.send(HTTPRequest(method: .post, url: server.url("/echo"), body: [1, 2, 3]))
        let put = try Echo(await client.send(HTTPRequest(method: .put, url: server.url("/echo"), body: [9])))
        let get = try Echo(await client.send(HTTPRequest(url: server.url("/echo"))))
        let delete = try Echo(await client.send(HTTPRequest(method: .delete, url: server.url("/echo"))))
        let emptyPost = try Echo(await client.send(HTTPRequest(method: .post, url: server.url("/echo"))))
        let head = try await client.send(HTTPRequest(method: .head, url: server.url("/echo")))
        #expect(put.method == "PUT" && put.bodyLength == 1)
        #expect(get.method == "GET" && get.bodyLength == 0 && get.header("Content-Length") == nil)
        #expect(delete.method == "DELETE" && delete.bodyLength == 0)
        #expect(emptyPost.method == "POST" && emptyPost.header("Content-Length") == "0")
        #expect(head.status == 200 && head.body.isEmpty)
        await client.shutdown()
    }

    @Test func concurrentSendsAreSerializedOnOneConnection() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let responses = try await withThrowingTaskGroup(of: HTTPResponse.self) { group in
            for _ in 0..<8 {
                group.addTask { try await client.send(HTTPRequest(url: server.url("/echo"))) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(responses.count == 8)
        #expect(responses.filter(\.newConnection).count == 1)
        #expect(Set(try responses.map { try Echo($0).clientPort }).count == 1)
        await client.shutdown()
    }

    @Test func statusAndRetryAfterComeBackAsAResponse() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let response = try await client.send(HTTPRequest(url: server.url("/status?code=503&retry-after=7")))
        #expect(response.status == 503)
        #expect(response.retryAfter() == .seconds(7))
        await client.shutdown()
    }

    @Test func responsesOverTheLimitAreRefused() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(
            configuration: testConfiguration(server.pki) { $0.maximumResponseBodyBytes = 4096 }, logger: logger)

        let exact = try await client.send(HTTPRequest(url: server.url("/bytes?n=4096")))
        #expect(exact.body.count == 4096)

        // Announced by Content-Length: refused before the body is read (curl 63).
        let announced = await transportError { try await client.send(HTTPRequest(url: server.url("/bytes?n=5000"))) }
        #expect(announced?.kind == .responseTooLarge)
        #expect(announced?.isTransient == false)

        // Chunked, no length known up front: the write callback stops at the limit (curl 23).
        let chunked = await transportError {
            try await client.send(HTTPRequest(url: server.url("/bytes?n=500000&chunked=1")))
        }
        #expect(chunked?.kind == .responseTooLarge)
        #expect(chunked?.curlCode == 23)
        #expect(chunked?.description.contains("4096 bytes") == true)
        await client.shutdown()
    }
}
