import EdgeTransport
import Foundation
import Logging
import Testing

/// Network failures against real sockets, and how they are classified.
@Suite struct FailureClassificationTests {
    let logger = Logger(label: "edgebuf.tests.transport")

    @Test func connectionRefusedIsATransientConnectFailure() async throws {
        let pki = try TestPKI.shared()
        let closedPort = try BoundSocket() // bound, not listening: connecting is refused
        let client = try HTTPClient(configuration: testConfiguration(pki), logger: logger)
        let error = try #require(await transportError {
            try await client.send(HTTPRequest(url: "https://127.0.0.1:\(closedPort.port)/"))
        })
        #expect(error.kind == .connectFailed)
        #expect(error.curlCode == 7)
        #expect(error.isTransient)
        #expect(error.label == "connect_failed")
        await client.shutdown()
    }

    @Test func unansweredRequestTimesOutWithinTheConfiguredTime() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(
            configuration: testConfiguration(server.pki) { $0.requestTimeout = .seconds(1) }, logger: logger)
        let started = ContinuousClock.now
        let error = try #require(await transportError { try await client.send(HTTPRequest(url: server.url("/hang"))) })
        let elapsed = ContinuousClock.now - started
        #expect(error.kind == .timedOut)
        #expect(error.curlCode == 28)
        #expect(error.isTransient)
        #expect(elapsed >= .milliseconds(900))
        // The configured 1 s, not the 60 s default, ended it. The bound is loose because the
        // whole suite runs in parallel on 2 cores; it is not a timing measurement.
        #expect(elapsed < .seconds(20))
        await client.shutdown()
    }

    @Test func perRequestTimeoutOverridesTheConfiguration() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger) // 15 s
        let started = ContinuousClock.now
        let error = await transportError {
            try await client.send(HTTPRequest(url: server.url("/hang"), timeout: .milliseconds(500)))
        }
        #expect(error?.kind == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(20))  // the 500 ms override, not the 60 s default
        await client.shutdown()
    }

    @Test func serverClosingWithoutAnswerIsConnectionClosed() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let error = try #require(await transportError { try await client.send(HTTPRequest(url: server.url("/close"))) })
        #expect(error.kind == .connectionClosed)
        #expect(error.curlCode == 52)
        #expect(error.isTransient)
        // The client recovers on a fresh connection.
        let response = try await client.send(HTTPRequest(url: server.url("/echo")))
        #expect(response.status == 200)
        #expect(response.newConnection)
        await client.shutdown()
    }

    /// A kept-alive connection that dies after the request was sent: libcurl would send the
    /// body again on a new connection by itself (the server would see two requests, the
    /// caller one attempt). Refused: one request reaches the server, the caller gets
    /// connectionClosed and decides.
    @Test func aDeadKeptAliveConnectionIsNotResentBehindTheCallersBack() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let first = try await client.send(HTTPRequest(method: .post, url: server.url("/echo"), body: Array("warm".utf8)))
        #expect(first.status == 200)
        let body = [UInt8](repeating: 0x61, count: 200_000)
        let error = try #require(await transportError {
            try await client.send(HTTPRequest(method: .post, url: server.url("/close"), body: body))
        })
        #expect(error.kind == .connectionClosed, "\(error)")
        #expect(error.curlCode == 65, "\(error)")
        #expect(error.isTransient)
        _ = try await server.requests(atLeast: 2)
        try await Task.sleep(for: .milliseconds(300))  // a resend would have arrived by now
        #expect(server.requests.filter { $0.contains(" /close ") }.count == 1, "\(server.requests)")
        // The next request goes out on a fresh connection, body intact.
        let after = try await client.send(HTTPRequest(method: .post, url: server.url("/echo"), body: body))
        #expect(after.status == 200 && after.newConnection)
        #expect(String(decoding: after.body, as: UTF8.self).contains("\"bodyLength\": 200000"))
        await client.shutdown()
    }

    @Test func cancellingTheTaskAbortsAHangingRequestQuickly() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki) { $0.requestTimeout = .seconds(30) }, logger: logger)
        let task = Task { try await client.send(HTTPRequest(url: server.url("/hang"))) }
        _ = try await server.process.line(startingWith: "hang") // the request is in flight
        let cancelled = ContinuousClock.now
        task.cancel()
        let error = await transportError { try await task.value }
        let elapsed = ContinuousClock.now - cancelled
        #expect(error?.kind == .cancelled)
        #expect(error?.curlCode == 42)
        #expect(error?.isTransient == false)
        // The cancellation wakes the transfer thread's curl_multi_poll (libcurl's own timers,
        // here the low-speed check once a second, would notice the flag too).
        #expect(elapsed < .seconds(15))  // cancellation, not the 30 s timeout; loose for a loaded 2-core CI
        // The connection was really dropped, not left hanging.
        _ = try await server.process.line(startingWith: "hang-end", within: .seconds(5))
        // And the client is still usable.
        #expect(try await client.send(HTTPRequest(url: server.url("/echo"))).status == 200)
        await client.shutdown()
    }

    @Test func cancellingAQueuedRequestFailsItWithoutWaitingForTheRunningOne() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        // Only the cancellation may end /hang. With a 30 s timeout (and the default 30 s
        // low-speed check) it ended by itself when the full suite's synchronous tests held
        // both threads of the cooperative pool for longer than that before this task got to
        // `running.cancel()`. The timeout is a backstop against a cancellation that never comes.
        let client = try HTTPClient(
            configuration: testConfiguration(server.pki) {
                $0.requestTimeout = .seconds(600)
                $0.lowSpeedLimit = 0
            },
            logger: logger)
        let running = Task { try await client.send(HTTPRequest(url: server.url("/hang"))) }
        _ = try await server.process.line(startingWith: "hang")
        let queued = Task { try await client.send(HTTPRequest(url: server.url("/echo"))) }
        try await Task.sleep(for: .milliseconds(50)) // let it reach the queue
        queued.cancel()
        let queuedError = await transportError { try await queued.value }
        #expect(queuedError?.kind == .cancelled)
        #expect(queuedError?.curlCode == nil) // never reached libcurl
        running.cancel()
        #expect(await transportError { try await running.value }?.kind == .cancelled)
        #expect(server.requests.count == 1) // only /hang
        await client.shutdown()
    }

    @Test func sendAfterShutdownFails() async throws {
        let pki = try TestPKI.shared()
        let client = try HTTPClient(configuration: testConfiguration(pki), logger: logger)
        await client.shutdown()
        let error = await transportError { try await client.send(HTTPRequest(url: "https://127.0.0.1:1/")) }
        #expect(error?.kind == .shutDown)
    }

    @Test func proxyRefusingTheTunnelIsAProxyFailure() async throws {
        let proxy = try await TestServer.start(.refusingProxy(status: 407))
        defer { proxy.stop() }
        let client = try HTTPClient(
            configuration: testConfiguration(proxy.pki) { $0.proxy = "http://127.0.0.1:\(proxy.port)" }, logger: logger)
        let error = try #require(await transportError { try await client.send(HTTPRequest(url: "https://127.0.0.1:9/x")) })
        #expect(error.kind == .proxyFailed)
        #expect(error.proxyStatus == 407)
        #expect(!error.isTransient)
        #expect(try await proxy.process.line(startingWith: "connect 127.0.0.1:9") == "connect 127.0.0.1:9")
        await client.shutdown()
    }
}
