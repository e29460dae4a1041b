import EdgeBuffer
import EdgeTransport
import EdgeUplink
import Foundation

/// One endpoint the doctor checks: where it is, how edgebuf reaches it (TLS, proxy) and what
/// speaks there (which decides the credentials check and the kind of idle probe).
public struct DoctorEndpoint: Sendable {
    /// Why the endpoint is checked.
    public enum Role: String, Sendable, Equatable {
        /// `[uplink] url`.
        case uplink
        /// `[downlink] url`.
        case downlink
        /// A `--url` that is neither.
        case url
    }

    /// What answers at the URL.
    public enum Kind: String, Sendable, Equatable {
        /// Huawei IoTDA's device API (device-auth, token).
        case iotda
        /// Cumulocity's REST API (HTTP Basic).
        case cumulocity
        /// A Bayeux (CometD/Faye) endpoint: long polls.
        case bayeux
        /// Any HTTPS server: no credentials check, keep-alive idle probe.
        case https
    }

    /// The credentials to try. Held only to build requests; never printed.
    public enum Credentials: Sendable {
        /// IoTDA device id and secret.
        case iotda(deviceID: String, secret: DeviceSecret, signType: IoTDAAuth.SignType)
        /// HTTP Basic (`tenant/user` and password).
        case basic(username: String, password: Secret)
        /// None configured.
        case none
    }

    public var role: Role
    public var kind: Kind
    /// The base URL (uplink) or the Bayeux endpoint, without a trailing slash.
    public var url: String
    /// `uplink` or `downlink`: the section whose keys the fixes name.
    public var section: String
    /// TLS, proxy and timeouts as the engine would use them (`proxy` as configured).
    public var transport: TransportConfiguration
    public var credentials: Credentials
    /// Bayeux handshake `ext` (may hold a credential).
    public var handshakeExt: [UInt8]?
    /// The configured (or default) `[downlink] network_idle_limit`, for the idle verdict.
    public var networkIdleLimit: Duration

    /// `https` or `http`.
    public let scheme: String
    /// The host, without IPv6 brackets.
    public let host: String
    /// The port (443 or 80 when the URL names none).
    public let port: Int

    /// Creates an endpoint; throws a `DoctorError` when `url` is not an absolute http(s) URL.
    public init(role: Role, kind: Kind, url: String, section: String, transport: TransportConfiguration,
                credentials: Credentials = .none, handshakeExt: [UInt8]? = nil,
                networkIdleLimit: Duration = Self.defaultNetworkIdleLimit) throws {
        var trimmed = url
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let parts = Self.split(trimmed) else {
            throw DoctorError("\(TransportError.redact(url: url)) is not a URL the doctor can check: give https://host[:port][/path]")
        }
        self.role = role
        self.kind = kind
        self.url = trimmed
        self.section = section
        self.transport = transport
        self.credentials = credentials
        self.handshakeExt = handshakeExt
        self.networkIdleLimit = networkIdleLimit
        scheme = parts.scheme
        host = parts.host
        port = parts.port
    }

    /// 5 minutes: `DownlinkConfiguration`'s default.
    public static let defaultNetworkIdleLimit: Duration = .seconds(300)

    /// How fixes name the URL setting: `[uplink] url`, or `the URL` for a `--url`.
    public var urlKey: String { role == .url ? "the URL" : "[\(section)] url" }

    /// The URL for a plain GET (the clock without credentials, the keep-alive idle probe):
    /// the URL itself, or its root when it has no path.
    var requestURL: String {
        let path = URLComponents(string: url)?.path ?? ""
        return path.isEmpty ? url + "/" : url
    }

    /// Whether the URL is plain `http://`.
    public var isPlainHTTP: Bool { scheme == "http" }

    /// `uplink iotda https://...` for headings and progress lines (no userinfo, no query).
    public var label: String {
        let what = role == .url ? "url" : "\(role.rawValue) \(kind.rawValue)"
        return "\(what) \(TransportError.redact(url: url))"
    }

    /// Scheme, host and port of an absolute http(s) URL; nil for anything else.
    static func split(_ url: String) -> (scheme: String, host: String, port: Int)? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "https" || scheme == "http", var host = components.host, !host.isEmpty else { return nil }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { return nil }
        return (scheme, host, port)
    }

    /// Whether `other` names this endpoint (same URL, ignoring a trailing slash and case of
    /// scheme and host).
    func matches(_ other: String) -> Bool {
        var trimmed = other
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let parts = Self.split(trimmed), parts.scheme == scheme, parts.host.lowercased() == host.lowercased(),
              parts.port == port else { return false }
        return Self.path(of: trimmed) == Self.path(of: url)
    }

    private static func path(of url: String) -> String {
        URLComponents(string: url)?.path ?? ""
    }

    /// Whether a path looks like a Bayeux endpoint (Cumulocity's real-time notifications).
    static func looksLikeBayeux(_ url: String) -> Bool {
        let path = Self.path(of: url).lowercased()
        return path.hasSuffix("/notification/realtime") || path.hasSuffix("/cep/realtime")
    }
}

/// A doctor problem that is the caller's (a URL it cannot check, nothing to check).
public struct DoctorError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
