import Foundation
import TestSupport
import Testing

/// mitmproxy in front of the HTTPS simulator: as a TLS-intercepting proxy edgebuf must refuse
/// it (nothing sent, nothing lost, the issuer named); as a plain CONNECT tunnel it must work.
extension Uplink {
    @Suite struct InterceptionTests {
        @Test(arguments: ["iotda", "cumulocity"])
        func interceptingProxyIsRefusedAndNothingIsLost(platform: String) throws {
            let simulator = try Simulator(https: true)
            let mitm = try Mitmproxy(upstreamCA: simulator.caFile, tunnelOnly: false)
            var uplink = Workspace.Uplink(platform: platform, simulator: simulator)
            uplink.proxy = mitm.proxyURL
            let ws = try Workspace(uplink)
            let lines = platform == "iotda" ? (1...5).map { Line.property(seq: $0) } : (1...5).map { Line.measurement(seq: $0) }
            try ws.enqueue(lines)

            let (result, seconds) = try ws.flush(timeout: 3)
            #expect(result.status == 69, "flush --timeout 3 exited \(result.status) after \(seconds) s (137: killed by the test, still running 5 s past its timeout)")
            #expect(result.stderr.contains("not trusted") && result.stderr.contains("mitmproxy"), "\(result.stderr.suffix(1500))")
            // The saved uplink state says why, naming the proxy's CA as the issuer.
            let lastError = try ws.uplinkState()?.string("last_error") ?? ""
            #expect(lastError.contains("certificate is not trusted"), "\(lastError)")
            #expect(lastError.contains("CN=mitmproxy"), "\(lastError)")
            #expect(mitm.output.contains("does not trust the proxy's certificate"), "mitmproxy saw the client refuse it")
            // Retries in the audit, nothing sent, nothing lost.
            let audit = try ws.audit()
            if platform == "iotda" {
                // IoTDA authenticates first: the refusal shows as failed authentications.
                let failures = audit.filter { $0.string("event") == "authentication_failed" }
                #expect(!failures.isEmpty)
                #expect(failures.allSatisfy { $0.object("detail")?.string("outcome") == "failed" && $0.object("detail")?.isNull("http_status") == true })
            } else {
                let rows = audit.filter { $0.string("event") == "request" }.compactMap { $0.object("detail") }
                #expect(!rows.isEmpty)
                #expect(rows.allSatisfy { $0.string("outcome") == "retry" && $0.isNull("http_status") })
            }
            #expect(!audit.contains { $0.object("detail")?.string("outcome") == "delivered" })
            #expect(try ws.outbox().count == 5, "every record still in the outbox")
            #expect(try simulator.dataRequests().isEmpty && simulator.accepted().isEmpty, "nothing reached the platform")
            #expect(try ws.auditIntact())

            // Without the proxy, everything goes.
            uplink.proxy = nil
            try ws.write(uplink)
            let (direct, _) = try ws.flush(timeout: 30)
            #expect(direct.status == 0, "\(direct.stderr.suffix(1500))")
            let counts = acceptedCounts(try simulator.accepted())
            #expect(counts == Dictionary(uniqueKeysWithValues: (1...5).map { ($0, 1) }))
            #expect(try ws.outbox().isEmpty)
        }

        @Test func tunnellingProxyIsUsed() throws {
            let simulator = try Simulator(https: true)
            let mitm = try Mitmproxy(upstreamCA: nil, tunnelOnly: true)
            var uplink = Workspace.Uplink(simulator: simulator)
            uplink.proxy = mitm.proxyURL
            let ws = try Workspace(uplink)
            try ws.enqueue((1...5).map { Line.property(seq: $0) } + [Line.message(seq: 6)])
            let (result, _) = try ws.flush(timeout: 30)
            #expect(result.status == 0, "\(result.stderr.suffix(1500))")
            let counts = acceptedCounts(try simulator.accepted())
            #expect(counts == Dictionary(uniqueKeysWithValues: (1...6).map { ($0, 1) }))
            #expect(try ws.outbox().isEmpty)
            #expect(mitm.output.contains("server connect 127.0.0.1:\(simulator.port)"), "the requests went through the tunnel: \(mitm.output)")
        }
    }
}
