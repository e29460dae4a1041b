import Foundation
import TestSupport
import Testing

/// `edgebuf doctor` (the built binary) against the simulator over HTTPS with its own CA, a real
/// Faye server, mitmproxy, and `tools/idle_cutter.py` as a firewall with a short idle timeout.
@Suite struct DoctorTests {
    static let allChecks = ["dns", "tcp", "proxy", "tls", "host_name", "validity", "pin", "credentials", "clock", "idle"]

    // MARK: Healthy

    /// Every line ok: the configured CA, the right pin, device-auth and the token, the clock,
    /// and an idle probe (up to 2 s) that survives. Nothing secret is printed.
    @Test func healthyNetworkEveryLineIsOK() throws {
        let simulator = try Simulator(https: true)
        let pin = try opensslPin(certificate: simulator.directory.file("state/server.crt"))
        let config = try DoctorConfig.iotda(url: simulator.url, caFile: simulator.caFile,
                                            extra: ["pinned_public_keys": "[\(quoted(pin))]"])
        let outcome = try runDoctor(config: config, ["--idle-probe", "--max-idle", "2s"])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.report?.string("result") == "ok")
        let checks = outcome.checks()
        #expect(checks.keys.sorted() == Self.allChecks.sorted())
        for name in Self.allChecks {
            #expect(checks[name]?.string("verdict") == "ok", "\(name): \(checks[name]?.string("summary") ?? "missing")")
        }
        #expect(outcome.details("pin").string("server_key") == pin)
        #expect(outcome.details("tls").string("version")?.hasPrefix("TLSv1.") == true)
        #expect(outcome.details("tls").string("issuer") == "CN=edgebuf simulator throwaway CA")
        #expect(outcome.details("credentials").int("token_check_status") == 400, "the empty report was refused for its content only")
        #expect(outcome.details("idle").string("mode") == "keep_alive")
        #expect(outcome.details("idle")["survived_s"] as? [String] == ["1s", "2s"])
        // Progress on stderr; the device secret nowhere.
        #expect(outcome.stderr.contains("idle probe: idle 2 s: the connection survived"), "\(outcome.stderr)")
        #expect(!outcome.output.contains(Simulator.devices["gw-1"]!))
        // The empty report stored nothing.
        #expect(try simulator.accepted().isEmpty)

        let text = try runDoctor(config: config, json: false)
        #expect(text.status == 0)
        #expect(text.stdout.contains("result: ok: nothing blocks syncing"), "\(text.stdout)")
        #expect(text.stdout.contains("ok   credentials      device gw-1 authenticated"), "\(text.stdout)")
    }

    /// The downlink on the simulator's Bayeux endpoint over HTTPS: every line ok, the handshake
    /// with the Cumulocity login and long polls held 1 s and 2 s.
    @Test func healthyDownlinkOnTheSimulatorsBayeuxEndpoint() throws {
        let simulator = try Simulator(https: true)
        let pin = try opensslPin(certificate: simulator.directory.file("state/server.crt"))
        let (user, password) = Simulator.cumulocityUsers.first!
        let config = try DoctorConfig(["downlink": [
            "url": quoted(simulator.url + "/notification/realtime"), "channels": #"["/operations/4711"]"#,
            "username": quoted(user), "password": quoted(password), "ca_file": quoted(simulator.caFile ?? ""),
            "pinned_public_keys": "[\(quoted(pin))]",
        ]])
        let outcome = try runDoctor(config: config, ["--idle-probe", "--max-idle", "2s"])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.endpoints.first?.string("role") == "downlink")
        for name in Self.allChecks {
            #expect(outcome.verdict(name) == "ok", "\(name): \(outcome.checks()[name]?.string("summary") ?? "missing")")
        }
        #expect(outcome.details("credentials").string("method") == "bayeux_handshake")
        #expect(outcome.details("idle").string("mode") == "long_poll")
        #expect(outcome.details("idle")["survived_s"] as? [String] == ["1s", "2s"])
        #expect(!outcome.output.contains(password))
    }

    /// A CONNECT tunnel named by `https_proxy` is reported, used, and everything passes.
    @Test func tunnellingProxyFromTheEnvironmentIsNamedAndUsed() throws {
        let simulator = try Simulator(https: true)
        let mitm = try Mitmproxy(upstreamCA: nil, tunnelOnly: true)
        let config = try DoctorConfig.iotda(url: simulator.url, caFile: simulator.caFile)
        let outcome = try runDoctor(config: config, environment: ["https_proxy": mitm.proxyURL])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.verdict("proxy") == "ok")
        #expect(outcome.details("proxy").string("proxy") == mitm.proxyURL)
        #expect(outcome.details("proxy").string("source") == "the environment variable https_proxy")
        #expect(outcome.details("proxy").int("connect_status") == 200)
        #expect(outcome.checks()["tcp"]?.string("summary")?.contains("the proxy 127.0.0.1:\(mitm.port)") == true)
        #expect(outcome.verdict("tls") == "ok" && outcome.verdict("credentials") == "ok")
        #expect(mitm.output.contains("127.0.0.1:\(simulator.port)"), "the doctor's connections went through the tunnel: \(mitm.output)")

        // no_proxy wins over https_proxy: direct.
        let direct = try runDoctor(config: config, environment: ["https_proxy": mitm.proxyURL, "no_proxy": "localhost,127.0.0.1"])
        #expect(direct.status == 0, "\(direct.output)")
        #expect(direct.details("proxy").isNull("proxy"))
        #expect(direct.details("proxy").string("source")?.contains("no_proxy") == true)
    }

    // MARK: TLS

    /// mitmproxy intercepting: the tls line fails, names mitmproxy's issuer and the likely cause,
    /// and nothing is sent to the platform.
    @Test func interceptingProxyFailsTLSAndNamesTheIssuer() throws {
        let simulator = try Simulator(https: true)
        let mitm = try Mitmproxy(upstreamCA: simulator.caFile, tunnelOnly: false)
        let config = try DoctorConfig.iotda(url: simulator.url, caFile: simulator.caFile, extra: ["proxy": quoted(mitm.proxyURL)])
        let outcome = try runDoctor(config: config)
        #expect(outcome.status == 69, "\(outcome.output)")
        #expect(outcome.report?.bool("blocks_syncing") == true)
        #expect(outcome.verdict("proxy") == "ok", "CONNECT itself works")
        let tls = outcome.checks()["tls"] ?? [:]
        #expect(tls.string("verdict") == "fail")
        #expect(tls.string("summary")?.contains("issuer CN=mitmproxy, O=mitmproxy") == true, "\(tls)")
        #expect(tls.string("cause")?.contains("A TLS-intercepting proxy is the likely cause") == true, "\(tls)")
        #expect(tls.string("cause")?.contains(mitm.proxyURL) == true)
        #expect(outcome.details("tls").string("issuer") == "CN=mitmproxy, O=mitmproxy")
        #expect(outcome.details("tls").bool("trusted") == false)
        #expect(outcome.verdict("credentials") == "skipped" && outcome.verdict("clock") == "skipped")
        #expect(try simulator.requests().isEmpty, "nothing was sent through the intercepted connection")
        #expect(mitm.output.contains("does not trust the proxy's certificate"), "the handshake was refused: \(mitm.output)")

        let text = try runDoctor(config: config, json: false)
        #expect(text.status == 69)
        #expect(text.stdout.contains("FAIL tls"), "\(text.stdout)")
        #expect(text.stdout.contains("result: FAIL: 1 check blocks syncing (uplink iotda: tls)"), "\(text.stdout)")
    }

    /// A pin that does not match: the pin line fails and shows the key the server presents,
    /// the chain itself is fine, and nothing is sent.
    @Test func pinMismatchFailsThePinLineAndShowsTheServerKey() throws {
        let simulator = try Simulator(https: true)
        let realPin = try opensslPin(certificate: simulator.directory.file("state/server.crt"))
        let wrongPin = "sha256//" + Data(repeating: 7, count: 32).base64EncodedString()
        let config = try DoctorConfig.iotda(url: simulator.url, caFile: simulator.caFile,
                                            extra: ["pinned_public_keys": "[\(quoted(wrongPin))]"])
        let outcome = try runDoctor(config: config)
        #expect(outcome.status == 69, "\(outcome.output)")
        #expect(outcome.verdict("tls") == "ok")
        #expect(outcome.verdict("host_name") == "ok")
        #expect(outcome.verdict("pin") == "fail")
        #expect(outcome.details("pin").string("server_key") == realPin)
        #expect(outcome.details("pin").bool("match") == false)
        #expect(outcome.checks()["pin"]?.string("fix")?.contains(realPin) == true)
        #expect(outcome.verdict("credentials") == "skipped")
        #expect(try simulator.requests().isEmpty)
    }

    // MARK: Reachability

    /// Nothing listens on the port: the tcp line fails and says what to do.
    @Test func closedPortFailsTCPWithTheFix() throws {
        let port = try freePort()
        let outcome = try runDoctor(config: nil, ["--url", "https://127.0.0.1:\(port)"], json: false)
        #expect(outcome.status == 69, "\(outcome.output)")
        #expect(outcome.stdout.contains("FAIL tcp connect      could not connect to 127.0.0.1:\(port)"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains("Couldn't connect to server (curl 7)"))
        #expect(outcome.stdout.contains("fix:   Check the port in the URL"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains("skip tls              not checked: no connection"))

        let json = try runDoctor(config: nil, ["--url", "https://127.0.0.1:\(port)"])
        #expect(json.status == 69)
        #expect(json.verdict("tcp") == "fail" && json.verdict("dns") == "ok")
        #expect(json.details("tcp").string("error") == "connect_failed")
    }

    /// An `.invalid` name (RFC 6761: never resolves): name resolution fails, nothing else runs.
    @Test func unresolvableNameFailsNameResolution() throws {
        let outcome = try runDoctor(config: nil, ["--url", "https://edgebuf-doctor-test.invalid/"])
        #expect(outcome.status == 69, "\(outcome.output)")
        #expect(outcome.verdict("dns") == "fail")
        #expect(outcome.checks()["dns"]?.string("summary")?.contains("edgebuf-doctor-test.invalid does not resolve") == true)
        #expect(outcome.checks()["dns"]?.string("fix")?.contains("getent hosts edgebuf-doctor-test.invalid") == true)
        #expect(outcome.verdict("tcp") == "skipped" && outcome.verdict("tls") == "skipped")
        #expect(outcome.report?["failures"] as? [String] == ["url: name resolution"])
    }

    // MARK: Clock

    /// The doctor's wall clock 10 minutes ahead (libfaketime): the clock line warns with the
    /// offset; with IoTDA sign_type 1 and more than an hour it fails.
    @Test func clockOffsetFromTheServersDateIsReported() throws {
        let simulator = try Simulator(https: true)
        let config = try DoctorConfig.iotda(url: simulator.url, caFile: simulator.caFile)
        let ahead = try runDoctor(config: config, faketime: "+600")
        #expect(ahead.status == 0, "a clock warning does not block syncing: \(ahead.output)")
        #expect(ahead.verdict("clock") == "warn")
        let offset = (ahead.details("clock")["offset_seconds"] as? NSNumber)?.doubleValue ?? 0
        #expect(offset > 590 && offset < 610, "offset \(offset)")
        #expect(ahead.checks()["clock"]?.string("summary")?.contains("10 min ahead of the server's Date") == true)

        let right = try runDoctor(config: config)
        #expect(right.verdict("clock") == "ok")
        #expect(abs((right.details("clock")["offset_seconds"] as? NSNumber)?.doubleValue ?? 99) < 3)

        // sign_type 1, 2 h ahead: device-auth fails (the simulator allows one hour) and the
        // clock line says why.
        let checked = try DoctorConfig.iotda(url: simulator.url, caFile: simulator.caFile, extra: ["sign_type": "1"])
        let far = try runDoctor(config: checked, faketime: "+7200")
        #expect(far.status == 69, "\(far.output)")
        #expect(far.verdict("clock") == "fail")
        #expect(far.verdict("credentials") == "fail")
        #expect(far.checks()["credentials"]?.string("cause")?.contains("device clock") == true)
    }

    // MARK: Credentials

    /// A wrong device secret: credentials fail with the platform's code, the secret is never shown.
    @Test func wrongDeviceSecretFailsCredentialsWithoutShowingIt() throws {
        let simulator = try Simulator(https: true)
        let secret = "wrong-secret-3f9a1c"
        let config = try DoctorConfig.iotda(url: simulator.url, caFile: simulator.caFile, secret: secret)
        let outcome = try runDoctor(config: config)
        #expect(outcome.status == 69, "\(outcome.output)")
        let credentials = outcome.checks()["credentials"] ?? [:]
        #expect(credentials.string("verdict") == "fail")
        #expect(credentials.string("summary")?.contains("IOTDA.000002") == true, "\(credentials)")
        #expect(credentials.string("fix")?.contains("device_id and secret") == true)
        #expect(outcome.details("credentials").int("auth_status") == 401)
        #expect(outcome.verdict("clock") == "ok", "the refusal still carried a Date")
        #expect(!outcome.output.contains(secret))
        let text = try runDoctor(config: config, json: false)
        #expect(!text.output.contains(secret))
    }

    /// Faye: a wrong password is refused at the handshake (`403::Handshake denied`).
    @Test func wrongBayeuxPasswordFailsTheHandshake() throws {
        let faye = try FayeServer()
        let config = try DoctorConfig.faye(url: faye.url, password: "not-the-password-77")
        let outcome = try runDoctor(config: config)
        #expect(outcome.status == 69, "\(outcome.output)")
        #expect(outcome.verdict("credentials") == "fail")
        #expect(outcome.checks()["credentials"]?.string("summary")?.contains("403::Handshake denied") == true, "\(outcome.checks()["credentials"] ?? [:])")
        #expect(!outcome.output.contains("not-the-password-77"))
    }

    // MARK: Idle timeout

    /// Faye long polls held 1 s and 2 s by the server: the idle probe and the handshake pass.
    @Test func fayeLongPollsSurviveTheIdleProbe() throws {
        let faye = try FayeServer()
        let config = try DoctorConfig.faye(url: faye.url)
        let outcome = try runDoctor(config: config, ["--idle-probe", "--max-idle", "2s"])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.verdict("credentials") == "ok")
        #expect(outcome.verdict("tls") == "warn", "plain http:// is a warning")
        #expect(outcome.verdict("idle") == "ok")
        #expect(outcome.details("idle").string("mode") == "long_poll")
        #expect(outcome.details("idle")["survived_s"] as? [String] == ["1s", "2s"])
        #expect(outcome.stderr.contains("the poll's answer arrived after 2"), "\(outcome.stderr)")
    }

    /// A relay that stops forwarding after 2.5 s idle (no FIN, no RST) in front of the HTTPS
    /// simulator: the keep-alive probe survives 1 s and 2 s, then finds the silent drop at 4 s
    /// and recommends network_idle_limit = "2s". On the uplink that is a warning.
    @Test func silentDropOfAKeptAliveConnectionIsReported() throws {
        let simulator = try Simulator(https: true)
        let cutter = try IdleCutter(upstreamPort: simulator.port, idleSeconds: 2.5, mode: .silent)
        let config = try DoctorConfig.iotda(url: "https://127.0.0.1:\(cutter.port)", caFile: simulator.caFile)
        let outcome = try runDoctor(config: config, ["--idle-probe", "--max-idle", "4s"])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.verdict("idle") == "warn")
        let details = outcome.details("idle")
        #expect(details.string("failure") == "silent_drop")
        #expect(details["survived_s"] as? [String] == ["1s", "2s"])
        #expect(details.string("recommended_network_idle_limit") == "2s")
        #expect(outcome.checks()["idle"]?.string("summary")?.contains("without a FIN or RST") == true)
        #expect(outcome.checks()["idle"]?.string("fix")?.contains(#"network_idle_limit = "2s""#) == true)
        #expect(outcome.stderr.contains("dropped silently"), "\(outcome.stderr)")
    }

    /// The same relay in front of Faye: the long poll held 4 s never comes back. The downlink
    /// is configured with the default 5 min limit, so this blocks syncing (exit 69).
    @Test func silentDropOfLongPollsFailsAndRecommendsALimit() throws {
        let faye = try FayeServer()
        let cutter = try IdleCutter(upstreamPort: faye.port, idleSeconds: 2.5, mode: .silent)
        let config = try DoctorConfig.faye(url: "http://127.0.0.1:\(cutter.port)/notification/realtime")
        let outcome = try runDoctor(config: config, ["--idle-probe", "--max-idle", "4s"], json: false)
        #expect(outcome.status == 69, "\(outcome.output)")
        #expect(outcome.stdout.contains("FAIL idle timeout     silent drop: after 4 s idle"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains(#"fix:   Set [downlink] network_idle_limit = "2s" (now 5m)"#), "\(outcome.stdout)")
        #expect(outcome.stdout.contains("idle 2 s: survived"))

        // With network_idle_limit already below what survives, the drop is only a warning.
        let tuned = try DoctorConfig.faye(url: "http://127.0.0.1:\(cutter.port)/notification/realtime",
                                          extra: ["network_idle_limit": quoted("2s")])
        let ok = try runDoctor(config: tuned, ["--idle-probe", "--max-idle", "4s"])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.verdict("idle") == "warn")
        #expect(ok.details("idle").string("failure") == "silent_drop")
    }

    /// A box that closes idle connections (FIN) is told apart from a silent one.
    @Test func closedIdleConnectionIsNotTakenForASilentDrop() throws {
        let simulator = try Simulator(https: true)
        let cutter = try IdleCutter(upstreamPort: simulator.port, idleSeconds: 1.5, mode: .close)
        let config = try DoctorConfig.iotda(url: "https://127.0.0.1:\(cutter.port)", caFile: simulator.caFile)
        let outcome = try runDoctor(config: config, ["--idle-probe", "--max-idle", "3s"])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.verdict("idle") == "warn")
        #expect(outcome.details("idle").string("failure") == "closed")
        #expect(outcome.details("idle")["survived_s"] as? [String] == ["1s"])
    }

    // MARK: Usage

    @Test func nothingToCheckIsAConfigurationError() throws {
        let outcome = try runDoctor(config: nil, json: false)
        #expect(outcome.status == 78)
        #expect(outcome.stderr.contains("nothing to check"))
        let bad = try runDoctor(config: nil, ["--url", "ftp://example.com"], json: false)
        #expect(bad.status == 64, "\(bad.output)")
        let maxIdle = try runDoctor(config: nil, ["--url", "https://127.0.0.1:1", "--max-idle", "soon"], json: false)
        #expect(maxIdle.status == 64)
    }
}
