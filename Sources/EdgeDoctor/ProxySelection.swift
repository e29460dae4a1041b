import Foundation
import EdgeTransport

/// Which proxy a request to an endpoint goes through, decided the way libcurl 7.88 decides it
/// (lib/url.c and lib/noproxy.c), so that the doctor can name it and then probe exactly it:
///
/// 1. a host matching `no_proxy` (or `NO_PROXY`) goes direct, even with a configured proxy;
/// 2. the configured `proxy` key: `""` means direct, anything else is the proxy;
/// 3. otherwise the environment: `https_proxy`, then `HTTPS_PROXY` for https (only the
///    lowercase `http_proxy` for http), then `all_proxy`, then `ALL_PROXY`. A variable that is
///    set but empty means direct.
public struct ProxySelection: Sendable, Equatable {
    /// Where the decision came from.
    public enum Source: Sendable, Equatable {
        /// The configuration's `proxy` key.
        case configuration
        /// An environment variable, by name.
        case environment(String)
        /// A `no_proxy` entry matched the host (the variable's name and the entry).
        case noProxy(variable: String, entry: String)
        /// Nothing names a proxy.
        case none
    }

    /// The proxy URL, or nil for a direct connection.
    public var proxy: String?
    public var source: Source

    public init(proxy: String?, source: Source) {
        self.proxy = proxy
        self.source = source
    }

    /// The value for `TransportConfiguration.proxy` that makes libcurl do exactly this:
    /// the proxy, or "" for direct.
    public var transportValue: String { proxy ?? "" }

    /// The proxy URL without userinfo (a proxy password never reaches the output).
    public var redactedProxy: String? { proxy.map { TransportError.redact(url: $0) } }

    /// Decides for `host` and `scheme` ("https" or "http"). `configured` is the `proxy` key
    /// (nil when absent); `environment` the process environment.
    public static func select(configured: String?, scheme: String, host: String,
                              environment: [String: String]) -> ProxySelection {
        for variable in ["no_proxy", "NO_PROXY"] {
            guard let list = environment[variable] else { continue }
            if let entry = noProxyMatch(host: host, list: list) {
                return ProxySelection(proxy: nil, source: .noProxy(variable: variable, entry: entry))
            }
            break  // libcurl reads only the first of the two that is set
        }
        if let configured {
            return ProxySelection(proxy: configured.isEmpty ? nil : configured, source: .configuration)
        }
        var names = scheme.lowercased() == "https" ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy"]
        names += ["all_proxy", "ALL_PROXY"]
        for name in names {
            guard let value = environment[name] else { continue }
            return ProxySelection(proxy: value.isEmpty ? nil : value, source: .environment(name))
        }
        return ProxySelection(proxy: nil, source: .none)
    }

    /// The `no_proxy` entry that matches `host`, or nil. Entries are separated by commas or
    /// blanks; `*` alone matches every host; a leading dot is ignored; a name matches itself
    /// and its subdomains; IP literals match exactly or by IPv4 CIDR (`10.0.0.0/8`).
    static func noProxyMatch(host rawHost: String, list: String) -> String? {
        let trimmedList = list.trimmingCharacters(in: .whitespaces)
        if trimmedList == "*" { return "*" }
        var host = rawHost.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasSuffix(".") { host.removeLast() }
        let isIP = AddressLookup.isIPAddress(host)
        let entries = trimmedList.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
        for entry in entries {
            var token = entry.lowercased()
            if isIP {
                if token.hasPrefix("["), token.hasSuffix("]") { token = String(token.dropFirst().dropLast()) }
                if token == host || ipv4(host, inCIDR: token) { return entry }
                continue
            }
            if token.hasPrefix(".") { token.removeFirst() }
            if token.hasSuffix(".") { token.removeLast() }
            guard !token.isEmpty else { continue }
            if host == token || host.hasSuffix("." + token) { return entry }
        }
        return nil
    }

    private static func ipv4(_ address: String, inCIDR cidr: String) -> Bool {
        let parts = cidr.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let bits = Int(parts[1]), (0...32).contains(bits),
              let network = ipv4Value(parts[0]), let value = ipv4Value(address) else { return false }
        let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - UInt32(bits))
        return network & mask == value & mask
    }

    private static func ipv4Value(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard let n = UInt32(octet), n <= 255 else { return nil }
            value = value << 8 | n
        }
        return value
    }

    /// Where the decision came from, for the checklist.
    public var origin: String {
        switch source {
        case .configuration: return proxy == nil ? "the configuration's proxy = \"\" turns proxies off" : "the configuration's proxy key"
        case .environment(let name): return proxy == nil ? "\(name) is set but empty" : "the environment variable \(name)"
        case .noProxy(let variable, let entry): return "the host matches \(variable) entry \"\(entry)\""
        case .none: return "no proxy key in the configuration; https_proxy, HTTPS_PROXY, all_proxy and ALL_PROXY are unset"
        }
    }
}
