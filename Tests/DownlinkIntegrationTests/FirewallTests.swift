import Foundation
import TestSupport
import Testing

/// A network namespace whose conntrack forgets idle TCP flows after `idleSeconds` and then
/// drops their packets without a RST or FIN: the firewall that kills long polls in the field.
final class SilentFirewall: @unchecked Sendable {
    let name: String
    var wrapper: [String] { ["/usr/sbin/ip", "netns", "exec", name] }

    init(idleSeconds: Int) throws {
        name = "edgebuf-fw-\(getpid())-\(UInt32.random(in: 0..<1_000_000))"
        let ip = "/usr/sbin/ip"
        func must(_ command: [String]) throws {
            let result = try run(command[0], Array(command.dropFirst()))
            guard result.status == 0 else { throw TestFailure("\(command.joined(separator: " ")): \(result.stderr)") }
        }
        try must([ip, "netns", "add", name])
        do {
            try must(wrapper + [ip, "link", "set", "lo", "up"])
            try must(wrapper + ["/usr/sbin/sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_established=\(idleSeconds)",
                                "net.netfilter.nf_conntrack_tcp_loose=0"])
            try must(wrapper + [try which("iptables"), "-A", "INPUT", "-i", "lo", "-p", "tcp", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"])
        } catch {
            _ = try? run(ip, ["netns", "del", name])
            throw error
        }
    }

    deinit { _ = try? run("/usr/sbin/ip", ["netns", "del", name]) }

    /// Whether this machine can build one (root, iproute2, iptables with conntrack).
    static var available: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") && (try? which("iptables")) != nil
    }
}

/// The downlink behind a firewall that silently drops flows idle for 10 s, with Faye holding
/// polls for 25 s (test-peers.md). Server, client and the publisher all run in the namespace.
@Suite(.serialized, .enabled(if: SilentFirewall.available, "needs root, iproute2 and iptables"))
struct FirewallTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    /// `network_idle_limit` below the firewall's 10 s: the client asks Faye to hold polls for
    /// 4 s and keeps TCP keepalive at 2 s, so no flow is ever idle for 10 s: notifications
    /// published every 12 s for more than a minute all arrive promptly, without a reconnect.
    @Test func anIdleLimitBelowTheFirewallsKeepsReceiving() throws {
        let firewall = try SilentFirewall(idleSeconds: 10)
        let faye = try FayeServer(timeout: 25, wrapper: firewall.wrapper)
        let receiver = try Receiver(url: faye.url, extra: ["network_idle_limit": "\"8s\""])
        let daemon = try receiver.start(wrapper: firewall.wrapper)
        defer { daemon.stop() }
        #expect(try receiver.waitFor(phase: "connected"), "\(daemon.stderrText.suffix(2000))")
        for n in 1...6 {
            sleep(.seconds(12))
            let sent = ContinuousClock.now
            try faye.publish("/operations/42", [["id": "op-\(n)", "n": n]])
            #expect(try receiver.waitFor(notifications: n, timeout: .seconds(5)), "notification \(n) arrived within 5 s")
            _ = sent
        }
        #expect(try receiver.numbers() == Array(1...6))
        let state = try #require(try receiver.state())
        #expect(state.int("handshakes") == 1)
        #expect(state.int("reconnects") == 0)
        #expect(state.int("granted_timeout_ms").map { $0 <= 5_000 } == true)
    }

    /// `network_idle_limit` above it (60 s → polls held for Faye's 25 s): the firewall
    /// black-holes every held poll after 10 s idle, and Faye's answer at 25 s never arrives.
    /// The poll deadline (25 s + 3 s margin) notices the dead poll; the client polls again on
    /// a new connection, and a notification published then arrives.
    @Test func anIdleLimitAboveTheFirewallsIsDetectedAndRecovered() throws {
        let firewall = try SilentFirewall(idleSeconds: 10)
        let faye = try FayeServer(timeout: 25, wrapper: firewall.wrapper)
        let receiver = try Receiver(url: faye.url, extra: ["network_idle_limit": "\"60s\""])
        let daemon = try receiver.start(wrapper: firewall.wrapper)
        defer { daemon.stop() }
        #expect(try receiver.waitFor(phase: "connected"))
        let started = ContinuousClock.now
        let noticed = try poll(timeout: .seconds(60), interval: .milliseconds(100)) {
            (try receiver.state()?.string("last_error") ?? "").contains("dead poll")
        }
        #expect(noticed, "the dead poll was noticed: \(daemon.stderrText.suffix(2000))")
        let detection = ContinuousClock.now - started
        #expect(detection >= .seconds(20) && detection < .seconds(45), "at the deadline, not before: \(detection)")
        // The next poll is fresh: what is published now gets through.
        try faye.publish("/operations/42", [["id": "op-after", "n": 1]])
        #expect(try receiver.waitFor(notifications: 1, timeout: .seconds(10)), "\(daemon.stderrText.suffix(3000))")
    }
}
