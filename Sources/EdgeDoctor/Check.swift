/// The lines of the checklist, in the order they are run and shown.
public enum Check: String, Sendable, Equatable, CaseIterable {
    /// getaddrinfo of the endpoint's host.
    case dns
    /// TCP connect to the endpoint's port (or to the proxy).
    case tcp
    /// The proxy in use, if any, and whether CONNECT works through it.
    case proxy
    /// The TLS handshake: version, cipher, the chain and whether it leads to a trusted CA.
    case tls
    /// The certificate's names against the endpoint's host.
    case hostName = "host_name"
    /// The certificate's validity dates against the local clock.
    case validity
    /// The server's public key against `pinned_public_keys`.
    case pin
    /// IoTDA device-auth (and the token's use), a Cumulocity authenticated GET or a Bayeux
    /// handshake.
    case credentials
    /// The local clock against the server's `Date` header.
    case clock
    /// How long an idle connection survives (`--idle-probe`).
    case idle

    /// The label in the text checklist.
    public var title: String {
        switch self {
        case .dns: return "name resolution"
        case .tcp: return "tcp connect"
        case .proxy: return "proxy"
        case .tls: return "tls"
        case .hostName: return "host name"
        case .validity: return "validity"
        case .pin: return "pin"
        case .credentials: return "credentials"
        case .clock: return "clock"
        case .idle: return "idle timeout"
        }
    }
}
