import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether a certificate names a host, by the rules libcurl applies (RFC 6125): subjectAltName
/// entries when there are any (DNS names with a wildcard only as the whole left-most label, IP
/// addresses compared as addresses), else the subject's CN.
public enum HostNameMatch {
    /// The names a certificate carries, from libcurl's CERTINFO text
    /// (`DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`).
    public struct Names: Sendable, Equatable {
        public var dns: [String]
        public var ipAddresses: [String]
        /// The subject's CN, used only when there is no subjectAltName.
        public var commonName: String?

        /// Everything, for the checklist: `DNS:a, IP:b` or `CN=c`.
        public var listing: String {
            let all = dns.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }
            if !all.isEmpty { return all.joined(separator: ", ") }
            return commonName.map { "CN=\($0) (no subjectAltName)" } ?? "(no names)"
        }
    }

    /// Reads the names from CERTINFO's subjectAltName text and the compact subject.
    public static func names(subjectAlternativeNames: String?, subject: String) -> Names {
        var names = Names(dns: [], ipAddresses: [], commonName: nil)
        for part in (subjectAlternativeNames ?? "").split(separator: ",") {
            let entry = part.trimmingCharacters(in: .whitespaces)
            if entry.hasPrefix("DNS:") {
                names.dns.append(String(entry.dropFirst(4)))
            } else if entry.hasPrefix("IP Address:") {
                names.ipAddresses.append(String(entry.dropFirst(11)))
            }
        }
        for rdn in subject.split(separator: ",") {
            let pair = rdn.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix("CN=") { names.commonName = String(pair.dropFirst(3)) }
        }
        return names
    }

    /// Whether `names` cover `host` (a name or an IP literal without brackets).
    public static func matches(host: String, names: Names) -> Bool {
        if let address = binaryAddress(host) {
            return names.ipAddresses.contains { binaryAddress($0) == address }
        }
        let candidates = names.dns.isEmpty && names.ipAddresses.isEmpty ? (names.commonName.map { [$0] } ?? []) : names.dns
        return candidates.contains { pattern(matches: host, $0) }
    }

    private static func pattern(matches rawHost: String, _ rawPattern: String) -> Bool {
        var host = rawHost.lowercased()
        var pattern = rawPattern.lowercased()
        if host.hasSuffix(".") { host.removeLast() }
        if pattern.hasSuffix(".") { pattern.removeLast() }
        guard pattern.hasPrefix("*.") else { return host == pattern }
        // A wildcard covers exactly one label and never a top-level domain alone.
        let suffix = pattern.dropFirst(1)  // ".example.com"
        guard suffix.dropFirst().contains("."), host.hasSuffix(suffix) else { return false }
        let label = host.dropLast(suffix.count)
        return !label.isEmpty && !label.contains(".")
    }

    /// The 4 or 16 bytes of an IP literal; nil for a name.
    private static func binaryAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
