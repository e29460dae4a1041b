import CCurl

/// One kept-alive HTTP(S) connection: a libcurl easy handle reused across requests, so the
/// TCP connection and TLS session survive between them.
///
/// Blocking and not Sendable: create it on the thread that uses it (`HTTPClient` does that
/// on a dedicated thread). The libcurl handle is freed when the connection is deinitialized.
public final class HTTPConnection {
    /// The libcurl version in use, e.g. "7.88.1" (for `edgebuf doctor` and bug reports).
    public static var libcurlVersion: String { Curl.version }

    /// The configuration fixed at creation.
    public let configuration: TransportConfiguration
    private let handle: CurlEasyHandle
    /// Runs the handle's transfers (and keeps its connection cache): see `CurlMultiHandle`.
    private let multi: CurlMultiHandle

    /// Creates the handle and sets every option that does not change per request.
    public init(configuration: TransportConfiguration = .default) throws(TransportError) {
        try configuration.validate()
        self.configuration = configuration
        handle = try CurlEasyHandle()
        multi = try CurlMultiHandle()
        try applyFixedOptions()
    }

    private func applyFixedOptions() throws(TransportError) {
        try handle.applyNetworkOptions(configuration, protocols: configuration.allowedProtocols)

        // Verification is always on, and set explicitly rather than trusting defaults.
        try handle.set(CURLOPT_SSL_VERIFYPEER, true)
        try handle.set(CURLOPT_SSL_VERIFYHOST, 2)
        let tls = configuration.tls
        if let caFile = tls.caFile {
            try handle.set(CURLOPT_CAINFO, caFile)
            // Debian's libcurl also trusts CURLOPT_CAPATH (/etc/ssl/certs) by default; a
            // configured CA file must be the only trust anchor.
            try handle.set(CURLOPT_CAPATH, nil as String?)
        }
        if let pins = tls.pinnedPublicKeyOption {
            try handle.set(CURLOPT_PINNEDPUBLICKEY, pins)
        }
        if let certificate = tls.clientCertificate {
            try handle.set(CURLOPT_SSLCERTTYPE, "PEM")
            try handle.set(CURLOPT_SSLCERT, certificate)
            if let key = tls.clientKey {
                try handle.set(CURLOPT_SSLKEYTYPE, "PEM")
                try handle.set(CURLOPT_SSLKEY, key)
            }
        }

        try handle.set(CURLOPT_USERAGENT, configuration.userAgent)
        // Refuse early when the server announces a Content-Length over the limit; the write
        // callback enforces it for chunked bodies.
        try handle.set(CURLOPT_MAXFILESIZE_LARGE, offT: Int64(configuration.maximumResponseBodyBytes))
        try handle.setWriteFunction(edgeTransportWriteBody)
        try handle.setHeaderFunction(edgeTransportWriteHeader)
        try handle.setXferInfoFunction(edgeTransportTransferInfo)
        try handle.set(CURLOPT_NOPROGRESS, false) // or the xferinfo callback is never called
        // The body goes through a read callback, not POSTFIELDS: when a kept-alive connection
        // dies after a request was sent, libcurl would send a POSTFIELDS body again on a new
        // connection by itself, and the server would see a request nobody audited. With a
        // seek callback that refuses that rewind the transfer fails instead (curl 65).
        try handle.setReadFunction(edgeTransportReadBody)
        try handle.setSeekFunction(edgeTransportSeekBody)
    }

    /// Sends `request` and waits for the whole response (blocking).
    public func perform(_ request: HTTPRequest) throws(TransportError) -> HTTPResponse {
        try perform(request, cancellation: CancellationFlag())
    }

    /// Sends `request`; setting `cancellation` from another thread aborts the transfer at once
    /// (it wakes the thread's `curl_multi_poll`).
    public func perform(_ request: HTTPRequest, cancellation: CancellationFlag) throws(TransportError) -> HTTPResponse {
        try checkScheme(request.url)
        try request.validate()
        if cancellation.isCancelled { throw .cancelled(url: request.url) }

        let state = TransferState(
            maximumBodyBytes: configuration.maximumResponseBodyBytes,
            maximumHeaderBytes: configuration.maximumResponseHeaderBytes,
            cancellation: cancellation,
            sink: request.bodySink)
        let userdata = Unmanaged.passUnretained(state).toOpaque()

        let headerList = makeHeaderList(request)
        defer { curl_slist_free_all(headerList) }
        defer {
            // Nothing per-request may outlive the request inside the handle: the header list,
            // the body pointer and the userdata are all about to be freed.
            try? handle.set(CURLOPT_HTTPHEADER, slist: nil)
            try? handle.set(CURLOPT_POSTFIELDS, pointer: nil)
            try? handle.set(CURLOPT_WRITEDATA, pointer: nil)
            try? handle.set(CURLOPT_HEADERDATA, pointer: nil)
            try? handle.set(CURLOPT_XFERINFODATA, pointer: nil)
            try? handle.set(CURLOPT_READDATA, pointer: nil)
            try? handle.set(CURLOPT_SEEKDATA, pointer: nil)
        }

        try handle.set(CURLOPT_URL, request.url)
        let timeout = request.timeout ?? configuration.requestTimeout
        if request.bodySink != nil {
            // A streamed body bounds its own memory: no Content-Length limit (0 is none); and
            // the timeout bounds the wait for the answer and each silence in it, not the
            // answer (see TransferState).
            try handle.set(CURLOPT_MAXFILESIZE_LARGE, offT: 0)
            try handle.set(CURLOPT_TIMEOUT_MS, 0)
            state.silenceLimit = timeout
        } else {
            try handle.set(CURLOPT_MAXFILESIZE_LARGE, offT: Int64(configuration.maximumResponseBodyBytes))
            try handle.set(CURLOPT_TIMEOUT_MS, timeout.curlMilliseconds)
        }
        try handle.set(CURLOPT_HTTPHEADER, slist: headerList)
        try handle.set(CURLOPT_WRITEDATA, pointer: userdata)
        try handle.set(CURLOPT_HEADERDATA, pointer: userdata)
        try handle.set(CURLOPT_XFERINFODATA, pointer: userdata)
        try handle.set(CURLOPT_READDATA, pointer: userdata)
        try handle.set(CURLOPT_SEEKDATA, pointer: userdata)

        let rc: CURLcode = try withExtendedLifetime(state) { () throws(TransportError) -> CURLcode in
            try request.body.withUnsafeBufferPointer { (body) throws(TransportError) -> CURLcode in
                state.upload = UnsafeRawBufferPointer(body)
                defer { state.upload = UnsafeRawBufferPointer(start: nil, count: 0) }
                try setMethod(request, body: body)
                return handle.perform(in: multi, cancellation: cancellation)
            }
        }

        guard rc == CURLE_OK else {
            throw failure(rc, request: request, state: state)
        }
        return try response(state: state)
    }

    // MARK: Per-request options

    private func checkScheme(_ url: String) throws(TransportError) {
        let lower = url.prefix(8).lowercased()
        if lower.hasPrefix("https://") { return }
        if lower.hasPrefix("http://") {
            if configuration.allowPlainHTTP { return }
            throw .plainHTTPRefused(url: url)
        }
        throw TransportError(invalidRequest: "the URL must start with https://", url: url)
    }

    /// Sets the method and body options, resetting whatever the previous request left. The
    /// body itself is read through the transfer state (CURLOPT_READFUNCTION).
    private func setMethod(_ request: HTTPRequest, body: UnsafeBufferPointer<UInt8>) throws(TransportError) {
        try handle.set(CURLOPT_NOBODY, false)
        if request.carriesBody {
            try handle.set(CURLOPT_POST, true)
            // No POSTFIELDS: libcurl reads exactly this many bytes from the read callback.
            try handle.set(CURLOPT_POSTFIELDS, pointer: nil)
            try handle.set(CURLOPT_POSTFIELDSIZE_LARGE, offT: Int64(body.count))
            try handle.set(CURLOPT_CUSTOMREQUEST, request.method == .post ? nil : request.method.rawValue)
        } else {
            try handle.set(CURLOPT_HTTPGET, true)
            if request.method == .head {
                try handle.set(CURLOPT_NOBODY, true)
                try handle.set(CURLOPT_CUSTOMREQUEST, nil as String?)
            } else {
                try handle.set(CURLOPT_CUSTOMREQUEST, request.method == .get ? nil : request.method.rawValue)
            }
        }
    }

    /// The request's headers as a curl_slist, plus two that fix libcurl defaults for bodies.
    private func makeHeaderList(_ request: HTTPRequest) -> UnsafeMutablePointer<curl_slist>? {
        var list: UnsafeMutablePointer<curl_slist>?
        func append(_ line: String) {
            // curl_slist_append copies the string. It returns NULL only when out of memory;
            // then the old list is kept and the header is missing, so fail loudly instead.
            guard let extended = curl_slist_append(list, line) else { fatalError("curl_slist_append: out of memory") }
            list = extended
        }
        for (name, value) in request.headers {
            // "Name;" is libcurl's syntax for a header with an empty value ("Name:" deletes it).
            append(value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        if request.carriesBody {
            if request.header("Expect") == nil {
                // libcurl sends "Expect: 100-continue" for bodies over 1 MiB and then waits up
                // to a second for a 100 that many servers never send; "Expect:" removes it.
                append("Expect:")
            }
            if request.header("Content-Type") == nil {
                // POSTFIELDS implies application/x-www-form-urlencoded unless told otherwise.
                append("Content-Type:")
            }
        }
        return list
    }

    // MARK: Results

    private func failure(_ rc: CURLcode, request: HTTPRequest, state: TransferState) -> TransportError {
        var observation = TransportError.Observation()
        observation.proxyConnectStatus = (try? handle.long(CURLINFO_HTTP_CONNECTCODE, "CURLINFO_HTTP_CONNECTCODE")) ?? 0
        observation.sizeLimitHit = state.sizeLimitHit
        observation.sinkRefused = state.sinkRefused
        observation.deadlinePassed = state.deadlinePassed
        observation.bodyLimit = configuration.maximumResponseBodyBytes
        let error = TransportError.classify(
            curlCode: Int(rc.rawValue), message: handle.errorMessage, url: request.url, observation: observation)
        if error.kind == .tlsUntrusted || error.kind == .pinMismatch {
            // Who signed what we were shown? A separate throwaway handshake (see TLSProbe).
            let presented = TLSProbe.presentedCertificate(url: request.url, configuration: configuration)
            return error.withIssuer(presented?.issuer)
        }
        return error
    }

    private func response(state: TransferState) throws(TransportError) -> HTTPResponse {
        let status = try handle.long(CURLINFO_RESPONSE_CODE, "CURLINFO_RESPONSE_CODE")
        let total = try handle.offT(CURLINFO_TOTAL_TIME_T, "CURLINFO_TOTAL_TIME_T")
        let connect = try handle.offT(CURLINFO_CONNECT_TIME_T, "CURLINFO_CONNECT_TIME_T")
        let tls = try handle.offT(CURLINFO_APPCONNECT_TIME_T, "CURLINFO_APPCONNECT_TIME_T")
        let uploaded = try handle.offT(CURLINFO_SIZE_UPLOAD_T, "CURLINFO_SIZE_UPLOAD_T")
        let connects = try handle.long(CURLINFO_NUM_CONNECTS, "CURLINFO_NUM_CONNECTS")
        return HTTPResponse(
            status: status,
            headers: state.headers,
            body: state.body,
            timings: .init(total: Double(total) / 1e6, connect: Double(connect) / 1e6, tlsHandshake: Double(tls) / 1e6),
            bytesSent: Int(uploaded),
            newConnection: connects > 0)
    }
}
