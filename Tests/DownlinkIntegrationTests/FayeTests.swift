import Foundation
import TestSupport
import Testing

/// The downlink against a real, independently written Bayeux server: Faye (Debian ruby-faye on
/// thin) with Cumulocity-style handshake authentication.
@Suite(.serialized) struct FayeTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    func operations(_ range: ClosedRange<Int>) -> [JSONDict] {
        range.map { ["id": "op-\($0)", "n": $0, "status": "PENDING"] }
    }

    @Test func receivesWhatIsPublishedAndReportsItsState() throws {
        let faye = try FayeServer()
        let receiver = try Receiver(url: faye.url, channels: ["/operations/42", "/alarms/42"])
        let daemon = try receiver.start()
        defer { daemon.stop() }
        #expect(try receiver.waitFor(phase: "connected"), "\(daemon.stderrText)")
        try faye.publish("/operations/42", operations(1...3))
        try faye.publish("/alarms/42", [["id": "a-1", "n": 100, "severity": "MAJOR"]])
        try faye.publish("/events/42", [["id": "e-1", "n": 200]])  // not subscribed
        #expect(try receiver.waitFor(notifications: 4))
        let stored = try receiver.notifications()
        #expect(Set(stored.compactMap { $0.object("data")?.int("n") }) == [1, 2, 3, 100])
        #expect(Set(stored.compactMap { $0.string("channel") }) == ["/operations/42", "/alarms/42"])
        #expect(try receiver.gaps().isEmpty)

        let state = try #require(try receiver.state())
        #expect(state.string("phase") == "connected")
        #expect(state["subscribed"] as? [String] == ["/alarms/42", "/operations/42"])
        #expect(state.int("handshakes") == 1)
        let status = try receiver.eb(["status", "--json"])
        let downlink = try #require(try parseObject(status.stdout).object("downlink")?.object("state"))
        #expect(downlink.string("phase") == "connected")
        #expect(!status.stdout.contains(FayeServer.password))

        // Every received batch is audited: the counts add up to what is stored.
        let batches = try receiver.audit().filter { $0.string("event") == "notifications_received" }
        #expect(batches.compactMap { $0.object("detail")?.int("stored") }.reduce(0, +) == 4)
        #expect(try receiver.auditIntact())

        // Graceful stop: a disconnect, exit 0.
        daemon.send(SIGTERM)
        #expect(daemon.wait(timeout: .seconds(15)) == 0)
        #expect(try receiver.state()?.string("phase") == "disconnected")
    }

    /// 1,000 notifications published in bursts of 50 as fast as curl goes: each arrives once.
    @Test func aThousandNotificationsInBurstsArriveEachOnce() throws {
        let faye = try FayeServer()
        let receiver = try Receiver(url: faye.url)
        let daemon = try receiver.start(logLevel: "warning")
        defer { daemon.stop() }
        #expect(try receiver.waitFor(phase: "connected"))
        for burst in 0..<20 {
            try faye.publish("/operations/42", operations((burst * 50 + 1)...(burst * 50 + 50)))
        }
        #expect(try receiver.waitFor(notifications: 1000, timeout: .seconds(60)), "\(daemon.stderrText.suffix(2000))")
        let numbers = try receiver.numbers()
        #expect(numbers.count == 1000)
        #expect(Set(numbers) == Set(1...1000))
        #expect(try receiver.gaps().isEmpty)
    }

    /// Faye killed and restarted under the client: the session is unknown, the client
    /// handshakes again, subscribes again, stores a gap marker, and gets what is published
    /// after the restart.
    @Test func aServerRestartLeadsToAGapMarkerAndANewSession() throws {
        let faye = try FayeServer(timeout: 10)
        let receiver = try Receiver(url: faye.url)
        let daemon = try receiver.start()
        defer { daemon.stop() }
        #expect(try receiver.waitFor(phase: "connected"))
        try faye.publish("/operations/42", operations(1...2))
        #expect(try receiver.waitFor(notifications: 2))

        try faye.restart()
        // The new server knows nothing of the session: unknown client -> handshake -> gap.
        // One gap for the held poll the crash cut off (its answer is lost), one for the new
        // session; the first only if the cut was seen as such.
        #expect(try poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            try receiver.gaps().contains { $0.object("data")?.string("reason")?.contains("Unknown client") == true }
        }, "\(daemon.stderrText.suffix(3000))")
        #expect(try receiver.waitFor(phase: "connected"))
        try faye.publish("/operations/42", operations(3...4))
        #expect(try receiver.waitFor(notifications: 4))
        let kinds = try receiver.inbox().map { $0.string("kind") ?? "" }
        #expect(kinds.prefix(2) == ["notification", "notification"] && kinds.suffix(2) == ["notification", "notification"])
        #expect((1...2).contains(kinds.filter { $0 == "gap" }.count))
        let state = try #require(try receiver.state())
        #expect(state.int("reconnects") == 1)
        #expect(state.int("handshakes") == 2)
    }

    /// Wrong credentials: Faye's auth extension answers `403::Handshake denied` with
    /// `reconnect: none`; the downlink stops, says why in status and the audit, and does not
    /// retry (no storm), while the daemon keeps running.
    @Test func wrongCredentialsStopTheDownlinkWithoutARetryStorm() throws {
        let faye = try FayeServer()
        let receiver = try Receiver(url: faye.url, password: "wrong-password")
        let daemon = try receiver.start()
        defer { daemon.stop() }
        #expect(try receiver.waitFor(phase: "stopped"), "\(daemon.stderrText.suffix(2000))")
        sleep(.seconds(3))
        let state = try #require(try receiver.state())
        #expect(state.int("handshakes") == 1)
        #expect(state.string("stop_reason")?.contains("403::Handshake denied") == true)
        #expect(daemon.isRunning, "the daemon stays up (its uplink would go on)")
        let errors = try receiver.audit().filter { $0.string("event") == "downlink_error" }
        #expect(errors.count == 1)
        #expect(!daemon.stderrText.contains("wrong-password"))
        daemon.send(SIGTERM)
        #expect(daemon.wait(timeout: .seconds(15)) == 0)
    }

    /// `kill -9` of the daemon while notifications stream in, again and again: nothing is
    /// stored twice, the audit chain holds, and what arrives after each restart is stored.
    @Test func killNineWhileNotificationsStreamInStoresNothingTwice() throws {
        let faye = try FayeServer(timeout: 5)
        let receiver = try Receiver(url: faye.url)
        var published = 0
        for round in 0..<6 {
            let daemon = try receiver.start(logLevel: "warning")
            #expect(try receiver.waitFor(phase: "connected", timeout: .seconds(30)))
            // A burst, and the kill lands somewhere in its intake.
            try faye.publish("/operations/42", operations((published + 1)...(published + 40)))
            published += 40
            sleep(.milliseconds(Int64(round * 60)))
            daemon.kill9()
        }
        // A last, undisturbed run: what is published now must arrive.
        let daemon = try receiver.start(logLevel: "warning")
        defer { daemon.stop() }
        #expect(try receiver.waitFor(phase: "connected"))
        try faye.publish("/operations/42", operations((published + 1)...(published + 10)))
        #expect(try poll(timeout: .seconds(30)) { Set(try receiver.numbers()).isSuperset(of: (published + 1)...(published + 10)) })

        let numbers = try receiver.numbers()
        #expect(numbers.count == Set(numbers).count, "no notification is stored twice")
        #expect(numbers.count > 10, "bursts were being stored when the kills came")
        #expect(Set(numbers).isSubset(of: Set(1...(published + 10))))
        #expect(try receiver.auditIntact())
        // Every stored row is accounted for by an audited batch.
        let batches = try receiver.audit().filter { $0.string("event") == "notifications_received" }
        #expect(batches.compactMap { $0.object("detail")?.int("stored") }.reduce(0, +) == numbers.count)
    }
}
