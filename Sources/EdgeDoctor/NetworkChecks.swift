import EdgeTransport

/// Name resolution, the TCP connection and the proxy: pure evaluations of what
/// `AddressLookup` and `ConnectionProbe` observed.
enum NetworkChecks {
    /// The `dns` line. Through a proxy the proxy resolves the name, so a local failure is a
    /// warning there.
    static func dns(endpoint: DoctorEndpoint, lookup: Result<AddressLookup.Answer, AddressLookup.Failure>?,
                    proxy: ProxySelection) -> CheckResult {
        let host = endpoint.host
        guard let lookup else {
            return CheckResult(.dns, .ok, "\(host) is an IP address: no lookup needed",
                               details: [.init("host", .string(host)), .init("addresses", .strings([host]))])
        }
        switch lookup {
        case .success(let answer):
            return CheckResult(
                .dns, .ok, "\(host) resolves to \(answer.addresses.joined(separator: ", ")) in \(Format.milliseconds(answer.duration))",
                details: [.init("host", .string(host)), .init("addresses", .strings(answer.addresses)),
                          .init("duration_ms", .number(Format.ms(answer.duration)))])
        case .failure(let failure):
            let details: [CheckResult.Detail] = [
                .init("host", .string(host)), .init("addresses", .strings([])),
                .init("error", .string(failure.message)), .init("duration_ms", .number(Format.ms(failure.duration))),
            ]
            let summary = "\(host) does not resolve: \(failure.message) (after \(Format.milliseconds(failure.duration)))"
            if let proxy = proxy.redactedProxy {
                return CheckResult(
                    .dns, .warn, summary,
                    cause: "The device's own resolver does not know the name; the proxy \(proxy) resolves it for the CONNECT tunnel, so this matters only without the proxy.",
                    fix: "Nothing, as long as the proxy is used. Without it, check \(endpoint.urlKey) and the device's DNS (`getent hosts \(host)`).",
                    details: details)
            }
            return CheckResult(
                .dns, .fail, summary,
                cause: "The host name is wrong, or the device's DNS server is unreachable or does not know it.",
                fix: "Check the host in \(endpoint.urlKey) for typos, then the device's DNS settings (/etc/resolv.conf, DHCP); `getent hosts \(host)` shows what the system resolves.",
                details: details)
        }
    }

    /// The `tcp` and `proxy` lines from one TCP probe (through the proxy's CONNECT tunnel when
    /// a proxy is used).
    static func connection(endpoint: DoctorEndpoint, proxy: ProxySelection,
                           observation: ConnectionProbe.Observation) -> (tcp: CheckResult, proxy: CheckResult) {
        let target = "\(endpoint.host):\(endpoint.port)"
        let peer = observation.connectedAddress.map { address in
            (address.contains(":") ? "[\(address)]" : address) + (observation.connectedPort.map { ":\($0)" } ?? "")
        }
        var details: [CheckResult.Detail] = [.init("target", .string(target))]
        if let peer { details.append(.init("connected_to", .string(peer))) }
        if let time = observation.tcpConnect { details.append(.init("connect_ms", .number(Format.ms(time)))) }

        guard let proxyURL = proxy.redactedProxy else {
            let proxyLine = CheckResult(.proxy, .ok, "none: direct connection (\(proxy.origin))",
                                        details: [.init("proxy", .null), .init("source", .string(proxy.origin))])
            guard let error = observation.error else {
                let time = observation.tcpConnect.map { " in \(Format.milliseconds($0))" } ?? ""
                return (CheckResult(.tcp, .ok, "connected to \(peer ?? target)\(time)", details: details), proxyLine)
            }
            details.append(.init("error", .string(error.label)))
            return (tcpFailure(endpoint: endpoint, target: target, error: error, details: details), proxyLine)
        }

        var proxyDetails: [CheckResult.Detail] = [.init("proxy", .string(proxyURL)), .init("source", .string(proxy.origin))]
        if let status = observation.proxyConnectStatus { proxyDetails.append(.init("connect_status", .integer(Int64(status)))) }
        let reachedProxy = observation.proxyConnectStatus != nil || observation.error == nil
        if !reachedProxy, let error = observation.error {
            details.append(.init("error", .string(error.label)))
            let tcp = CheckResult(
                .tcp, .fail, "could not connect to the proxy \(proxyURL): \(Format.reason(error))",
                cause: "The proxy is down, its address or port is wrong, or its name does not resolve.",
                fix: "Check the proxy (\(proxy.origin)); `curl -v -x \(proxyURL) https://\(target)/` shows the same from the shell.",
                details: details)
            let line = CheckResult(.proxy, .fail, "\(proxyURL) (\(proxy.origin)) cannot be reached",
                                   cause: tcp.cause, fix: tcp.fix, details: proxyDetails)
            return (tcp, line)
        }
        let time = observation.tcpConnect.map { " in \(Format.milliseconds($0))" } ?? ""
        let tcp = CheckResult(.tcp, .ok, "connected to the proxy \(peer ?? proxyURL)\(time)", details: details)
        if observation.error == nil, observation.proxyConnectStatus == 200 {
            return (tcp, CheckResult(
                .proxy, .ok, "\(proxyURL) (\(proxy.origin)): CONNECT \(target) answered 200 in \(Format.milliseconds(observation.total))",
                details: proxyDetails))
        }
        let status = observation.proxyConnectStatus
        let answered = status.map { "answered \($0) to CONNECT \(target)" } ?? "did not open a tunnel to \(target)"
        let cause: String
        switch status {
        case 407: cause = "The proxy wants credentials (407 Proxy Authentication Required)."
        case 403, 405: cause = "The proxy forbids tunnels to this host or port."
        case 502, 503, 504: cause = "The proxy could not reach \(target) itself (DNS, firewall or the platform is down)."
        default: cause = "The proxy refused or broke the CONNECT tunnel" + (observation.error.map { ": \(Format.reason($0))" } ?? ".")
        }
        return (tcp, CheckResult(
            .proxy, .fail, "\(proxyURL) (\(proxy.origin)) \(answered)", cause: cause,
            fix: "Ask the network's administrator to allow CONNECT to \(target) through the proxy, or give the proxy's credentials in its URL (http://user:password@proxy:port) in [\(endpoint.section)] proxy.",
            details: proxyDetails))
    }

    private static func tcpFailure(endpoint: DoctorEndpoint, target: String, error: TransportError,
                                   details: [CheckResult.Detail]) -> CheckResult {
        switch error.kind {
        case .timedOut:
            return CheckResult(
                .tcp, .fail, "no answer from \(target) within \(Format.seconds(endpoint.transport.connectTimeout)): \(Format.reason(error))",
                cause: "A firewall drops the packets to port \(endpoint.port), or the network is down.",
                fix: "The network must allow outgoing TCP to \(target); ask its administrator to open port \(endpoint.port) to this host.",
                details: details)
        case .dnsFailed:
            return CheckResult(
                .tcp, .fail, "\(endpoint.host) does not resolve: \(Format.reason(error))",
                cause: "See name resolution.", fix: "Fix name resolution first.", details: details)
        default:
            return CheckResult(
                .tcp, .fail, "could not connect to \(target): \(Format.reason(error))",
                cause: "Nothing listens on port \(endpoint.port) there, or a firewall rejects the connection.",
                fix: "Check the port in \(endpoint.urlKey) (443 unless the platform says otherwise); the network must allow outgoing TCP to \(target).",
                details: details)
        }
    }
}
