import EdgeTransport
import Foundation

/// One request and its answer, with the local wall-clock times around it (for the clock
/// check).
struct Exchange: Sendable {
    let result: Result<HTTPResponse, TransportError>
    let sent: Date
    let received: Date
    /// How long it took (monotonic).
    let elapsed: Duration

    var response: HTTPResponse? { try? result.get() }
    var error: TransportError? {
        if case .failure(let error) = result { return error }
        return nil
    }
}

extension HTTPClient {
    /// Sends `request`; never throws (a transport failure is part of the exchange).
    func exchange(_ request: HTTPRequest) async -> Exchange {
        let sent = Date()
        let started = ContinuousClock.now
        let result: Result<HTTPResponse, TransportError>
        do throws(TransportError) {
            result = .success(try await send(request))
        } catch {
            result = .failure(error)
        }
        return Exchange(result: result, sent: sent, received: Date(), elapsed: ContinuousClock.now - started)
    }
}

/// The transport the doctor's HTTP requests use: the endpoint's, with the proxy the doctor
/// chose set explicitly (so it probes what it reports), no stall abort (an idle probe waits on
/// purpose) and TCP keepalive effectively off (it would hide a box that forgets idle
/// connections; the idle probe measures the network, not edgebuf's remedy for it).
func doctorTransport(_ endpoint: DoctorEndpoint, proxy: ProxySelection, requestTimeout: Duration) -> TransportConfiguration {
    var transport = endpoint.transport
    transport.proxy = proxy.transportValue
    transport.allowPlainHTTP = endpoint.isPlainHTTP
    transport.lowSpeedLimit = 0
    transport.requestTimeout = requestTimeout
    // Linux caps TCP_KEEPIDLE at 32767 s; no probe idles that long.
    transport.keepAliveIdle = .seconds(32_000)
    transport.keepAliveInterval = .seconds(600)
    transport.keepCookies = true
    return transport
}
