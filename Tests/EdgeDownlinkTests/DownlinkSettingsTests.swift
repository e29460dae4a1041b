import EdgeBuffer
@testable import EdgeDownlink
import EdgeTransport
import Testing

@Suite struct DownlinkSettingsTests {
    func load(_ text: String) throws -> DownlinkSettings {
        let document = try ConfigDocument(file: "test.toml", text: text)
        let settings = try DownlinkSettings(document: document)
        _ = try document.section("uplink").string("url")
        try document.finish()
        return settings
    }

    func problem(_ text: String) -> String? {
        do {
            _ = try load(text)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func withoutASectionNothingIsConfigured() throws {
        #expect(try !load("").isConfigured)
    }

    @Test func readsEveryKey() throws {
        let s = try load("""
            [downlink]
            url = "https://t.example.com/notification/realtime/"
            channels = ["/operations/1", "/alarms/1"]
            username = "t1/dev"
            password = "pw"
            network_idle_limit = "10m"
            poll_deadline_margin = "5s"
            backoff_initial = "2s"
            backoff_max = "30s"
            credentials_backoff = "1m"
            ca_file = "/etc/ca.pem"
            pinned_public_keys = ["sha256//AAAA"]
            proxy = "http://proxy:3128"
            [inbox]
            max_records = 500
            max_age = "7d"
            """)
        #expect(s.session.url == "https://t.example.com/notification/realtime")
        #expect(s.session.channels == ["/operations/1", "/alarms/1"])
        #expect(s.session.username == "t1/dev")
        #expect(s.session.password?.value == "pw")
        #expect(s.session.networkIdleLimit == .seconds(600))
        #expect(s.session.requestedTimeout == .seconds(540))
        #expect(s.session.pollDeadlineMargin == .seconds(5))
        #expect(s.session.backoffInitial == .seconds(2))
        #expect(s.session.backoffMaximum == .seconds(30))
        #expect(s.session.credentialsBackoffInitial == .seconds(60))
        #expect(s.transport.tls.caFile == "/etc/ca.pem")
        #expect(s.transport.tls.pinnedPublicKeys == ["sha256//AAAA"])
        #expect(s.transport.proxy == "http://proxy:3128")
        #expect(s.transport.keepCookies)
        #expect(s.retention.maxRecords == 500)
        #expect(s.retention.maxAgeMilliseconds == Int64(604_800_000))
    }

    @Test func tlsAndACumulocityLoginComeFromTheUplinkWhenNotGiven() throws {
        let s = try load("""
            [uplink]
            platform = "cumulocity"
            username = "t1/dev"
            password = "pw"
            ca_file = "/etc/ca.pem"
            proxy = "http://proxy:3128"
            [downlink]
            url = "https://t.example.com/notification/realtime"
            channels = ["/operations/1"]
            """)
        #expect(s.session.username == "t1/dev")
        #expect(s.session.password?.value == "pw")
        #expect(s.transport.tls.caFile == "/etc/ca.pem")
        #expect(s.transport.proxy == "http://proxy:3128")
    }

    @Test func theLongPollGetsKeepaliveAndAWatchdogFromTheIdleLimit() throws {
        let s = try load("""
            [downlink]
            url = "https://t.example.com/notification/realtime"
            channels = ["/operations/1"]
            network_idle_limit = "8s"
            """)
        // 8 s idle limit: ask the server to hold 4 s; keepalive after 2 s, probes every 1 s
        // (rounded up to the 1 s curl supports); no byte for hold + margin = dead.
        #expect(s.session.requestedTimeout == .seconds(4))
        #expect(s.pollTransport.keepAliveIdle == .seconds(2))
        #expect(s.pollTransport.keepAliveInterval == .seconds(1))
        #expect(s.pollTransport.lowSpeedTime == .seconds(14))
        #expect(s.controlTransport.requestTimeout == .seconds(10))
    }

    @Test func mistakesNameTheKey() {
        let base = "[downlink]\nurl = \"https://t.example.com/n\"\n"
        #expect(problem(base)?.contains("downlink.channels: is required") == true)
        #expect(problem(base + "channels = [\"operations\"]")?.contains("downlink.channels: entry 1 (operations) is not a channel") == true)
        #expect(problem(base + "channels = [\"/meta/connect\"]")?.contains("downlink.channels") == true)
        #expect(problem("[downlink]\nurl = \"http://t.example.com/n\"\nchannels = [\"/a\"]")?.contains("downlink.url: is plain http://") == true)
        #expect(problem("[downlink]\nurl = \"ftp://t.example.com/n\"\nchannels = [\"/a\"]")?.contains("downlink.url: must start with https://") == true)
        #expect(problem(base + "channels = [\"/a\"]\nusername = \"u\"")?.contains("downlink.password: is required") == true)
        #expect(problem(base + "channels = [\"/a\"]\nnetwork_idle_limit = \"1s\"")?.contains("downlink.network_idle_limit") == true)
        #expect(problem(base + "channels = [\"/a\"]\nchanels = [\"/b\"]")?.contains("chanels") == true)
        #expect(problem("[inbox]\nmax_records = 0")?.contains("inbox.max_records") == true)
    }

    @Test func plainHTTPNeedsTheExplicitSwitch() throws {
        let s = try load("[downlink]\nurl = \"http://127.0.0.1:1/n\"\nchannels = [\"/a\"]\nallow_plain_http = true")
        #expect(s.transport.allowPlainHTTP)
    }
}
