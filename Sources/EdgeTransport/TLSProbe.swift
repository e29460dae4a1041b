import CCurl
import Foundation

/// Shows which certificate a server (or whatever sits in between) presents, without
/// trusting or sending anything. Used to name the issuer when verification fails, and by
/// `edgebuf doctor`.
public enum TLSProbe {
    /// The leaf certificate a server presented, as libcurl's CURLINFO_CERTINFO prints it.
    public struct PresentedCertificate: Sendable, Equatable {
        /// E.g. `CN=localhost` (RDNs in certificate order, `, `-separated).
        public var subject: String
        /// E.g. `CN=mitmproxy, O=mitmproxy`.
        public var issuer: String
        /// Start of validity, e.g. `Jan  1 00:00:00 2026 GMT`.
        public var notBefore: String
        /// End of validity.
        public var notAfter: String

        public init(subject: String, issuer: String, notBefore: String, notAfter: String) {
            self.subject = subject
            self.issuer = issuer
            self.notBefore = notBefore
            self.notAfter = notAfter
        }

        /// `notBefore` as a date, if it parses.
        public var notBeforeDate: Date? { Self.parseDate(notBefore) }
        /// `notAfter` as a date, if it parses.
        public var notAfterDate: Date? { Self.parseDate(notAfter) }

        static func parseDate(_ text: String) -> Date? {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "MMM d HH:mm:ss yyyy 'GMT'"
            // OpenSSL pads the day with a space ("Jan  1").
            return formatter.date(from: text.split(separator: " ").joined(separator: " "))
        }
    }

    /// Completes a TLS handshake with the server of `url` (through the configured proxy, if
    /// any) and returns its leaf certificate, or nil when no handshake could be completed
    /// (unreachable, not https, not TLS).
    ///
    /// Certificate and host name verification are OFF on this probe, and this is safe: the
    /// probe uses its own throwaway handle with CURLOPT_CONNECT_ONLY, so it stops right after
    /// the handshake and is closed at once. It sends no HTTP request, no header, no token and
    /// no body, and nothing it receives is used except the certificate fields for a message.
    /// Without turning verification off, the handshake would fail exactly where the issuer
    /// is needed: on an untrusted certificate. No pin and no client certificate are set.
    public static func presentedCertificate(url: String, configuration: TransportConfiguration = .default) -> PresentedCertificate? {
        guard url.prefix(8).lowercased() == "https://" else { return nil }
        do {
            let handle = try CurlEasyHandle()
            try handle.applyNetworkOptions(configuration, protocols: "https")
            try handle.set(CURLOPT_URL, url)
            try handle.set(CURLOPT_CONNECT_ONLY, 1)
            try handle.set(CURLOPT_CERTINFO, true)
            try handle.set(CURLOPT_SSL_VERIFYPEER, false) // probe only, see above
            try handle.set(CURLOPT_SSL_VERIFYHOST, 0)     // probe only, see above
            try handle.set(CURLOPT_TIMEOUT_MS, configuration.connectTimeout.curlMilliseconds)
            guard handle.perform() == CURLE_OK else { return nil }
            guard let leaf = try handle.certificateChain().first else { return nil }
            return PresentedCertificate(
                subject: compactName(leaf["Subject"] ?? ""),
                issuer: compactName(leaf["Issuer"] ?? ""),
                notBefore: leaf["Start date"] ?? "",
                notAfter: leaf["Expire date"] ?? "")
        } catch {
            return nil
        }
        // `handle` is released here: curl_easy_cleanup closes the connection.
    }

    /// OpenSSL's one-line form `CN = mitmproxy, O = mitmproxy` as `CN=mitmproxy, O=mitmproxy`.
    static func compactName(_ name: String) -> String {
        name.replacingOccurrences(of: " = ", with: "=")
    }
}
