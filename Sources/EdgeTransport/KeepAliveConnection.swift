import CCurl

/// One kept-alive HTTPS connection for `edgebuf doctor`'s idle probe: GET requests on a libcurl
/// handle that reuses its connection however long it sat idle, so that what happens to an
/// idle connection is the network's doing, not libcurl's.
///
/// libcurl does not reuse a connection that has been idle for more than CURLOPT_MAXAGE_CONN
/// (118 s by default since 7.65): it silently opens a new one. For requests that is a good
/// default (`HTTPConnection` keeps it), but a probe of idle periods of minutes would then
/// always see "a new connection" after 2 minutes. This handle raises the limit above the
/// longest idle period it is meant to hold.
///
/// Verification is exactly as for requests (`ConnectionProbe.Depth.verifiedTLS`). Blocking and
/// not Sendable, like `HTTPConnection`: create and use it on one thread.
public final class KeepAliveConnection {
    private let configuration: TransportConfiguration
    private let handle: CurlEasyHandle

    /// `maximumIdle`: the longest idle period after which the connection must still be reused.
    public init(configuration: TransportConfiguration, maximumIdle: Duration) throws(TransportError) {
        try configuration.validate()
        self.configuration = configuration
        handle = try CurlEasyHandle()
        try handle.applyNetworkOptions(configuration, protocols: configuration.allowedProtocols)
        try ConnectionProbe.applyVerification(configuration.tls, to: handle)
        try handle.set(CURLOPT_MAXAGE_CONN, (maximumIdle + .seconds(60)).curlSeconds)
        try handle.set(CURLOPT_USERAGENT, configuration.userAgent)
        try handle.set(CURLOPT_MAXFILESIZE_LARGE, offT: Int64(configuration.maximumResponseBodyBytes))
        try handle.setWriteFunction(edgeTransportWriteBody)
        try handle.setHeaderFunction(edgeTransportWriteHeader)
        try handle.setXferInfoFunction(edgeTransportTransferInfo)
        try handle.set(CURLOPT_NOPROGRESS, false)
        try handle.set(CURLOPT_HTTPGET, true)
    }

    /// GETs `url` (any status is a response; only transport failures throw). The response's
    /// `newConnection` says whether the kept connection was gone and a new one had to be opened.
    public func get(_ url: String, timeout: Duration) throws(TransportError) -> HTTPResponse {
        let state = TransferState(
            maximumBodyBytes: configuration.maximumResponseBodyBytes,
            maximumHeaderBytes: configuration.maximumResponseHeaderBytes,
            cancellation: CancellationFlag())
        let userdata = Unmanaged.passUnretained(state).toOpaque()
        defer {
            try? handle.set(CURLOPT_WRITEDATA, pointer: nil)
            try? handle.set(CURLOPT_HEADERDATA, pointer: nil)
            try? handle.set(CURLOPT_XFERINFODATA, pointer: nil)
        }
        try handle.set(CURLOPT_URL, url)
        try handle.set(CURLOPT_TIMEOUT_MS, timeout.curlMilliseconds)
        try handle.set(CURLOPT_WRITEDATA, pointer: userdata)
        try handle.set(CURLOPT_HEADERDATA, pointer: userdata)
        try handle.set(CURLOPT_XFERINFODATA, pointer: userdata)
        let rc = withExtendedLifetime(state) { handle.perform() }
        guard rc == CURLE_OK else {
            var observation = TransportError.Observation()
            observation.sizeLimitHit = state.sizeLimitHit
            observation.bodyLimit = configuration.maximumResponseBodyBytes
            throw TransportError.classify(curlCode: Int(rc.rawValue), message: handle.errorMessage, url: url, observation: observation)
        }
        let total = try handle.offT(CURLINFO_TOTAL_TIME_T, "CURLINFO_TOTAL_TIME_T")
        let connects = try handle.long(CURLINFO_NUM_CONNECTS, "CURLINFO_NUM_CONNECTS")
        return HTTPResponse(
            status: try handle.long(CURLINFO_RESPONSE_CODE, "CURLINFO_RESPONSE_CODE"),
            headers: state.headers,
            body: state.body,
            timings: .init(total: Double(total) / 1e6, connect: 0, tlsHandshake: 0),
            newConnection: connects > 0)
    }
}
