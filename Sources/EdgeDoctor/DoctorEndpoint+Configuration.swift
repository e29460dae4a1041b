import EdgeDownlink
import EdgeTransport
import EdgeUplink

extension DoctorEndpoint {
    /// The configured endpoints: `[uplink] url` and `[downlink] url`, those that are set.
    public static func configured(uplink: UplinkConfiguration, downlink: DownlinkSettings) throws -> [DoctorEndpoint] {
        var endpoints: [DoctorEndpoint] = []
        let idleLimit = downlink.isConfigured ? downlink.session.networkIdleLimit : defaultNetworkIdleLimit
        if uplink.isConfigured {
            let credentials: Credentials
            switch uplink.platform {
            case .iotda:
                if let device = uplink.deviceID, let secret = uplink.secret {
                    credentials = .iotda(deviceID: device, secret: secret, signType: uplink.signType)
                } else {
                    credentials = .none
                }
            case .cumulocity:
                if let user = uplink.username, let password = uplink.password {
                    credentials = .basic(username: user, password: password)
                } else {
                    credentials = .none
                }
            }
            endpoints.append(try DoctorEndpoint(
                role: .uplink, kind: uplink.platform == .iotda ? .iotda : .cumulocity, url: uplink.url,
                section: "uplink", transport: uplink.transport, credentials: credentials, networkIdleLimit: idleLimit))
        }
        if downlink.isConfigured {
            let session = downlink.session
            var credentials = Credentials.none
            if let user = session.username, let password = session.password {
                credentials = .basic(username: user, password: password)
            }
            endpoints.append(try DoctorEndpoint(
                role: .downlink, kind: .bayeux, url: session.url, section: "downlink", transport: downlink.transport,
                credentials: credentials, handshakeExt: session.handshakeExt, networkIdleLimit: session.networkIdleLimit))
        }
        return endpoints
    }

    /// The endpoint for a `--url`: the configured one with that URL, or else a plain endpoint
    /// that borrows the TLS and proxy settings of the first configured endpoint. Configured
    /// credentials are never sent to a URL that is not configured.
    public static func forURL(_ url: String, configured: [DoctorEndpoint]) throws -> DoctorEndpoint {
        if let known = configured.first(where: { $0.matches(url) }) { return known }
        var transport = configured.first?.transport ?? TransportConfiguration()
        transport.allowPlainHTTP = url.lowercased().hasPrefix("http://")
        let kind: Kind = looksLikeBayeux(url) ? .bayeux : .https
        return try DoctorEndpoint(
            role: .url, kind: kind, url: url, section: configured.first?.section ?? "uplink", transport: transport,
            networkIdleLimit: configured.first?.networkIdleLimit ?? defaultNetworkIdleLimit)
    }
}
