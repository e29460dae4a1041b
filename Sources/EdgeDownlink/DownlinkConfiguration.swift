import EdgeBuffer

/// The downlink's settings: where to poll, what to subscribe to, and the timing rules of the
/// Bayeux session. A plain struct with named defaults; reading it from `[downlink]` in the TOML
/// file comes later.
///
/// The timing values are derived from one setting, `networkIdleLimit`: how long the network
/// between the device and the cloud keeps an idle TCP connection (firewalls and NAT boxes
/// often drop them after 10-15 min, sometimes without a RST; shared/reference/bayeux-client.md).
public struct DownlinkConfiguration: Sendable, Equatable {
    /// The Bayeux endpoint, e.g. `https://tenant.example.com/notification/realtime`.
    public var url: String
    /// The channels to subscribe to, e.g. `/operations/12345`. Re-subscribed after every handshake.
    public var channels: [String]
    /// `tenant/user` for HTTP Basic (Cumulocity).
    public var username: String?
    /// The password; never logged, never shown by `status`.
    public var password: Secret?
    /// How long an idle TCP connection survives on the way to the server. Default 5 min.
    public var networkIdleLimit: Duration
    /// Added to the expected hold time of a connect to get its deadline, and the whole deadline
    /// of every other request (CometD's maxNetworkDelay). Default 10 s.
    public var pollDeadlineMargin: Duration
    /// The first backoff ceiling after a failure. Default 1 s.
    public var backoffInitial: Duration
    /// The largest backoff ceiling. Default 60 s (the CometD JavaScript client's cap).
    public var backoffMaximum: Duration
    /// The first wait after the server refused the credentials (`403::Handshake denied`, HTTP
    /// 401/403). Default 5 min: a wrong password must not hammer the server.
    public var credentialsBackoffInitial: Duration
    /// The longest wait after refused credentials. Default 30 min.
    public var credentialsBackoffMaximum: Duration
    /// After the server lost the session (`402::Unknown client`, advice `reconnect:
    /// handshake`), the new handshake waits a further uniform random part of this. A server
    /// restart drops every device's session in the same instant: without the spread a whole
    /// fleet would handshake within the same second. Default 5 s (`[downlink]
    /// rehandshake_spread`); 0 turns it off.
    public var rehandshakeSpread: Duration = .seconds(5)
    /// An optional `ext` object for the handshake, as JSON text (e.g. Cumulocity's
    /// `com.cumulocity.authn` token). It may hold a credential: never log it.
    public var handshakeExt: [UInt8]?

    public init(url: String = "", channels: [String] = [], username: String? = nil, password: Secret? = nil,
                networkIdleLimit: Duration = .seconds(300), pollDeadlineMargin: Duration = .seconds(10),
                backoffInitial: Duration = .seconds(1), backoffMaximum: Duration = .seconds(60),
                credentialsBackoffInitial: Duration = .seconds(300), credentialsBackoffMaximum: Duration = .seconds(1800),
                handshakeExt: [UInt8]? = nil) {
        self.url = url
        self.channels = channels
        self.username = username
        self.password = password
        self.networkIdleLimit = networkIdleLimit
        self.pollDeadlineMargin = pollDeadlineMargin
        self.backoffInitial = backoffInitial
        self.backoffMaximum = backoffMaximum
        self.credentialsBackoffInitial = credentialsBackoffInitial
        self.credentialsBackoffMaximum = credentialsBackoffMaximum
        self.handshakeExt = handshakeExt
    }

    /// The hold time asked of the server (`advice.timeout` of the handshake and of every
    /// connect but the first): one minute below the idle limit, so the server answers before a
    /// firewall forgets the connection, and never less than half the limit.
    /// 5 min → 240 s, 10 min → 540 s, 1 min → 30 s.
    public var requestedTimeout: Duration {
        max(networkIdleLimit - .seconds(60), networkIdleLimit / 2)
    }

    /// TCP keepalive idle time for the long poll (`CURLOPT_TCP_KEEPIDLE`): 60 s, or a quarter of
    /// the idle limit when that is shorter. Keepalive probes keep NAT entries alive and expose a
    /// peer that vanished; libcurl has keepalive off by default.
    public var tcpKeepaliveIdle: Duration {
        min(.seconds(60), networkIdleLimit / 4)
    }

    /// TCP keepalive probe interval (`CURLOPT_TCP_KEEPINTVL`): 20 s, or a twelfth of the idle
    /// limit when that is shorter.
    public var tcpKeepaliveInterval: Duration {
        min(.seconds(20), networkIdleLimit / 12)
    }
}
