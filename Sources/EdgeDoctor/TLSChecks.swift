import EdgeTransport
import Foundation

/// The TLS lines (`tls`, `host_name`, `validity`, `pin`): pure evaluations of a verified
/// handshake and, when that failed, of an unverified one that only shows what was presented.
enum TLSChecks {
    /// Fewer days of validity left than this is a warning.
    static let expiryWarningDays = 14

    /// Evaluates the handshakes. `verified` is the real check (verification on); `presented`
    /// is the no-verify probe, run only when `verified` failed.
    static func evaluate(endpoint: DoctorEndpoint, proxy: ProxySelection, verified: ConnectionProbe.Observation,
                         presented: ConnectionProbe.Observation?, now: Date) -> [CheckResult] {
        let pins = endpoint.transport.tls.pinnedPublicKeys
        let trust = endpoint.transport.tls.caFile.map { "the configured CA file \($0)" } ?? "the system's CA store"
        guard let error = verified.error else {
            return [
                tlsOK(verified, trust: trust, note: nil),
                hostName(endpoint: endpoint, leaf: verified.certificates.first, verified: true),
                validity(endpoint: endpoint, leaf: verified.certificates.first, now: now),
                pin(endpoint: endpoint, leaf: verified.certificates.first, pins: pins, curlSaysMismatch: false),
            ]
        }
        let shown = presented ?? ConnectionProbe.Observation()
        let leaf = shown.certificates.first ?? verified.certificates.first
        let message = (error.curlMessage ?? "").lowercased()
        switch error.kind {
        case .tlsUntrusted where message.contains("subject name") || message.contains("host name") || message.contains("hostname"):
            // libcurl checks the name after OpenSSL accepted the chain: the chain is fine.
            return [
                tlsOK(shown, trust: trust, note: "the chain leads to \(trust); the handshake stops at the host name (below)"),
                hostName(endpoint: endpoint, leaf: leaf, verified: false),
                validity(endpoint: endpoint, leaf: leaf, now: now),
                pin(endpoint: endpoint, leaf: leaf, pins: pins, curlSaysMismatch: false),
            ]
        case .tlsUntrusted where message.contains("expired") || message.contains("not yet valid"):
            return [
                tlsOK(shown, trust: trust, note: "the chain leads to \(trust); the handshake stops at the validity dates (below)"),
                hostName(endpoint: endpoint, leaf: leaf, verified: false),
                validity(endpoint: endpoint, leaf: leaf, now: now),
                pin(endpoint: endpoint, leaf: leaf, pins: pins, curlSaysMismatch: false),
            ]
        case .tlsUntrusted:
            return [
                untrusted(endpoint: endpoint, proxy: proxy, shown: shown, error: error, trust: trust),
                hostName(endpoint: endpoint, leaf: leaf, verified: false),
                validity(endpoint: endpoint, leaf: leaf, now: now),
                pin(endpoint: endpoint, leaf: leaf, pins: pins, curlSaysMismatch: false, chainUntrusted: true),
            ]
        case .pinMismatch:
            return [
                tlsOK(shown, trust: trust, note: "the chain leads to \(trust); the handshake stops at the pin (below)"),
                hostName(endpoint: endpoint, leaf: leaf, verified: false),
                validity(endpoint: endpoint, leaf: leaf, now: now),
                pin(endpoint: endpoint, leaf: leaf, pins: pins, curlSaysMismatch: true),
            ]
        default:
            return [
                handshakeFailed(endpoint: endpoint, error: error, shown: shown),
                .skipped(.hostName, "no completed handshake"),
                .skipped(.validity, "no completed handshake"),
                .skipped(.pin, "no completed handshake"),
            ]
        }
    }

    /// The lines for a plain `http://` endpoint.
    static func plainHTTP(endpoint: DoctorEndpoint) -> [CheckResult] {
        [
            CheckResult(.tls, .warn, "plain http:// (allow_plain_http = true): nothing is encrypted or authenticated",
                        cause: "The URL is http://, which only test setups should use.",
                        fix: "Use an https:// URL in \(endpoint.urlKey) outside test setups.",
                        details: [.init("scheme", .string("http"))]),
            .skipped(.hostName, "plain http://: no certificate"),
            .skipped(.validity, "plain http://: no certificate"),
            .skipped(.pin, "plain http://: no certificate"),
        ]
    }

    // MARK: Lines

    static func chainLines(_ certificates: [ConnectionProbe.Certificate]) -> [String] {
        certificates.enumerated().map { index, certificate in
            "chain[\(index)]: \(certificate.subject) issued by \(certificate.issuer)"
        }
    }

    private static func handshakeDetails(_ observation: ConnectionProbe.Observation) -> [CheckResult.Detail] {
        var details: [CheckResult.Detail] = [
            .init("version", observation.tlsVersion.map(DetailValue.string) ?? .null),
            .init("cipher", observation.tlsCipher.map(DetailValue.string) ?? .null),
        ]
        if let done = observation.tlsDone { details.append(.init("handshake_done_ms", .number(Format.ms(done)))) }
        details.append(.init("chain", .strings(observation.certificates.map { "\($0.subject) issued by \($0.issuer)" })))
        details.append(.init("issuer", observation.certificates.first.map { DetailValue.string($0.issuer) } ?? .null))
        return details
    }

    private static func negotiated(_ observation: ConnectionProbe.Observation) -> String {
        guard let version = observation.tlsVersion else { return "handshake completed (this libcurl does not report the version and cipher)" }
        return "\(version), \(observation.tlsCipher ?? "cipher not reported")"
    }

    private static func tlsOK(_ observation: ConnectionProbe.Observation, trust: String, note: String?) -> CheckResult {
        var details = handshakeDetails(observation)
        details.append(.init("trusted", .flag(true)))
        let time = observation.tlsDone.map { " in \(Format.milliseconds($0))" } ?? ""
        var evidence = chainLines(observation.certificates)
        evidence.append(note ?? "the chain leads to \(trust)")
        if let version = observation.tlsVersion, version == "TLSv1" || version == "TLSv1.1" || version.hasPrefix("SSL") {
            return CheckResult(.tls, .fail, "\(negotiated(observation))\(time): older than TLS 1.2", evidence: evidence,
                               cause: "Something in between downgrades the connection.", fix: "edgebuf needs TLS 1.2 or newer end to end.",
                               details: details)
        }
        return CheckResult(.tls, .ok, "\(negotiated(observation))\(time)", evidence: evidence, details: details)
    }

    private static func untrusted(endpoint: DoctorEndpoint, proxy: ProxySelection, shown: ConnectionProbe.Observation,
                                  error: TransportError, trust: String) -> CheckResult {
        var details = handshakeDetails(shown)
        details.append(.init("trusted", .flag(false)))
        details.append(.init("likely_cause", .string("tls_interception")))
        let leaf = shown.certificates.first
        let issuer = leaf?.issuer ?? "unknown (the certificate could not be read)"
        var evidence = chainLines(shown.certificates)
        evidence.append("libcurl: \(Format.reason(error))")
        let via = proxy.redactedProxy.map { "the proxy \($0) or " } ?? ""
        return CheckResult(
            .tls, .fail,
            "the certificate presented for \(endpoint.host) (\(leaf?.subject ?? "?"), issuer \(issuer)) does not lead to \(trust)",
            evidence: evidence,
            cause: "A TLS-intercepting proxy is the likely cause: \(via)a firewall between the device and the platform answered with a certificate it issued itself (issuer: \(issuer)). Less likely: the configured CA is not the one that signed the platform's certificate.",
            fix: "Have the network exempt \(endpoint.host) from TLS inspection (or route the device around the intercepting box). edgebuf never trusts an intercepting proxy: end-to-end TLS is a requirement. If the platform really changed its CA, update [\(endpoint.section)] ca_file.",
            details: details)
    }

    private static func handshakeFailed(endpoint: DoctorEndpoint, error: TransportError, shown: ConnectionProbe.Observation) -> CheckResult {
        var details = handshakeDetails(shown)
        details.append(.init("error", .string(error.label)))
        let fix: String
        switch error.kind {
        case .invalidConfiguration:
            fix = "Fix the TLS settings in [\(endpoint.section)] (ca_file, client_cert, client_key, pinned_public_keys): \(error)"
        case .tlsHandshakeFailed:
            fix = "The endpoint must speak TLS 1.2 or newer with a common cipher; check that no box in between downgrades or blocks TLS."
        case .clientCertificateRejected:
            fix = "Check [\(endpoint.section)] client_cert and client_key, their dates and the CA the server expects."
        default:
            fix = "Check that \(endpoint.host):\(endpoint.port) speaks TLS (the port may belong to something else) and that nothing in between cuts the handshake."
        }
        return CheckResult(.tls, .fail, "no TLS handshake with \(endpoint.host):\(endpoint.port): \(Format.reason(error))",
                           evidence: chainLines(shown.certificates),
                           cause: Format.cause(error),
                           fix: fix, details: details)
    }

    static func hostName(endpoint: DoctorEndpoint, leaf: ConnectionProbe.Certificate?, verified: Bool) -> CheckResult {
        guard let leaf else { return .skipped(.hostName, "the certificate could not be read") }
        let names = HostNameMatch.names(subjectAlternativeNames: leaf.subjectAlternativeNames, subject: leaf.subject)
        let details: [CheckResult.Detail] = [.init("host", .string(endpoint.host)), .init("names", .string(names.listing))]
        if verified || HostNameMatch.matches(host: endpoint.host, names: names) {
            return CheckResult(.hostName, .ok, "\(endpoint.host) matches the certificate (\(names.listing))", details: details)
        }
        return CheckResult(
            .hostName, .fail, "\(endpoint.host) is not among the certificate's names (\(names.listing))",
            cause: "The URL names the platform differently from its certificate, or something else answered (an intercepting box).",
            fix: "Use the host name the platform's certificate names in \(endpoint.urlKey) (a name, not an IP address, unless the certificate lists the address).",
            details: details)
    }

    static func validity(endpoint: DoctorEndpoint, leaf: ConnectionProbe.Certificate?, now: Date) -> CheckResult {
        guard let leaf else { return .skipped(.validity, "the certificate could not be read") }
        guard let from = leaf.notBeforeDate, let until = leaf.notAfterDate else {
            return .skipped(.validity, "the validity dates could not be read (\(leaf.notBefore) to \(leaf.notAfter))")
        }
        let details: [CheckResult.Detail] = [
            .init("not_before", .string(Format.timestamp(from))), .init("not_after", .string(Format.timestamp(until))),
            .init("local_time", .string(Format.timestamp(now))),
        ]
        let span = "\(Format.date(from)) to \(Format.date(until))"
        if now < from {
            return CheckResult(.validity, .fail, "not valid yet by the local clock: valid \(span), local time \(Format.date(now))",
                               cause: "The device clock is behind (or the certificate was issued moments ago).",
                               fix: "Set the device clock right (NTP), then run the doctor again.", details: details)
        }
        if now > until {
            return CheckResult(.validity, .fail, "expired by the local clock: valid \(span), local time \(Format.date(now))",
                               cause: "The server's certificate has expired, or the device clock is ahead.",
                               fix: "Check the device clock (NTP); if it is right, the platform must renew its certificate.", details: details)
        }
        let daysLeft = Int(until.timeIntervalSince(now) / 86400)
        if daysLeft < expiryWarningDays {
            return CheckResult(.validity, .warn, "valid \(span): \(daysLeft) days left",
                               cause: "The certificate expires soon.",
                               fix: "Make sure the platform renews it; edgebuf will refuse it after \(Format.date(until)).", details: details)
        }
        return CheckResult(.validity, .ok, "valid \(span) (\(daysLeft) days left)", details: details)
    }

    /// `chainUntrusted`: the tls line already failed on this certificate, so a mismatch here
    /// has the same cause (and the key shown must not be pinned).
    static func pin(endpoint: DoctorEndpoint, leaf: ConnectionProbe.Certificate?, pins: [String], curlSaysMismatch: Bool,
                    chainUntrusted: Bool = false) -> CheckResult {
        let presented = leaf?.pem.flatMap(PublicKeyPin.pin(pem:))
        var details: [CheckResult.Detail] = [
            .init("server_key", presented.map(DetailValue.string) ?? .null),
            .init("configured", .integer(Int64(pins.count))),
        ]
        guard !pins.isEmpty else {
            if chainUntrusted {
                return CheckResult(.pin, .skipped, "no pinned_public_keys configured (the key presented here is the refused certificate's: never pin it)",
                                   details: details)
            }
            let key = presented.map { "; the server's key is \($0)" } ?? ""
            return CheckResult(.pin, .skipped, "no pinned_public_keys configured\(key)", details: details)
        }
        let matches = presented.map { pins.contains($0) }
        details.append(.init("match", matches.map(DetailValue.flag) ?? .null))
        if matches == true && !curlSaysMismatch {
            return CheckResult(.pin, .ok, "the server's key \(presented ?? "") matches a configured pin (\(pins.count) configured)", details: details)
        }
        if matches == nil && !curlSaysMismatch {
            return CheckResult(.pin, .skipped, "the server's key could not be read", details: details)
        }
        if chainUntrusted {
            return CheckResult(
                .pin, .fail, "the presented key \(presented ?? "(unreadable)") matches no configured pin (\(pins.count) configured)",
                cause: "It belongs to the same certificate the tls line refuses (issuer: \(leaf?.issuer ?? "unknown")), not to the platform.",
                fix: "Fix the tls line; never pin this key: it is the intercepting box's.", details: details)
        }
        return CheckResult(
            .pin, .fail, "the server's key \(presented ?? "(unreadable)") matches no configured pin (\(pins.count) configured)",
            cause: "A TLS-intercepting box whose CA the device trusts, or the platform rotated its key (the certificate's issuer: \(leaf?.issuer ?? "unknown")).",
            fix: "If the platform announced a new key, add \(presented ?? "its pin") to [\(endpoint.section)] pinned_public_keys next to the old pin; otherwise find what intercepts TLS on the way.",
            details: details)
    }
}
