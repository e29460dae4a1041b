import Foundation
import TestSupport
import Testing

/// `edgebuf run` (downlink only) under libfaketime while the server holds its long poll: the
/// wall clock jumps a day forward, two days back, nine more back and ten forward (only
/// CLOCK_REALTIME moves, as with an NTP step or an RTC reset; see ClockJumpTests for the
/// launcher). The poll deadline and the session watchdog run on the monotonic clock: no
/// healthy poll is aborted and no session presumed gone because of a jump (no gap marker, one
/// handshake), notifications keep arriving, a hung poll is still noticed at its deadline after
/// a backward jump, and every `received_at` is the daemon's wall clock at receipt.
@Suite(.enabled(if: faketimePath != nil && cCompiler != nil, "needs the faketime package (tools/lib.sh installs it) and a C compiler"))
struct LongPollClockJumpTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func wallClockJumpsDuringAHeldLongPollKeepDeadlinesAndDeliveries() throws {
        let simulator = try Simulator()
        let device = Device(label: "edgebuf-pollclock")
        try device.useDownlink(simulator)
        let clockFile = device.directory.file("faketime")
        try "+0\n".write(toFile: clockFile, atomically: true, encoding: .utf8)
        let environment = ["FAKETIME_TIMESTAMP_FILE": clockFile, "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"]
        let wrapper = try device.startRun(logLevel: "info", launcher: try ClockJumpTests.launcher(in: device.directory), environment: environment)
        let daemon = ClockJumpTests.childPID(of: wrapper)
        defer {
            if let daemon { kill(daemon, SIGKILL) }
            wrapper.kill9()
        }
        try #require(daemon != nil, "edgebuf runs under the faketime wrapper: \(wrapper.stderrText.suffix(800))")
        func stats() -> JSONDict { (try? simulator.bayeuxStats()) ?? [:] }
        func held() -> Bool { (stats().int("held_connects") ?? 0) >= 1 }
        func timedOut() -> Int { stats().object("connect_ends")?.int("timeout") ?? 0 }
        func stored(_ n: Int) -> Bool { ((try? device.inbox()) ?? []).contains { notificationNumber($0.object("data")) == n } }
        let connected = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            device.runtimeState("downlink")?.string("phase") == "connected" && held()
        }
        try #require(connected, "the downlink holds a long poll: \(wrapper.stderrText.suffix(1500))")

        // Offsets from the real time after each jump, in hours; n -> the offset it arrived under.
        let jumps: [(file: String, hours: Double)] = [("+1d", 24), ("-1d", -24), ("-10d", -240), ("+0", 0)]
        var offsetOf: [Int: Double] = [:]
        var n = 0
        for jump in jumps {
            // A poll is held when the clock jumps.
            #expect(poll(timeout: .seconds(20), interval: .milliseconds(50)) { held() }, "no long poll held before the jump to \(jump.file)")
            let endsBefore = timedOut()
            try "\(jump.file)\n".write(toFile: clockFile, atomically: true, encoding: .utf8)
            sleep(.milliseconds(500))
            // The held poll takes a notification.
            n += 1
            offsetOf[n] = jump.hours
            try simulator.publishNotification(n)
            let number = n
            #expect(poll(timeout: .seconds(20), interval: .milliseconds(100)) { stored(number) }, "notification \(n) after the jump to \(jump.file) did not arrive: \(wrapper.stderrText.suffix(1500))")
            // And idle polls go on being held to their end and renewed (hold 4 s).
            let cycled = poll(timeout: .seconds(30), interval: .milliseconds(200)) { timedOut() >= endsBefore + 2 }
            #expect(cycled, "idle polls were not renewed after the jump to \(jump.file): \(timedOut() - endsBefore) ended by their hold")
        }
        // No healthy poll was taken for dead and no session for gone: one handshake, no gap.
        #expect(stats().int("handshakes") == 1, "the jumps caused a re-handshake: \(stats())")
        #expect(try device.inbox().filter { $0.string("kind") == "gap" }.isEmpty, "a jump made a healthy poll look dead")

        // A hung poll while the clock jumps back 30 days: still noticed at hold + margin.
        try simulator.behave(["on": "connect", "count": 1, "action": "hang"])
        #expect(poll(timeout: .seconds(20), interval: .milliseconds(50)) { (stats().int("behaviours_applied") ?? 0) >= 1 }, "the hang behaviour took a connect")
        try "-30d\n".write(toFile: clockFile, atomically: true, encoding: .utf8)
        let noticed = poll(timeout: .seconds(30), interval: .milliseconds(200)) {
            (device.runtimeState("downlink")?.string("last_error") ?? "").contains("dead poll")
        }
        #expect(noticed, "the hung poll was not noticed after the clock jumped back: \(wrapper.stderrText.suffix(1500))")
        n += 1
        offsetOf[n] = -720
        try simulator.publishNotification(n)
        let last = n
        #expect(poll(timeout: .seconds(30), interval: .milliseconds(100)) { stored(last) }, "notification \(n) after the dead poll did not arrive: \(wrapper.stderrText.suffix(1500))")

        // received_at is the daemon's (faked) wall clock when it stored the notification: the
        // simulator's delivery time shifted by the offset then in force, give or take the
        // time to commit.
        let deliveredAt = Dictionary(try simulator.deliveries().compactMap { d -> (Int, Double)? in
            guard let n = notificationNumber(d.object("data")), let at = ClockJumpTests.milliseconds(d.string("at")) else { return nil }
            return (n, at)
        }, uniquingKeysWith: min)
        let notifications = try device.inbox().filter { $0.string("kind") == "notification" }
        #expect(notifications.count == n, "\(notifications.count) notifications stored, \(n) published")
        for row in notifications {
            guard let number = notificationNumber(row.object("data")), let offset = offsetOf[number],
                  let received = ClockJumpTests.milliseconds(row.string("received_at")), let delivered = deliveredAt[number] else {
                Issue.record("unexpected inbox row \(row)")
                continue
            }
            let skew = (received - delivered) / 3_600_000 - offset
            #expect(abs(skew) < 0.01, "notification \(number): received_at \(row.string("received_at") ?? "nil") is \(skew) h off the daemon's clock (offset \(offset) h)")
        }
        let gaps = try device.inbox().filter { $0.string("kind") == "gap" }
        #expect(gaps.count == 1 && (gaps.first?.object("data")?.string("reason") ?? "").contains("lost"), "one gap marker, for the hung poll: \(gaps)")

        if let daemon { kill(daemon, SIGTERM) }
        #expect(wrapper.wait(timeout: .seconds(15)) == 0, "run: \(wrapper.stderrText.suffix(800))")
        #expect(try device.auditIntact(), "the audit chain survives its rows' times jumping")
    }
}
