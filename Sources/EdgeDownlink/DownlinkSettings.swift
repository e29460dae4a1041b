import EdgeBuffer
import EdgeTransport

/// How long the inbox keeps what it received (`[inbox]`). Every purge is audited.
public struct InboxRetention: Sendable, Equatable {
    /// `max_records`: the newest this many rows are kept. Default 100,000.
    public var maxRecords: Int64? = 100_000
    /// `max_age`: rows received longer ago are removed. Default 30 days.
    public var maxAgeMilliseconds: Int64? = 30 * 86_400_000

    public init() {}

    /// Reads `[inbox]`.
    public init(document: ConfigDocument) throws {
        self.init()
        let section = try document.section("inbox")
        if let n = try section.int("max_records", range: 1...Int64(Int32.max)) { maxRecords = n }
        if let s = try section.seconds("max_age", range: 60...(86400 * 3650)) { maxAgeMilliseconds = Int64(s * 1000) }
    }
}

/// Everything the downlink needs from the configuration file: the session settings, the
/// transport (TLS, proxy) and the inbox retention.
public struct DownlinkSettings: Sendable, Equatable {
    public var session = DownlinkConfiguration()
    /// TLS and proxy; `run` derives the long-poll and control connections from it.
    public var transport = TransportConfiguration()
    public var retention = InboxRetention()

    public init() {}

    /// Whether a downlink is configured at all (`[downlink] url`).
    public var isConfigured: Bool { !session.url.isEmpty }

    /// Reads `[downlink]` and `[inbox]`. TLS settings (`ca_file`, `pinned_public_keys`,
    /// `client_cert`, `client_key`, `proxy`) and, for a Cumulocity uplink, `username` and
    /// `password` are taken from `[uplink]` when `[downlink]` does not set them.
    public init(document: ConfigDocument) throws {
        self.init()
        retention = try InboxRetention(document: document)
        let section = try document.section("downlink")
        let uplink = try document.section("uplink")
        var url = try section.string("url") ?? ""
        if url.hasSuffix("/") { url.removeLast() }
        session.url = url
        if let channels = try section.stringArray("channels") {
            for (index, channel) in channels.enumerated() {
                guard channel.hasPrefix("/"), !channel.hasPrefix("/meta/"), channel.count > 1,
                      !channel.contains(where: { $0 == " " || $0.isNewline }) else {
                    throw section.error("channels", "entry \(index + 1) (\(channel)) is not a channel: give names like \"/operations/12345\" (not /meta/...)")
                }
            }
            session.channels = channels
        }
        if let idle = try section.seconds("network_idle_limit", range: 2...(86400)) {
            session.networkIdleLimit = .milliseconds(Int64(idle * 1000))
        }
        if let s = try section.seconds("poll_deadline_margin", range: 0.5...600) { session.pollDeadlineMargin = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("backoff_initial", range: 0.01...3600) { session.backoffInitial = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("backoff_max", range: 0.01...86400) { session.backoffMaximum = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("rehandshake_spread", range: 0...600) { session.rehandshakeSpread = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("credentials_backoff", range: 0.01...86400) {
            session.credentialsBackoffInitial = .milliseconds(Int64(s * 1000))
            session.credentialsBackoffMaximum = max(session.credentialsBackoffMaximum, session.credentialsBackoffInitial)
        }

        let sharesCumulocityLogin = (try uplink.string("platform")) == "cumulocity"
        session.username = try section.string("username") ?? (sharesCumulocityLogin ? try uplink.string("username") : nil)
        session.password = try section.secret("password") ?? (sharesCumulocityLogin ? try uplink.secret("password") : nil)

        var tls = TLSConfiguration()
        tls.caFile = try section.string("ca_file") ?? uplink.string("ca_file")
        tls.pinnedPublicKeys = try section.stringArray("pinned_public_keys") ?? uplink.stringArray("pinned_public_keys") ?? []
        tls.clientCertificate = try section.string("client_cert") ?? uplink.string("client_cert")
        tls.clientKey = try section.string("client_key") ?? uplink.string("client_key")
        transport.tls = tls
        transport.proxy = try section.string("proxy") ?? uplink.string("proxy")
        if let s = try section.seconds("connect_timeout", range: 0.1...600) { transport.connectTimeout = .milliseconds(Int64(s * 1000)) }
        transport.allowPlainHTTP = try section.bool("allow_plain_http") ?? false
        transport.keepCookies = true

        guard isConfigured else { return }
        guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw section.error("url", "must start with https://, e.g. https://tenant.example.com/notification/realtime")
        }
        if url.hasPrefix("http://") && !transport.allowPlainHTTP {
            throw section.error("url", "is plain http://, which sends notifications and credentials unencrypted; use https://, or set allow_plain_http = true for a test setup")
        }
        guard !session.channels.isEmpty else {
            throw section.error("channels", "is required: the channels to subscribe to, e.g. [\"/operations/12345\"]")
        }
        if session.username != nil && session.password == nil {
            throw section.error("password", "is required with username (or password_file)")
        }
    }

    /// The long poll's connection: keepalive from the idle limit. No low-speed abort: its
    /// time would be the hold plus the margin, which is the poll's deadline anyway (the
    /// session cancels it then, and curl's own timeout follows a second later), and a
    /// low-speed limit makes libcurl wake its thread every second to measure the speed.
    public var pollTransport: TransportConfiguration {
        var t = transport
        t.keepAliveIdle = max(session.tcpKeepaliveIdle, .seconds(1))
        t.keepAliveInterval = max(session.tcpKeepaliveInterval, .seconds(1))
        t.lowSpeedLimit = 0
        t.lowSpeedTime = session.requestedTimeout + session.pollDeadlineMargin
        t.requestTimeout = session.requestedTimeout + session.pollDeadlineMargin
        return t
    }

    /// Subscribe, unsubscribe, handshake-free control requests: the margin is their deadline.
    public var controlTransport: TransportConfiguration {
        var t = transport
        t.keepAliveIdle = max(session.tcpKeepaliveIdle, .seconds(1))
        t.keepAliveInterval = max(session.tcpKeepaliveInterval, .seconds(1))
        t.requestTimeout = session.pollDeadlineMargin
        t.lowSpeedTime = session.pollDeadlineMargin
        return t
    }
}
