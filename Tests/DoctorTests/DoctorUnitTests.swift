@testable import EdgeDoctor
@testable import EdgeTransport
import EdgeUplink
import Foundation
import TestSupport
import Testing

/// The doctor's pure parts, without sockets: proxy choice, idle schedule and verdicts, pins,
/// host names, the clock, TLS verdicts and the report's renderings.
@Suite struct DoctorUnitTests {
    func endpoint(_ url: String = "https://iot.example.com", role: DoctorEndpoint.Role = .uplink,
                  kind: DoctorEndpoint.Kind = .iotda, limit: Duration = .seconds(300), pins: [String] = []) throws -> DoctorEndpoint {
        var transport = TransportConfiguration()
        transport.tls.pinnedPublicKeys = pins
        return try DoctorEndpoint(role: role, kind: kind, url: url, section: role == .downlink ? "downlink" : "uplink",
                                  transport: transport, networkIdleLimit: limit)
    }

    // MARK: Proxy

    @Test func proxyChoiceFollowsLibcurlsOrder() {
        func pick(_ configured: String?, _ env: [String: String], host: String = "iot.example.com", scheme: String = "https") -> ProxySelection {
            ProxySelection.select(configured: configured, scheme: scheme, host: host, environment: env)
        }
        #expect(pick(nil, [:]) == ProxySelection(proxy: nil, source: .none))
        #expect(pick("http://p:3128", ["https_proxy": "http://e:1"]) == ProxySelection(proxy: "http://p:3128", source: .configuration))
        #expect(pick("", ["https_proxy": "http://e:1"]).proxy == nil, "proxy = \"\" turns the environment's off")
        #expect(pick(nil, ["HTTPS_PROXY": "http://u:1", "all_proxy": "http://a:1"]) == ProxySelection(proxy: "http://u:1", source: .environment("HTTPS_PROXY")))
        #expect(pick(nil, ["https_proxy": "http://l:1", "HTTPS_PROXY": "http://u:1"]).proxy == "http://l:1")
        #expect(pick(nil, ["ALL_PROXY": "http://a:1"]).source == .environment("ALL_PROXY"))
        #expect(pick(nil, ["https_proxy": "", "all_proxy": "http://a:1"]).proxy == nil, "set but empty stops the search")
        #expect(pick(nil, ["HTTP_PROXY": "http://u:1"], scheme: "http").proxy == nil, "only lowercase http_proxy counts for http")
        #expect(pick(nil, ["http_proxy": "http://l:1"], scheme: "http").proxy == "http://l:1")
        // no_proxy beats both the configuration and the environment.
        #expect(pick("http://p:1", ["no_proxy": "example.com"]).source == .noProxy(variable: "no_proxy", entry: "example.com"))
        #expect(pick(nil, ["https_proxy": "http://e:1", "no_proxy": ".example.com"]).proxy == nil)
        #expect(pick(nil, ["https_proxy": "http://e:1", "no_proxy": "ample.com"]).proxy == "http://e:1", "a suffix must end at a dot")
        #expect(pick(nil, ["https_proxy": "http://e:1", "no_proxy": "*"]).proxy == nil)
        #expect(pick(nil, ["https_proxy": "http://e:1", "NO_PROXY": "iot.example.com"]).proxy == nil)
        #expect(pick(nil, ["https_proxy": "http://e:1", "no_proxy": "other", "NO_PROXY": "iot.example.com"]).proxy == "http://e:1",
                "NO_PROXY is read only when no_proxy is unset")
        #expect(pick(nil, ["https_proxy": "http://e:1", "no_proxy": "localhost, 10.0.0.0/8"], host: "10.1.2.3").proxy == nil)
        #expect(pick(nil, ["https_proxy": "http://e:1", "no_proxy": "10.0.0.0/8"], host: "11.1.2.3").proxy == "http://e:1")
        #expect(pick(nil, ["https_proxy": "http://e:1", "no_proxy": "::1"], host: "::1").proxy == nil)
        #expect(pick("http://user:secret@p:3128", [:]).redactedProxy == "http://p:3128", "no proxy password in the output")
    }

    // MARK: Idle probe

    @Test func idlePeriodsDoubleUpToTheMaximum() {
        let seconds = { (list: [Duration]) in list.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } }
        #expect(seconds(IdleProbe.periods(maximum: .seconds(900))) == [15, 30, 60, 120, 240, 480, 900])
        #expect(seconds(IdleProbe.periods(maximum: .seconds(600))) == [15, 30, 60, 120, 240, 480, 600])
        #expect(seconds(IdleProbe.periods(maximum: .seconds(4))) == [1, 2, 4])
        #expect(seconds(IdleProbe.periods(maximum: .seconds(6))) == [1.5, 3, 6])
        #expect(seconds(IdleProbe.periods(maximum: .seconds(2))) == [1, 2])
        #expect(seconds(IdleProbe.periods(maximum: .seconds(1))) == [1])
    }

    @Test func idleVerdictRecommendsTheLongestSurvivingPeriod() throws {
        let periods = IdleProbe.periods(maximum: .seconds(900))
        let silent = IdleProbe.Observation(mode: .longPoll, survived: [.seconds(15), .seconds(30), .seconds(60), .seconds(120)],
                                           ending: .silentDrop(after: .seconds(240)), deadline: .seconds(24))
        // The downlink's 5 min limit is longer than what survives: its polls would die unnoticed.
        let downlink = IdleProbe.verdict(silent, endpoint: try endpoint(role: .downlink, kind: .bayeux), periods: periods)
        #expect(downlink.verdict == .fail)
        #expect(downlink.detail("recommended_network_idle_limit") == .string("2m"))
        #expect(downlink.fix?.hasPrefix(#"Set [downlink] network_idle_limit = "2m" (now 5m)"#) == true, "\(downlink.fix ?? "")")
        #expect(downlink.evidence.contains("idle 4 min: FAILED") && downlink.evidence.contains("idle 8 min: not tried"), "\(downlink.evidence)")
        // Already below: a warning.
        let tuned = IdleProbe.verdict(silent, endpoint: try endpoint(role: .downlink, kind: .bayeux, limit: .seconds(120)), periods: periods)
        #expect(tuned.verdict == .warn)
        // The uplink copes with a drop: a warning that points at the downlink setting.
        let uplink = IdleProbe.verdict(silent, endpoint: try endpoint(), periods: periods)
        #expect(uplink.verdict == .warn)
        #expect(uplink.fix?.hasPrefix(#"If the downlink's long polls take this path too, set [downlink] network_idle_limit = "2m""#) == true, "\(uplink.fix ?? "")")
        // A close (FIN/RST) is not silent, and does not fail.
        let closed = IdleProbe.Observation(mode: .keepAlive, survived: [.seconds(15)], ending: .closed(after: .seconds(30), how: "closed"), deadline: .seconds(10))
        let closedVerdict = IdleProbe.verdict(closed, endpoint: try endpoint(role: .downlink, kind: .bayeux), periods: periods)
        #expect(closedVerdict.verdict == .warn && closedVerdict.detail("failure") == .string("closed"))
        // Nothing survived: half the first period.
        let none = IdleProbe.Observation(mode: .keepAlive, survived: [], ending: .silentDrop(after: .seconds(15)), deadline: .seconds(10))
        #expect(IdleProbe.verdict(none, endpoint: try endpoint(), periods: periods).detail("recommended_network_idle_limit") == .string("7500ms"))
        // Everything survived.
        let all = IdleProbe.Observation(mode: .keepAlive, survived: periods, ending: .survivedAll, deadline: .seconds(10))
        let ok = IdleProbe.verdict(all, endpoint: try endpoint(), periods: periods)
        #expect(ok.verdict == .ok && ok.summary.contains("up to 15 min"))
        // A server that answers polls early caps what can be probed: not a network failure.
        let capped = IdleProbe.Observation(mode: .longPoll, survived: [.seconds(15), .seconds(30)],
                                           ending: .serverHoldLimit(asked: .seconds(60), held: .seconds(50)), deadline: .seconds(6))
        #expect(IdleProbe.verdict(capped, endpoint: try endpoint(role: .downlink, kind: .bayeux), periods: periods).verdict == .ok)
    }

    // MARK: Certificates

    /// The DER reader against the openssl CLI, for an EC and an RSA key (long DER lengths).
    @Test(arguments: [["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], ["-newkey", "rsa:2048"]])
    func publicKeyPinMatchesOpenSSL(key: [String]) throws {
        let directory = TemporaryDirectory("edgebuf-pin")
        let certificate = directory.file("cert.pem")
        let made = try runToFiles(try which("openssl"), ["req", "-x509"] + key + ["-nodes", "-keyout", directory.file("key.pem"),
                                                                          "-out", certificate, "-days", "1", "-subj", "/CN=pin.test"])
        #expect(made.status == 0, "\(made.stderr)")
        let pem = try String(contentsOfFile: certificate, encoding: .utf8)
        #expect(PublicKeyPin.pin(pem: pem) == (try opensslPin(certificate: certificate)))
        #expect(PublicKeyPin.pin(pem: "not a certificate") == nil)
        #expect(PublicKeyPin.pin(pem: "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----") == nil)
    }

    @Test func hostNamesFollowTheSubjectAltNameRules() {
        let names = HostNameMatch.names(subjectAlternativeNames: "DNS:iot.example.com, DNS:*.api.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
                                        subject: "CN=ignored.example.com, O=x")
        #expect(HostNameMatch.matches(host: "iot.example.com", names: names))
        #expect(HostNameMatch.matches(host: "IOT.example.com.", names: names))
        #expect(HostNameMatch.matches(host: "a.api.example.com", names: names))
        #expect(!HostNameMatch.matches(host: "a.b.api.example.com", names: names), "a wildcard covers one label")
        #expect(!HostNameMatch.matches(host: "api.example.com", names: names))
        #expect(!HostNameMatch.matches(host: "ignored.example.com", names: names), "no CN fallback when there is a SAN")
        #expect(HostNameMatch.matches(host: "127.0.0.1", names: names))
        #expect(HostNameMatch.matches(host: "::1", names: names))
        #expect(!HostNameMatch.matches(host: "127.0.0.2", names: names))
        let cnOnly = HostNameMatch.names(subjectAlternativeNames: nil, subject: "CN=legacy.example.com")
        #expect(HostNameMatch.matches(host: "legacy.example.com", names: cnOnly))
        #expect(!HostNameMatch.matches(host: "x", names: HostNameMatch.names(subjectAlternativeNames: "DNS:*.com", subject: "")))
    }

    // MARK: Clock

    @Test func clockVerdictsByOffsetAndSignType() {
        let server = "Sun, 22 Nov 2026 08:00:00 GMT"
        let serverDate = Date(timeIntervalSince1970: 1_795_334_400)  // 2026-11-22T08:00:00Z
        func at(_ offset: TimeInterval, _ signType: IoTDAAuth.SignType? = .unchecked) -> CheckResult {
            // The server's second is taken at its middle, the local time at the middle of the request.
            let local = serverDate.addingTimeInterval(0.5 + offset)
            return ClockCheck.evaluate(dateHeader: server, sent: local.addingTimeInterval(-0.01), received: local.addingTimeInterval(0.01), signType: signType)
        }
        #expect(at(0).verdict == .ok)
        #expect(at(-4).verdict == .ok)
        #expect(at(12).verdict == .warn && at(12).summary.contains("12.0 s ahead of"))
        #expect(at(-90).summary.contains("1 min 30 s behind"))
        #expect(at(7200).verdict == .warn, "sign_type 0: event times are off, authentication works")
        #expect(at(7200, .checked).verdict == .fail)
        #expect(at(600, .checked).verdict == .warn && at(600, .checked).cause?.contains("sign_type = 1") == true)
        #expect(at(12).detail("offset_seconds") == .number(12))
        #expect(ClockCheck.evaluate(dateHeader: nil, sent: serverDate, received: serverDate, signType: nil).verdict == .skipped)
        #expect(ClockCheck.evaluate(dateHeader: "yesterday", sent: serverDate, received: serverDate, signType: nil).verdict == .skipped)
    }

    // MARK: TLS

    func certificate(issuer: String, notAfter: String = "Dec 22 07:59:51 2099 GMT") -> ConnectionProbe.Certificate {
        ConnectionProbe.Certificate(subject: "CN=iot.example.com", issuer: issuer, notBefore: "Nov 22 07:59:51 2020 GMT",
                                    notAfter: notAfter, subjectAlternativeNames: "DNS:iot.example.com")
    }

    func failed(_ code: Int, _ message: String) -> ConnectionProbe.Observation {
        var observation = ConnectionProbe.Observation()
        observation.error = TransportError.classify(curlCode: code, message: message, url: "https://iot.example.com:443/")
        return observation
    }

    @Test func untrustedChainBlamesInterceptionAndNamesTheIssuer() throws {
        var presented = ConnectionProbe.Observation()
        presented.tlsVersion = "TLSv1.3"
        presented.certificates = [certificate(issuer: "CN=Corp Proxy CA, O=Corp")]
        let proxy = ProxySelection(proxy: "http://proxy.corp:8080", source: .configuration)
        let lines = TLSChecks.evaluate(endpoint: try endpoint(), proxy: proxy,
                                       verified: failed(60, "SSL certificate problem: unable to get local issuer certificate"),
                                       presented: presented, now: Date())
        let tls = try #require(lines.first { $0.check == .tls })
        #expect(tls.verdict == .fail)
        #expect(tls.summary.contains("issuer CN=Corp Proxy CA, O=Corp"))
        #expect(tls.cause?.hasPrefix("A TLS-intercepting proxy is the likely cause: the proxy http://proxy.corp:8080") == true)
        #expect(tls.evidence.first == "chain[0]: CN=iot.example.com issued by CN=Corp Proxy CA, O=Corp")
        #expect(lines.first { $0.check == .hostName }?.verdict == .ok)
        #expect(lines.first { $0.check == .pin }?.verdict == .skipped)
        #expect(lines.first { $0.check == .pin }?.summary.contains("never pin it") == true)

        // With pins, the intercepted key fails too, and the fix says never to pin it.
        let directory = TemporaryDirectory("edgebuf-pin")
        let made = try runToFiles(try which("openssl"), ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                                  "-keyout", directory.file("key.pem"), "-out", directory.file("cert.pem"),
                                                  "-days", "1", "-subj", "/CN=iot.example.com"])
        #expect(made.status == 0, "\(made.stderr)")
        presented.certificates[0].pem = try String(contentsOfFile: directory.file("cert.pem"), encoding: .utf8)
        let pinned = TLSChecks.evaluate(endpoint: try endpoint(pins: ["sha256//" + String(repeating: "A", count: 43) + "="]), proxy: proxy,
                                        verified: failed(60, "SSL certificate problem: self-signed certificate in certificate chain"),
                                        presented: presented, now: Date())
        let pin = try #require(pinned.first { $0.check == .pin })
        #expect(pin.verdict == .fail)
        #expect(pin.fix == "Fix the tls line; never pin this key: it is the intercepting box's.")
    }

    @Test func aNameMismatchFailsTheHostNameLineNotTheChain() throws {
        var presented = ConnectionProbe.Observation()
        presented.certificates = [ConnectionProbe.Certificate(subject: "CN=other.example.com", issuer: "CN=Real CA",
                                                              notBefore: "Nov 22 07:59:51 2020 GMT", notAfter: "Dec 22 07:59:51 2099 GMT",
                                                              subjectAlternativeNames: "DNS:other.example.com")]
        let lines = TLSChecks.evaluate(endpoint: try endpoint(), proxy: ProxySelection(proxy: nil, source: .none),
                                       verified: failed(60, "SSL: no alternative certificate subject name matches target host name 'iot.example.com'"),
                                       presented: presented, now: Date())
        #expect(lines.map(\.verdict) == [.ok, .fail, .ok, .skipped])
        #expect(lines[1].summary.contains("DNS:other.example.com"))
    }

    @Test func expiredAndExpiringCertificates() throws {
        let now = Date(timeIntervalSince1970: 1_795_334_400)  // 2026-11-22
        let expired = TLSChecks.validity(endpoint: try endpoint(), leaf: certificate(issuer: "CN=CA", notAfter: "Nov  1 00:00:00 2026 GMT"), now: now)
        #expect(expired.verdict == .fail && expired.summary.hasPrefix("expired by the local clock"))
        let soon = TLSChecks.validity(endpoint: try endpoint(), leaf: certificate(issuer: "CN=CA", notAfter: "Dec  1 00:00:00 2026 GMT"), now: now)
        #expect(soon.verdict == .warn && soon.summary.hasSuffix("8 days left"))
        let fine = TLSChecks.validity(endpoint: try endpoint(), leaf: certificate(issuer: "CN=CA"), now: now)
        #expect(fine.verdict == .ok)
    }

    // MARK: Name resolution

    @Test func aNameThatDoesNotResolveIsOnlyAWarningThroughAProxy() throws {
        let failure = AddressLookup.Failure(code: -2, message: "Name or service not known", duration: .milliseconds(3))
        let direct = NetworkChecks.dns(endpoint: try endpoint(), lookup: .failure(failure), proxy: ProxySelection(proxy: nil, source: .none))
        #expect(direct.verdict == .fail)
        let proxied = NetworkChecks.dns(endpoint: try endpoint(), lookup: .failure(failure),
                                        proxy: ProxySelection(proxy: "http://p:3128", source: .environment("https_proxy")))
        #expect(proxied.verdict == .warn)
    }

    // MARK: Rendering

    @Test func reportRendersAsTextAndJSON() throws {
        let report = DoctorReport(libcurlVersion: "7.88.1", endpoints: [
            .init(role: .uplink, kind: .iotda, url: "https://iot.example.com", proxy: nil, checks: [
                CheckResult(.dns, .ok, "iot.example.com resolves to 192.0.2.1", details: [.init("addresses", .strings(["192.0.2.1"]))]),
                CheckResult(.tls, .fail, "untrusted", evidence: ["chain[0]: CN=x issued by CN=y"], cause: "interception", fix: "exempt the host",
                            details: [.init("trusted", .flag(false)), .init("version", .null), .init("ms", .number(1.5)), .init("n", .integer(3))]),
                .skipped(.credentials, "TLS failed"),
            ]),
        ])
        #expect(report.blocksSyncing)
        #expect(report.failures == ["uplink iotda: tls"])
        let text = report.text
        #expect(text.contains("FAIL tls              untrusted"))
        #expect(text.contains("cause: interception") && text.contains("fix:   exempt the host"))
        #expect(text.contains("skip credentials      TLS failed"))
        #expect(text.hasSuffix("result: FAIL: 1 check blocks syncing (uplink iotda: tls)"))
        let json = try parseObject(report.json)
        #expect(json.string("result") == "fail")
        let checks = (json["endpoints"] as? [JSONDict])?.first?["checks"] as? [JSONDict] ?? []
        #expect(checks.map { $0.string("verdict") } == ["ok", "fail", "skipped"])
        let details = checks[1].object("details") ?? [:]
        #expect(details.bool("trusted") == false && details.isNull("version") && details.int("n") == 3)
        #expect(checks[0].object("details")?["addresses"] as? [String] == ["192.0.2.1"])
    }
}
