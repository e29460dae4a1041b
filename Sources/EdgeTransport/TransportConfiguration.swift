/// Everything the HTTPS transport needs besides the request itself.
///
/// Nested `Sendable` values with named defaults; the CLI decodes them from the configuration
/// file. Durations are whole milliseconds or seconds as libcurl takes them.
public struct TransportConfiguration: Sendable, Equatable {
    /// The version reported in the default User-Agent.
    public static let edgebufVersion = "0.1.0"
    /// `edgebuf/<version>`.
    public static let defaultUserAgent = "edgebuf/\(edgebufVersion)"
    /// Time allowed for DNS, TCP connect and the TLS handshake (and a proxy CONNECT).
    public static let defaultConnectTimeout: Duration = .seconds(10)
    /// Time allowed for a whole request, connect included.
    public static let defaultRequestTimeout: Duration = .seconds(60)
    /// A transfer slower than this many bytes/s for `lowSpeedTime` is aborted as stalled.
    public static let defaultLowSpeedLimit = 1
    /// See `defaultLowSpeedLimit`.
    public static let defaultLowSpeedTime: Duration = .seconds(30)
    /// Idle time before the first TCP keepalive probe. Below the 60-120 s after which many
    /// NAT gateways and mobile carriers forget an idle flow, so a pooled connection survives.
    public static let defaultKeepAliveIdle: Duration = .seconds(45)
    /// Interval between TCP keepalive probes.
    public static let defaultKeepAliveInterval: Duration = .seconds(15)
    /// 4 MiB: the largest response body kept in memory; anything larger is an error.
    public static let defaultMaximumResponseBodyBytes = 4 * 1024 * 1024
    /// 64 KiB: the largest total size of response header lines kept in memory.
    public static let defaultMaximumResponseHeaderBytes = 64 * 1024

    /// Server authentication and client certificate.
    public var tls: TLSConfiguration
    /// The proxy URL (`http://host:port`, `https://...`, `socks5h://...`).
    /// nil: libcurl's standard environment handling (`https_proxy`, `HTTPS_PROXY`,
    /// `all_proxy`, `no_proxy`). An empty string: no proxy even if the environment names one.
    /// HTTPS always goes through a CONNECT tunnel, so the proxy never sees the traffic.
    public var proxy: String?
    /// See `defaultConnectTimeout`.
    public var connectTimeout: Duration
    /// See `defaultRequestTimeout`; `HTTPRequest.timeout` overrides it per request.
    public var requestTimeout: Duration
    /// See `defaultLowSpeedLimit` (bytes per second; 0 disables the stall check).
    public var lowSpeedLimit: Int
    /// See `defaultLowSpeedLimit`.
    public var lowSpeedTime: Duration
    /// See `defaultKeepAliveIdle`. TCP keepalive is always on.
    public var keepAliveIdle: Duration
    /// See `defaultKeepAliveInterval`.
    public var keepAliveInterval: Duration
    /// See `defaultMaximumResponseBodyBytes`.
    public var maximumResponseBodyBytes: Int
    /// See `defaultMaximumResponseHeaderBytes`.
    public var maximumResponseHeaderBytes: Int
    /// The User-Agent header.
    public var userAgent: String
    /// Allow `http://` URLs. Off by default: unencrypted requests are refused before any
    /// byte is sent. Meant for tests and an explicit configuration key only.
    public var allowPlainHTTP: Bool
    /// Keep cookies the server sets, in memory, for later requests on this connection (a
    /// Bayeux session may be pinned to a server node by a cookie). Off by default.
    public var keepCookies: Bool = false

    /// All defaults: system CAs, proxy from the environment, HTTPS only.
    public static let `default` = TransportConfiguration()

    /// Creates a configuration; every parameter has a named default.
    public init(
        tls: TLSConfiguration = .default,
        proxy: String? = nil,
        connectTimeout: Duration = defaultConnectTimeout,
        requestTimeout: Duration = defaultRequestTimeout,
        lowSpeedLimit: Int = defaultLowSpeedLimit,
        lowSpeedTime: Duration = defaultLowSpeedTime,
        keepAliveIdle: Duration = defaultKeepAliveIdle,
        keepAliveInterval: Duration = defaultKeepAliveInterval,
        maximumResponseBodyBytes: Int = defaultMaximumResponseBodyBytes,
        maximumResponseHeaderBytes: Int = defaultMaximumResponseHeaderBytes,
        userAgent: String = defaultUserAgent,
        allowPlainHTTP: Bool = false
    ) {
        self.tls = tls
        self.proxy = proxy
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTime = lowSpeedTime
        self.keepAliveIdle = keepAliveIdle
        self.keepAliveInterval = keepAliveInterval
        self.maximumResponseBodyBytes = maximumResponseBodyBytes
        self.maximumResponseHeaderBytes = maximumResponseHeaderBytes
        self.userAgent = userAgent
        self.allowPlainHTTP = allowPlainHTTP
    }

    /// The value for CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR.
    var allowedProtocols: String { allowPlainHTTP ? "http,https" : "https" }

    /// Rejects values that would make libcurl misbehave or disable a safeguard.
    func validate() throws(TransportError) {
        try tls.validate()
        func positive(_ d: Duration, _ name: String) throws(TransportError) {
            guard d > .zero else {
                throw TransportError(invalidConfiguration: "\(name) must be positive", curlCode: nil)
            }
        }
        try positive(connectTimeout, "the connect timeout")
        try positive(requestTimeout, "the request timeout")
        try positive(lowSpeedTime, "the low-speed time")
        try positive(keepAliveIdle, "the keepalive idle time")
        try positive(keepAliveInterval, "the keepalive interval")
        guard lowSpeedLimit >= 0 else {
            throw TransportError(invalidConfiguration: "the low-speed limit must not be negative", curlCode: nil)
        }
        guard maximumResponseBodyBytes > 0, maximumResponseHeaderBytes > 0 else {
            throw TransportError(invalidConfiguration: "the response size limits must be positive", curlCode: nil)
        }
        guard !userAgent.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
            throw TransportError(invalidConfiguration: "the user agent contains a line break", curlCode: nil)
        }
    }
}
