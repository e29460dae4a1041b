import CCurl
import Foundation

/// Diagnostic connections for `edgebuf doctor`: how far a connection gets (TCP, the proxy's
/// CONNECT tunnel, the TLS handshake), how long each step took, and what the server (or
/// whatever sits in between) presented. Nothing is sent beyond the handshakes: every probe
/// uses its own throwaway handle with CURLOPT_CONNECT_ONLY and is closed at once.
///
/// Blocking: call it from a thread of its own, never from the cooperative pool.
public enum ConnectionProbe {
    /// How far a probe goes.
    public enum Depth: Sendable, Equatable {
        /// A TCP connection to `host:port`, through the proxy's CONNECT tunnel when a proxy is
        /// configured. No TLS.
        case tcp
        /// TCP and a TLS handshake verified exactly like a request: the configured CA file (or
        /// the system store), the host name, the pins and the client certificate.
        case verifiedTLS
        /// TCP and a TLS handshake with certificate and host name verification OFF, only to
        /// read the chain that was presented (see `TLSProbe` for why this is safe: nothing is
        /// sent, nothing received is trusted). No pins, no client certificate.
        case unverifiedTLS
    }

    /// One certificate of the presented chain, as libcurl's CURLINFO_CERTINFO prints it.
    public struct Certificate: Sendable, Equatable {
        /// E.g. `CN=localhost`.
        public var subject: String
        /// E.g. `CN=mitmproxy, O=mitmproxy`.
        public var issuer: String
        /// Start of validity, e.g. `Nov 22 07:59:51 2026 GMT`.
        public var notBefore: String
        /// End of validity.
        public var notAfter: String
        /// E.g. `DNS:localhost, IP Address:127.0.0.1`; nil when the certificate has none.
        public var subjectAlternativeNames: String?
        /// The certificate in PEM, for computing its public-key pin.
        public var pem: String?

        public init(subject: String, issuer: String, notBefore: String, notAfter: String,
                    subjectAlternativeNames: String? = nil, pem: String? = nil) {
            self.subject = subject
            self.issuer = issuer
            self.notBefore = notBefore
            self.notAfter = notAfter
            self.subjectAlternativeNames = subjectAlternativeNames
            self.pem = pem
        }

        /// `notBefore` as a date, if it parses.
        public var notBeforeDate: Date? { TLSProbe.PresentedCertificate.parseDate(notBefore) }
        /// `notAfter` as a date, if it parses.
        public var notAfterDate: Date? { TLSProbe.PresentedCertificate.parseDate(notAfter) }
    }

    /// What one probe saw. Durations are measured by libcurl from the start of the probe.
    public struct Observation: Sendable {
        /// The address libcurl connected to (the proxy's when one is used).
        public var connectedAddress: String?
        /// The port libcurl connected to (the proxy's when one is used).
        public var connectedPort: Int?
        /// Until the TCP connection was up.
        public var tcpConnect: Duration?
        /// Until the TLS handshake was done (includes `tcpConnect` and the CONNECT tunnel).
        public var tlsDone: Duration?
        /// The whole probe.
        public var total: Duration = .zero
        /// The proxy's answer to CONNECT (nil when no proxy was asked).
        public var proxyConnectStatus: Int?
        /// The agreed TLS protocol, e.g. `TLSv1.3` (OpenSSL backend only).
        public var tlsVersion: String?
        /// The agreed cipher suite, e.g. `TLS_AES_256_GCM_SHA384` (OpenSSL backend only).
        public var tlsCipher: String?
        /// The chain the server presented, leaf first (empty when no handshake completed).
        public var certificates: [Certificate] = []
        /// Why the probe failed; nil when it got as far as its depth.
        public var error: TransportError?

        public init() {}
    }

    /// Probes `host:port` (TCP, or TCP + TLS). `host` may be a name or an IP literal (IPv6
    /// without brackets). The configuration's proxy setting applies exactly as for requests:
    /// nil uses libcurl's environment handling, "" none, anything else that proxy.
    public static func probe(host: String, port: Int, depth: Depth, configuration: TransportConfiguration) -> Observation {
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let url = (depth == .tcp ? "http://" : "https://") + authority + "/"
        var observation = Observation()
        let state = ProbeState()
        do throws(TransportError) {
            let handle = try CurlEasyHandle()
            state.handle = handle.raw
            try handle.applyNetworkOptions(configuration, protocols: depth == .tcp ? "http" : "https")
            try handle.set(CURLOPT_URL, url)
            // Stop after the connection (and handshake) is up: no HTTP request is sent.
            try handle.set(CURLOPT_CONNECT_ONLY, 1)
            try handle.set(CURLOPT_TIMEOUT_MS, configuration.connectTimeout.curlMilliseconds)
            // The TLS session pointer is filled only while the transfer runs, so the version and
            // cipher are read from the progress callback.
            try handle.setXferInfoFunction(edgeTransportProbeProgress)
            try handle.set(CURLOPT_XFERINFODATA, pointer: Unmanaged.passUnretained(state).toOpaque())
            try handle.set(CURLOPT_NOPROGRESS, false)
            switch depth {
            case .tcp:
                break
            case .verifiedTLS:
                try handle.set(CURLOPT_CERTINFO, true)
                try applyVerification(configuration.tls, to: handle)
            case .unverifiedTLS:
                try handle.set(CURLOPT_CERTINFO, true)
                try handle.set(CURLOPT_SSL_VERIFYPEER, false) // diagnostic probe only, see Depth
                try handle.set(CURLOPT_SSL_VERIFYHOST, 0)     // diagnostic probe only, see Depth
            }
            let rc = withExtendedLifetime(state) { handle.perform() }
            observation = read(handle, depth: depth)
            observation.tlsVersion = state.tlsVersion
            observation.tlsCipher = state.tlsCipher
            if rc != CURLE_OK {
                var seen = TransportError.Observation()
                seen.proxyConnectStatus = observation.proxyConnectStatus ?? 0
                observation.error = TransportError.classify(
                    curlCode: Int(rc.rawValue), message: handle.errorMessage, url: url, observation: seen)
            }
            // `handle` is released here: curl_easy_cleanup closes the connection.
        } catch {
            observation.error = error
        }
        return observation
    }

    /// Peer and host name verification as `HTTPConnection` sets it, plus pins and the client
    /// certificate, so a verified probe fails exactly where a request would.
    static func applyVerification(_ tls: TLSConfiguration, to handle: CurlEasyHandle) throws(TransportError) {
        try tls.validate()
        try handle.set(CURLOPT_SSL_VERIFYPEER, true)
        try handle.set(CURLOPT_SSL_VERIFYHOST, 2)
        if let caFile = tls.caFile {
            try handle.set(CURLOPT_CAINFO, caFile)
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
    }

    private static func read(_ handle: CurlEasyHandle, depth: Depth) -> Observation {
        var observation = Observation()
        func duration(_ info: CURLINFO, _ name: String) -> Duration? {
            guard let micros = try? handle.offT(info, name), micros > 0 else { return nil }
            return .microseconds(micros)
        }
        observation.connectedAddress = (try? handle.string(CURLINFO_PRIMARY_IP, "CURLINFO_PRIMARY_IP")).flatMap { $0?.isEmpty == false ? $0 : nil }
        observation.connectedPort = (try? handle.long(CURLINFO_PRIMARY_PORT, "CURLINFO_PRIMARY_PORT")).flatMap { $0 > 0 ? $0 : nil }
        observation.tcpConnect = duration(CURLINFO_CONNECT_TIME_T, "CURLINFO_CONNECT_TIME_T")
        observation.tlsDone = duration(CURLINFO_APPCONNECT_TIME_T, "CURLINFO_APPCONNECT_TIME_T")
        observation.total = duration(CURLINFO_TOTAL_TIME_T, "CURLINFO_TOTAL_TIME_T") ?? .zero
        let connectCode = (try? handle.long(CURLINFO_HTTP_CONNECTCODE, "CURLINFO_HTTP_CONNECTCODE")) ?? 0
        observation.proxyConnectStatus = connectCode > 0 ? connectCode : nil
        if depth != .tcp, let chain = try? handle.certificateChain() {
            observation.certificates = chain.map { fields in
                Certificate(
                    subject: TLSProbe.compactName(fields["Subject"] ?? ""),
                    issuer: TLSProbe.compactName(fields["Issuer"] ?? ""),
                    notBefore: fields["Start date"] ?? "",
                    notAfter: fields["Expire date"] ?? "",
                    subjectAlternativeNames: fields["X509v3 Subject Alternative Name"],
                    pem: fields["Cert"])
            }
        }
        return observation
    }
}

/// What the progress callback of a probe learns: the agreed TLS version and cipher.
final class ProbeState {
    var handle: UnsafeMutableRawPointer?
    var tlsVersion: String?
    var tlsCipher: String?
}

/// CURLOPT_XFERINFOFUNCTION of a probe: once the TLS session exists, reads its protocol
/// version and cipher (CURLINFO_TLS_SSL_PTR is only valid during the transfer).
func edgeTransportProbeProgress(
    _ userdata: UnsafeMutableRawPointer?, _ downloadTotal: curl_off_t, _ downloadNow: curl_off_t,
    _ uploadTotal: curl_off_t, _ uploadNow: curl_off_t
) -> Int32 {
    guard let userdata else { return 0 }
    let state = Unmanaged<ProbeState>.fromOpaque(userdata).takeUnretainedValue()
    guard state.tlsVersion == nil, let handle = state.handle else { return 0 }
    var info: UnsafeMutablePointer<curl_tlssessioninfo>?
    guard ccurl_getinfo_tls_session(handle, &info) == CURLE_OK, let info,
          info.pointee.backend == CURLSSLBACKEND_OPENSSL, let ssl = info.pointee.internals else { return 0 }
    state.tlsVersion = ccurl_openssl_protocol(ssl).map { String(cString: $0) }
    state.tlsCipher = ccurl_openssl_cipher(ssl).map { String(cString: $0) }
    return 0
}
