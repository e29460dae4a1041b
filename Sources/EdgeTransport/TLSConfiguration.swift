/// How the transport authenticates the server (and, optionally, itself) over TLS.
///
/// There is deliberately no switch to turn certificate verification off: peer and host name
/// verification are always on, and the minimum protocol version is TLS 1.2.
public struct TLSConfiguration: Sendable, Equatable {
    /// A PEM file with the CA certificates to trust. nil: the system trust store
    /// (`/etc/ssl/certs`). When set, *only* these CAs are trusted (the system path is unset).
    public var caFile: String?
    /// Public-key pins, each `sha256//BASE64` (the SHA-256 of the DER SubjectPublicKeyInfo).
    /// Empty: no pinning. Several pins may be listed so that a key can be rotated: a server
    /// key matching any of them is accepted, in addition to the normal chain verification.
    public var pinnedPublicKeys: [String]
    /// A PEM client certificate for mutual TLS, or nil.
    public var clientCertificate: String?
    /// The PEM private key of `clientCertificate` (unencrypted), or nil when the certificate
    /// file also holds the key.
    public var clientKey: String?

    /// Trust the system store, no pins, no client certificate.
    public static let `default` = TLSConfiguration()

    /// Creates a TLS configuration.
    public init(
        caFile: String? = nil,
        pinnedPublicKeys: [String] = [],
        clientCertificate: String? = nil,
        clientKey: String? = nil
    ) {
        self.caFile = caFile
        self.pinnedPublicKeys = pinnedPublicKeys
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }

    /// The value for CURLOPT_PINNEDPUBLICKEY: the pins joined by `;`, or nil for no pinning.
    var pinnedPublicKeyOption: String? {
        pinnedPublicKeys.isEmpty ? nil : pinnedPublicKeys.joined(separator: ";")
    }

    /// Rejects values libcurl would silently misread.
    func validate() throws(TransportError) {
        for pin in pinnedPublicKeys {
            // libcurl reads anything not starting with "sha256//" as the path of a key file.
            guard pin.hasPrefix("sha256//"), pin.count > 8, !pin.contains(";"),
                  !pin.contains(where: { $0.isWhitespace }) else {
                throw TransportError(
                    invalidConfiguration: "a pinned public key must look like sha256//BASE64 (got \(pin.count) characters not in that form)",
                    curlCode: nil)
            }
        }
        if clientKey != nil && clientCertificate == nil {
            throw TransportError(
                invalidConfiguration: "a client key is configured without a client certificate", curlCode: nil)
        }
    }
}
