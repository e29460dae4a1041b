import EdgeBuffer
import EdgeTransport

/// The `[uplink]` section: where records go and how.
public struct UplinkConfiguration: Sendable, Equatable {
    /// `platform`: iotda or cumulocity.
    public var platform: Platform = .iotda
    /// `url`: the platform's base URL, e.g. `https://iot-da.example.com`.
    public var url: String = ""
    /// `device_id` and `secret` / `secret_file` (IoTDA).
    public var deviceID: String?
    public var secret: DeviceSecret?
    /// `sign_type`: 0 (timestamp not checked) or 1 (checked; needs a right clock).
    public var signType: IoTDAAuth.SignType = .unchecked
    /// `username` (`tenant/user`) and `password` / `password_file` (Cumulocity).
    public var username: String?
    public var password: Secret?
    /// TLS, proxy, timeouts.
    public var transport = TransportConfiguration()
    /// `max_body_bytes`, `max_children_per_request`.
    public var limits = Packer.Limits()
    /// `backoff_initial`, `backoff_max`, `max_requests_per_second`, `max_bytes_per_second`.
    public var sync = SyncConfiguration()
    /// How much one packing window reads: the window ends at the first full request after
    /// `windowRecords` records or `windowBytes` payload bytes (bounds memory, not throughput;
    /// a window holds at most twice this): with 1 MB bodies, one full request. The engine
    /// reads the next window while the last request is sent and committed, so at most two
    /// windows are held at once.
    public var windowRecords = 32_768
    public var windowBytes = 1 << 19

    public init() {}

    /// Whether an uplink is configured at all.
    public var isConfigured: Bool { !url.isEmpty }

    /// Reads `[uplink]`.
    public init(document: ConfigDocument) throws {
        self.init()
        let section = try document.section("uplink")
        if let name = try section.string("platform") {
            guard let value = Platform(rawValue: name) else { throw section.error("platform", "must be \"iotda\" or \"cumulocity\"") }
            platform = value
        }
        url = try section.string("url") ?? ""
        if !url.isEmpty && !url.hasPrefix("https://") && !url.hasPrefix("http://") {
            throw section.error("url", "must start with https://")
        }
        if url.hasSuffix("/") { url.removeLast() }
        deviceID = try section.string("device_id")
        secret = try section.secret("secret").map { DeviceSecret($0.value) }
        if let n = try section.int("sign_type", range: 0...1) { signType = n == 1 ? .checked : .unchecked }
        username = try section.string("username")
        password = try section.secret("password")
        var tls = TLSConfiguration()
        tls.caFile = try section.string("ca_file")
        tls.pinnedPublicKeys = try section.stringArray("pinned_public_keys") ?? []
        tls.clientCertificate = try section.string("client_cert")
        tls.clientKey = try section.string("client_key")
        transport.tls = tls
        transport.proxy = try section.string("proxy")
        if let s = try section.seconds("connect_timeout", range: 0.1...600) { transport.connectTimeout = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("request_timeout", range: 1...3600) { transport.requestTimeout = .milliseconds(Int64(s * 1000)) }
        if let b = try section.bool("allow_plain_http") { transport.allowPlainHTTP = b }
        if url.hasPrefix("http://") && !transport.allowPlainHTTP {
            throw section.error("url", "is plain http://, which sends records and credentials unencrypted; use https://, or set allow_plain_http = true for a test setup")
        }
        if let b = try section.bytes("max_body_bytes", range: 1024...(64 << 20)) { limits.maxBodyBytes = Int(b) }
        if let n = try section.int("max_children_per_request", range: 1...1000) { limits.maxChildrenPerRequest = Int(n) }
        if let s = try section.seconds("backoff_initial", range: 0.01...3600) { sync.backoff.initial = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("backoff_max", range: 0.01...86400) { sync.backoff.maximum = .milliseconds(Int64(s * 1000)) }
        if let jitter = try section.bool("backoff_jitter") { sync.backoff.jitter = jitter }
        if let s = try section.seconds("unauthorized_backoff", range: 0.01...86400) { sync.backoff.unauthorized = .milliseconds(Int64(s * 1000)) }
        if let r = try section.double("max_requests_per_second", range: 0...100_000), r > 0 { sync.pacing.maxRequestsPerSecond = r }
        if let b = try section.bytes("max_bytes_per_second", range: 0...(1 << 40)), b > 0 { sync.pacing.maxBytesPerSecond = Double(b) }
        if isConfigured {
            switch platform {
            case .iotda:
                guard deviceID != nil else { throw section.error("device_id", "is required for platform iotda") }
                guard let secret, !secret.isEmpty else { throw section.error("secret", "is required for platform iotda (or secret_file)") }
            case .cumulocity:
                guard let username, username.contains("/") else { throw section.error("username", "is required for platform cumulocity, as tenant/user") }
                guard password != nil else { throw section.error("password", "is required for platform cumulocity (or password_file)") }
            }
        }
    }
}
