import Foundation

/// Why an HTTP request did not produce a response.
///
/// A struct over a private code enum, so that cases can be added without breaking callers
/// (like async-http-client's `HTTPClientError`). Match on `kind`; use `isTransient` to decide
/// whether a retry may help, and `label` for logs and metrics.
///
/// It keeps libcurl's result code and error text and the URL *without* userinfo, query or
/// fragment. It never holds a header or a body, so it cannot leak a token or a payload.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable, Equatable {
        case dnsFailed
        case connectFailed
        case timedOut
        case tlsUntrusted(issuer: String?)
        case pinMismatch(issuer: String?)
        case tlsHandshakeFailed
        case clientCertificateRejected
        case proxyFailed(status: Int?)
        case connectionClosed
        case responseTooLarge(limit: Int?)
        case responseRefused
        case cancelled
        case plainHTTPRefused
        case invalidRequest(reason: String)
        case invalidConfiguration(reason: String)
        case shutDown
        case other
    }

    /// The category of a `TransportError`; compare with `==` against the static members.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        fileprivate let label: String
        fileprivate init(_ label: String) { self.label = label }
        public var description: String { label }

        /// The host name could not be resolved.
        public static let dnsFailed = Kind("dns_failed")
        /// TCP connect refused or unreachable.
        public static let connectFailed = Kind("connect_failed")
        /// Connect or request timeout, or a stalled transfer (low-speed limit).
        public static let timedOut = Kind("timed_out")
        /// The server certificate does not verify against the configured CAs (curl 60).
        public static let tlsUntrusted = Kind("tls_untrusted")
        /// The server key matches no configured pin (curl 90).
        public static let pinMismatch = Kind("pin_mismatch")
        /// TLS handshake failed: no common protocol version or cipher.
        public static let tlsHandshakeFailed = Kind("tls_handshake_failed")
        /// The server refused the client certificate.
        public static let clientCertificateRejected = Kind("client_certificate_rejected")
        /// The proxy could not be resolved or refused the CONNECT tunnel.
        public static let proxyFailed = Kind("proxy_failed")
        /// The connection closed, reset or broke before a complete response.
        public static let connectionClosed = Kind("connection_closed")
        /// The response exceeded the configured size limit.
        public static let responseTooLarge = Kind("response_too_large")
        /// The request's body sink refused the streamed answer (e.g. it could not store it).
        public static let responseRefused = Kind("response_refused")
        /// The request was cancelled.
        public static let cancelled = Kind("cancelled")
        /// An `http://` URL while plain HTTP is not allowed.
        public static let plainHTTPRefused = Kind("plain_http_refused")
        /// The request is malformed (URL, method, header).
        public static let invalidRequest = Kind("invalid_request")
        /// The configuration is invalid or libcurl lacks a needed feature.
        public static let invalidConfiguration = Kind("invalid_configuration")
        /// The client was shut down.
        public static let shutDown = Kind("shut_down")
        /// Any other libcurl failure; see `curlCode`.
        public static let other = Kind("other")
    }

    private let code: Code
    /// libcurl's CURLcode, when libcurl reported the failure.
    public let curlCode: Int?
    /// libcurl's error text (CURLOPT_ERRORBUFFER), with any userinfo or query of the URL removed.
    public let curlMessage: String?
    /// The request URL without userinfo, query or fragment.
    public let url: String?

    private init(_ code: Code, curlCode: Int? = nil, curlMessage: String? = nil, url: String? = nil) {
        self.code = code
        self.curlCode = curlCode
        self.curlMessage = curlMessage
        self.url = url.map(Self.redact(url:))
    }

    init(invalidConfiguration reason: String, curlCode: Int?) {
        self.init(.invalidConfiguration(reason: reason), curlCode: curlCode)
    }

    init(invalidRequest reason: String, url: String) {
        self.init(.invalidRequest(reason: reason), url: url)
    }

    static func plainHTTPRefused(url: String) -> TransportError { TransportError(.plainHTTPRefused, url: url) }
    static func cancelled(url: String?) -> TransportError { TransportError(.cancelled, url: url) }
    static func shutDown(url: String?) -> TransportError { TransportError(.shutDown, url: url) }

    // MARK: What callers look at

    /// The category, e.g. `.tlsUntrusted`.
    public var kind: Kind {
        switch code {
        case .dnsFailed: .dnsFailed
        case .connectFailed: .connectFailed
        case .timedOut: .timedOut
        case .tlsUntrusted: .tlsUntrusted
        case .pinMismatch: .pinMismatch
        case .tlsHandshakeFailed: .tlsHandshakeFailed
        case .clientCertificateRejected: .clientCertificateRejected
        case .proxyFailed: .proxyFailed
        case .connectionClosed: .connectionClosed
        case .responseTooLarge: .responseTooLarge
        case .responseRefused: .responseRefused
        case .cancelled: .cancelled
        case .plainHTTPRefused: .plainHTTPRefused
        case .invalidRequest: .invalidRequest
        case .invalidConfiguration: .invalidConfiguration
        case .shutDown: .shutDown
        case .other: .other
        }
    }

    /// The issuer of the certificate the server presented, for `.tlsUntrusted` and
    /// `.pinMismatch` (from a diagnostic handshake; nil if that failed too).
    public var issuer: String? {
        switch code {
        case .tlsUntrusted(let issuer), .pinMismatch(let issuer): issuer
        default: nil
        }
    }

    /// The HTTP status the proxy answered to CONNECT, for `.proxyFailed`.
    public var proxyStatus: Int? {
        if case .proxyFailed(let status) = code { return status }
        return nil
    }

    /// A short, payload-free name for logs and metrics: `tls_untrusted`, `curl_16`...
    public var label: String {
        if case .other = code, let curlCode { return "curl_\(curlCode)" }
        return kind.label
    }

    /// Whether the failure is a network condition that a later retry may not meet
    /// (DNS, connect, timeouts, broken connections, a proxy hiccup). Certificate, pin,
    /// configuration and request errors are not: retrying sends the same thing to the same
    /// wall, so they need a person (or a configuration change).
    public var isTransient: Bool {
        switch code {
        case .dnsFailed, .connectFailed, .timedOut, .connectionClosed:
            return true
        case .proxyFailed(let status):
            // 401/403/407: the proxy wants credentials or forbids the host; a retry won't help.
            return ![401, 403, 407].contains(status ?? 0)
        case .other:
            // HTTP/2 framing errors and out-of-memory can pass; unknown codes are not retried blindly.
            return [16, 27, 92].contains(curlCode ?? 0)
        default:
            return false
        }
    }

    /// What happened, why, and what to do, followed by the URL and libcurl's own words.
    public var description: String {
        var text = summary
        var context: [String] = []
        if let url { context.append(url) }
        if let curlCode {
            context.append("curl \(curlCode)" + (curlMessage.map { ": \($0)" } ?? ""))
        }
        if !context.isEmpty { text += " [" + context.joined(separator: "; ") + "]" }
        return text
    }

    private var summary: String {
        let message = (curlMessage ?? "").lowercased()
        switch code {
        case .dnsFailed:
            return "could not resolve the server's host name; DNS is unreachable or the name is wrong. Nothing was sent. Check the endpoint host and the device's DNS; edgebuf retries."
        case .connectFailed:
            return "could not connect to the server (refused or unreachable); the server is down, a firewall blocks the port or the network is down. Nothing was sent. edgebuf retries; if it persists check the endpoint port and the firewall."
        case .timedOut:
            if message.contains("connection timed out") || message.contains("connection timeout") || message.contains("resolving timed out") {
                return "connecting timed out; the network is down or a firewall drops the packets. Nothing was sent. edgebuf retries; raise the connect timeout on a slow link."
            }
            if message.contains("too slow") {
                return "the transfer stalled below the low-speed limit; the link is congested or the connection was silently dropped. The server may or may not have processed the request. edgebuf retries."
            }
            return "the request timed out before the response was complete; the network or the server is slow. The server may or may not have processed the request. edgebuf retries; raise the request timeout on a slow link."
        case .tlsUntrusted(let issuer):
            let who = "(issuer: \(issuer ?? "unknown"))"
            if message.contains("subject name") || message.contains("host name") || message.contains("hostname") {
                return "the server's certificate is not valid for this host name \(who); the endpoint is wrong or a TLS-intercepting proxy answered. Nothing was sent. Check the endpoint host name."
            }
            if message.contains("expired") || message.contains("not yet valid") {
                return "the server's certificate is expired or not yet valid \(who); the device clock is often the cause. Nothing was sent. Check the clock (NTP), then the server's certificate."
            }
            return "the server's certificate is not trusted \(who); a TLS-intercepting proxy is the usual cause. Nothing was sent. Have the proxy exempt this host, or check the configured CA file."
        case .pinMismatch(let issuer):
            return "the server's public key does not match any configured pin (issuer: \(issuer ?? "unknown")); a TLS-intercepting proxy or a rotated server key is the usual cause. Nothing was sent. If the platform rotated its key, add the new pin next to the old one."
        case .tlsHandshakeFailed:
            return "the TLS handshake failed; the server and edgebuf share no protocol version or cipher (edgebuf requires TLS 1.2 or newer). Nothing was sent. Check that the endpoint speaks TLS 1.2+ and that no proxy downgrades it."
        case .clientCertificateRejected:
            return "the server rejected the client certificate; it is missing, expired or not issued by a CA the server trusts. The server did not process the request. Check the client certificate and key files and their validity dates."
        case .proxyFailed(let status):
            let answer = status.map { " (it answered \($0) to CONNECT)" } ?? ""
            return "the proxy failed or refused to open a tunnel\(answer); it is unreachable, needs credentials or forbids the host. Nothing reached the server. Check the proxy setting (or https_proxy) and its credentials."
        case .connectionClosed:
            return "the connection closed before a complete response (reset, empty reply or truncated); a server restart, an idle-connection cutter or a flaky link. The server may or may not have processed the request. edgebuf retries."
        case .responseTooLarge(let limit):
            let size = limit.map { " of \($0) bytes" } ?? ""
            return "the server's response exceeded the limit\(size); the transfer was aborted to keep memory bounded. The server may have processed the request. Raise the maximum response size if the endpoint legitimately answers with more."
        case .responseRefused:
            return "the receiver of the streamed response could not take it (see its own error); the transfer was aborted. The server may have processed the request."
        case .cancelled:
            return "the request was cancelled before it completed. The server may or may not have processed it."
        case .plainHTTPRefused:
            return "refused to send a request over unencrypted http://; plain HTTP is not allowed. Nothing was sent. Use an https:// endpoint (plain HTTP is only for test setups and must be enabled explicitly)."
        case .invalidRequest(let reason):
            return "the request is invalid: \(reason). Nothing was sent. This is a bug in the caller or an invalid endpoint URL."
        case .invalidConfiguration(let reason):
            return "the transport configuration is invalid: \(reason). Nothing was sent. Fix the configuration (or install a libcurl with the missing feature)."
        case .shutDown:
            return "the HTTP client was shut down. Nothing was sent."
        case .other:
            return "the transfer failed. The server may or may not have processed the request."
        }
    }

    // MARK: Classification of libcurl results

    /// What the transfer observed besides the CURLcode, for `classify`.
    struct Observation {
        /// CURLINFO_HTTP_CONNECTCODE: the proxy's answer to CONNECT (0 if none).
        var proxyConnectStatus = 0
        /// The write or header callback refused data because a size limit was hit.
        var sizeLimitHit = false
        /// The body limit, for the message.
        var bodyLimit: Int?
        /// The request's body sink refused data.
        var sinkRefused = false
        /// A streamed request was silent past its timeout (the progress callback aborted it).
        var deadlinePassed = false
    }

    /// Maps a libcurl failure to a `TransportError`. Pure, so the table is unit-tested.
    /// For `.tlsUntrusted`/`.pinMismatch` the issuer is filled in later (`withIssuer`).
    static func classify(curlCode rc: Int, message rawMessage: String?, url: String, observation: Observation = Observation()) -> TransportError {
        let message = rawMessage.map { scrub($0, url: url) }
        let lower = (message ?? "").lowercased()
        let code: Code
        switch rc {
        case 6: code = .dnsFailed                                   // COULDNT_RESOLVE_HOST
        case 5, 97: code = .proxyFailed(status: nil)                 // COULDNT_RESOLVE_PROXY, PROXY
        case 7, 45: code = .connectFailed                            // COULDNT_CONNECT, INTERFACE_FAILED
        case 28: code = .timedOut                                    // OPERATION_TIMEDOUT
        case 60: code = .tlsUntrusted(issuer: nil)                   // PEER_FAILED_VERIFICATION
        case 90: code = .pinMismatch(issuer: nil)                    // SSL_PINNEDPUBKEYNOTMATCH
        case 35, 55, 56:                                             // SSL_CONNECT_ERROR, SEND_ERROR, RECV_ERROR
            if observation.proxyConnectStatus != 0 && observation.proxyConnectStatus != 200 {
                code = .proxyFailed(status: observation.proxyConnectStatus)
            } else if isClientCertificateAlert(lower) {
                code = .clientCertificateRejected
            } else if rc == 35 && !isBrokenConnection(lower) {
                code = .tlsHandshakeFailed
            } else {
                code = .connectionClosed
            }
        case 52, 18: code = .connectionClosed                        // GOT_NOTHING, PARTIAL_FILE
        case 65: code = .connectionClosed                            // SEND_FAIL_REWIND: a kept-alive connection died
                                                                     // after the request was sent; libcurl's own resend was refused
        case 63: code = .responseTooLarge(limit: observation.bodyLimit) // FILESIZE_EXCEEDED
        case 23 where observation.sizeLimitHit: code = .responseTooLarge(limit: observation.bodyLimit) // WRITE_ERROR
        case 23 where observation.sinkRefused: code = .responseRefused
        case 42 where observation.deadlinePassed: code = .timedOut  // ABORTED_BY_CALLBACK: a streamed answer silent too long
        case 42: code = .cancelled                                   // ABORTED_BY_CALLBACK
        case 1 where url.lowercased().hasPrefix("http://"): code = .plainHTTPRefused // UNSUPPORTED_PROTOCOL
        case 1: code = .invalidRequest(reason: "the URL scheme is not supported")
        case 3: code = .invalidRequest(reason: "the URL is malformed")
        case 58: code = .invalidConfiguration(reason: "the client certificate or key cannot be loaded (missing file, wrong format or key mismatch)")
        case 77: code = .invalidConfiguration(reason: "the CA file cannot be read")
        case 59: code = .invalidConfiguration(reason: "no usable cipher")
        default: code = .other
        }
        return TransportError(code, curlCode: rc, curlMessage: message, url: url)
    }

    /// The same error with the issuer of the presented certificate filled in.
    func withIssuer(_ issuer: String?) -> TransportError {
        let newCode: Code
        switch code {
        case .tlsUntrusted: newCode = .tlsUntrusted(issuer: issuer)
        case .pinMismatch: newCode = .pinMismatch(issuer: issuer)
        default: return self
        }
        // `url` is already redacted; redacting is idempotent.
        return TransportError(newCode, curlCode: curlCode, curlMessage: curlMessage, url: url)
    }

    /// An alert the server sends when it does not accept the client certificate (OpenSSL's
    /// wording: "tlsv13 alert certificate required", "sslv3 alert bad certificate", ...).
    private static func isClientCertificateAlert(_ lower: String) -> Bool {
        guard lower.contains("alert") else { return false }
        return ["certificate required", "bad certificate", "unknown ca", "certificate expired",
                "certificate unknown", "certificate revoked", "unsupported certificate"]
            .contains { lower.contains($0) }
    }

    /// A handshake that broke off rather than failed on parameters.
    private static func isBrokenConnection(_ lower: String) -> Bool {
        ["ssl_error_syscall", "connection reset", "unexpected eof", "broken pipe"].contains { lower.contains($0) }
    }

    // MARK: Redaction

    /// `scheme://host:port/path`: drops userinfo, query and fragment (they may hold secrets).
    public static func redact(url: String) -> String {
        var text = Substring(url)
        if let cut = text.firstIndex(where: { $0 == "?" || $0 == "#" }) { text = text[..<cut] }
        guard let schemeEnd = text.range(of: "://") else { return String(text) }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return String(text) }
        return String(text[..<schemeEnd.upperBound] + authority[authority.index(after: at)...] + rest[authorityEnd...])
    }

    /// Removes the URL's userinfo and query from libcurl's text, should it ever quote them.
    static func scrub(_ message: String, url: String) -> String {
        var secrets: [Substring] = []
        if let q = url.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            secrets.append(url[url.index(after: q)...])
        }
        if let schemeEnd = url.range(of: "://") {
            let rest = url[schemeEnd.upperBound...]
            let authority = rest[..<(rest.firstIndex(of: "/") ?? rest.endIndex)]
            if let at = authority.lastIndex(of: "@") { secrets.append(authority[..<at]) }
        }
        var result = message
        for secret in secrets where !secret.isEmpty {
            result = result.replacingOccurrences(of: String(secret), with: "***")
        }
        return result
    }
}
