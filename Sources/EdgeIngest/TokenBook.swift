import Crypto
import Foundation
import Synchronization

/// The configured token and the local access tokens `device-auth` has issued. Comparisons take
/// the same time whatever the input (SHA-256 of both sides, compared whole), so a client cannot
/// guess the token byte by byte. Nothing here is ever logged.
public final class TokenBook: Sendable {
    /// IoTDA answers `expires_in: 86399`.
    public static let lifetimeSeconds: Int64 = 86399
    /// Issued tokens kept at most; the oldest are forgotten first.
    static let capacity = 4096

    private let tokenDigest: [UInt8]?
    private let token: String?
    private let issued = Mutex<[String: Int64]>([:])

    public init(token: String?) {
        self.token = token
        self.tokenDigest = token.map { Array(SHA256.hash(data: Array($0.utf8))) }
    }

    public var required: Bool { token != nil }

    /// Whether `Authorization: Bearer <value>` carries the configured token.
    public func matchesBearer(_ header: String?) -> Bool {
        guard let tokenDigest, let header else { return false }
        let prefix = "Bearer "
        guard header.count > prefix.count, header.lowercased().hasPrefix("bearer ") else { return false }
        return Self.equalDigests(Array(SHA256.hash(data: Array(header.utf8.dropFirst(prefix.utf8.count)))), tokenDigest)
    }

    /// Whether `password` is IoTDA's device-auth signature of the configured token (the local
    /// device secret): lowercase hex of HMAC-SHA256 with the timestamp as the key.
    public func matchesSignature(password: String, timestamp: String) -> Bool {
        guard let token, let tokenDigest = tokenDigest else { return false }
        _ = tokenDigest
        let mac = HMAC<SHA256>.authenticationCode(for: Array(token.utf8), using: SymmetricKey(data: Array(timestamp.utf8)))
        let expected = mac.map { String(format: "%02x", $0) }.joined()
        return Self.equalDigests(Array(SHA256.hash(data: Array(expected.utf8))), Array(SHA256.hash(data: Array(password.utf8))))
    }

    /// A new local access token, valid for `lifetimeSeconds` from `now` (ms).
    public func issue(now: Int64) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = generator.next() }
        let value = bytes.map { String(format: "%02x", $0) }.joined()
        issued.withLock { issued in
            if issued.count >= Self.capacity {
                issued = issued.filter { $0.value > now }
                while issued.count >= Self.capacity, let oldest = issued.min(by: { $0.value < $1.value }) { issued[oldest.key] = nil }
            }
            issued[value] = now + Self.lifetimeSeconds * 1000
        }
        return value
    }

    /// Whether an `access_token` header carries an unexpired token issued here.
    public func matchesIssued(_ value: String?, now: Int64) -> Bool {
        guard let value else { return false }
        return issued.withLock { ($0[value] ?? 0) > now }
    }

    static func equalDigests(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
