import EdgeTransport
import Foundation
import Logging
import Synchronization
import Testing

/// A request with a body sink: a 200 answer's body goes to the sink as it arrives, with no
/// size limit, and the timeout bounds each silence, not the whole transfer.
@Suite struct ResponseBodySinkTests {
    let logger = Logger(label: "edgebuf.tests.transport")

    final class Counter: ResponseBodySink {
        let received = Mutex(0)
        let refuseAfter: Int?
        init(refuseAfter: Int? = nil) { self.refuseAfter = refuseAfter }
        func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
            received.withLock { total in
                total += bytes.count
                return refuseAfter.map { total <= $0 } ?? true
            }
        }
        var count: Int { received.withLock { $0 } }
    }

    @Test func aStreamedBodyHasNoSizeLimitAndIsNotHeld() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki) { $0.maximumResponseBodyBytes = 4096 }, logger: logger)
        for query in ["n=500000&chunked=1", "n=500000"] {
            let sink = Counter()
            let response = try await client.send(HTTPRequest(url: server.url("/bytes?" + query), bodySink: sink))
            #expect(response.status == 200)
            #expect(response.body.isEmpty)
            #expect(sink.count == 500_000, "\(query)")
        }
        // Another status is held as always (within the limit), and the sink sees none of it.
        let sink = Counter()
        let refused = try await client.send(HTTPRequest(url: server.url("/status?code=503"), bodySink: sink))
        #expect(refused.status == 503)
        #expect(sink.count == 0)
        await client.shutdown()
    }

    @Test func theTimeoutBoundsEachSilenceNotTheWholeAnswer() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        // 30 chunks 0.1 s apart: 3 s in all, never 1 s silent.
        let slow = "/bytes?n=30000&chunked=1&pause=0.1"
        let sink = Counter()
        let response = try await client.send(HTTPRequest(url: server.url(slow), timeout: .seconds(1), bodySink: sink))
        #expect(response.status == 200 && sink.count == 30_000)
        // The same without a sink: the timeout is the whole transfer's.
        let whole = await transportError { try await client.send(HTTPRequest(url: server.url(slow), timeout: .seconds(1))) }
        #expect(whole?.kind == .timedOut)
        // Silent for 3 s after half the body: timed out, not cancelled.
        let stalled = Counter()
        let silence = await transportError {
            try await client.send(HTTPRequest(url: server.url("/bytes?n=20000&chunked=1&stall=3"), timeout: .seconds(1), bodySink: stalled))
        }
        #expect(silence?.kind == .timedOut, "\(String(describing: silence))")
        #expect(stalled.count >= 10_000 && stalled.count < 20_000)
        await client.shutdown()
    }

    @Test func aSinkThatRefusesEndsTheTransfer() async throws {
        let server = try await TestServer.start()
        defer { server.stop() }
        let client = try HTTPClient(configuration: testConfiguration(server.pki), logger: logger)
        let error = await transportError {
            try await client.send(HTTPRequest(url: server.url("/bytes?n=500000&chunked=1"), bodySink: Counter(refuseAfter: 10_000)))
        }
        #expect(error?.kind == .responseRefused)
        #expect(error?.curlCode == 23)
        await client.shutdown()
    }
}
