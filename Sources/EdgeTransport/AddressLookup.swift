import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Name resolution as the system does it (`getaddrinfo`), for `edgebuf doctor`: the addresses
/// a host name resolves to and how long that took. libcurl resolves on its own during a
/// request; this answers the question separately, before any connection is tried.
///
/// Blocking (the resolver's own timeouts apply): call it from a thread of its own.
public enum AddressLookup {
    /// The addresses of a successful lookup.
    public struct Answer: Sendable, Equatable {
        /// Numeric addresses (`192.0.2.1`, `2001:db8::1`), in the resolver's order, without
        /// duplicates.
        public var addresses: [String]
        /// How long `getaddrinfo` took.
        public var duration: Duration

        public init(addresses: [String], duration: Duration) {
            self.addresses = addresses
            self.duration = duration
        }
    }

    /// Why a lookup failed.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The `EAI_*` code.
        public var code: Int32
        /// `gai_strerror`'s text, e.g. "Name or service not known".
        public var message: String
        /// How long `getaddrinfo` took before it gave up.
        public var duration: Duration

        public init(code: Int32, message: String, duration: Duration) {
            self.code = code
            self.message = message
            self.duration = duration
        }

        public var description: String { message }
    }

    /// Resolves `host` for TCP. An IP literal (IPv6 without brackets) answers itself.
    public static func resolve(host: String) -> Result<Answer, Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let started = ContinuousClock.now
        let rc = getaddrinfo(host, nil, &hints, &list)
        let duration = ContinuousClock.now - started
        defer { if let list { freeaddrinfo(list) } }
        guard rc == 0 else {
            return .failure(Failure(code: rc, message: String(cString: gai_strerror(rc)), duration: duration))
        }
        var addresses: [String] = []
        var node = list
        while let current = node {
            if let address = current.pointee.ai_addr {
                var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(address, current.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 {
                    let numeric = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    if !addresses.contains(numeric) { addresses.append(numeric) }
                }
            }
            node = current.pointee.ai_next
        }
        return .success(Answer(addresses: addresses, duration: duration))
    }

    /// Whether `host` is an IPv4 or IPv6 literal (no lookup needed).
    public static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
