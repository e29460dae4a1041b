/// An IoTDA access token from `POST /v5/device-auth`. Like `DeviceSecret` it never prints;
/// only `headerValue` gives the token, for the `access_token` header.
public struct AccessToken: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let value: String
    /// The lifetime the platform gave (`expires_in`), counted from when the answer arrived.
    public let expiresIn: Duration

    public init(_ value: String, expiresIn: Duration) {
        self.value = value
        self.expiresIn = expiresIn
    }

    /// The token, for the `access_token` request header and nothing else.
    public var headerValue: String { value }

    /// How long before expiry to re-authenticate: 10 % of the lifetime, at most 5 minutes.
    /// Re-authenticating keeps the old token valid for about 30 s more, so a refresh ahead of
    /// expiry never leaves a request without a valid token (shared/reference/iotda-https.md).
    public var refreshMargin: Duration { min(expiresIn / 10, .seconds(300)) }

    /// How long after the answer arrived to re-authenticate proactively.
    public var refreshAfter: Duration { expiresIn - refreshMargin }

    public var description: String { "<redacted token, expires in \(expiresIn)>" }
    public var debugDescription: String { "AccessToken(<redacted>, expiresIn: \(expiresIn))" }
    public var customMirror: Mirror { Mirror(self, children: ["expiresIn": expiresIn], displayStyle: .struct) }
}
