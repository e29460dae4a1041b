import Foundation
import TestSupport
import Testing

/// Answers far larger than the memory edgebuf may use (issue 12): a long poll held while
/// thousands of operations queued up comes back as one answer of tens of MiB. It is read as a
/// stream and committed in chunks, so it is stored whole in bounded memory, and an answer cut
/// off midway keeps the complete events before the cut, then a gap marker.
extension SimulatorTests {
    /// 16,384 events of 4,000 bytes of padding each: one answer of about 64 MiB.
    static let largeAnswerEvents = 16_384
    static let padding = 4_000
    /// The bound of the brief: memory does not grow with the answer size.
    static let rssBoundKiB = 50 * 1024

    /// Publishes the large batch in one control request, so the held connect answers with all
    /// of it at once. Built as text: 64 MiB through JSONSerialization in the test costs more
    /// than the test.
    func publishLargeBatch(_ simulator: Simulator, first: Int) throws {
        let padding = String(repeating: "x", count: Self.padding)
        var body = #"{"channel":"/operations/42","realtime_action":"CREATE","data":["#
        body.reserveCapacity(Self.largeAnswerEvents * (Self.padding + 40) + 100)
        for index in 0..<Self.largeAnswerEvents {
            if index > 0 { body += "," }
            body += #"{"id":"big-\#(first + index)","n":\#(first + index),"p":"\#(padding)"}"#
        }
        body += "]}"
        let file = simulator.directory.file("large-publish.json")
        try body.write(toFile: file, atomically: false, encoding: .utf8)
        let result = try run("/usr/bin/curl", ["-sS", "--max-time", "120", "-o", "/dev/null", "-w", "%{http_code}",
                                               "-H", "Content-Type: application/json", "--data-binary", "@" + file,
                                               simulator.url + "/_sim/bayeux/publish"])
        guard result.status == 0, result.stdout == "200" else {
            throw TestFailure("publish of the large batch: curl \(result.status) \(result.stdout) \(result.stderr)")
        }
    }

    @Test func aSixtyFourMebibyteAnswerIsStoredWholeInBoundedMemory() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try expectDelivery(s, 1, "before the large answer")
        let first = 1000
        try publishLargeBatch(s.simulator, first: first)
        // The daemon's own count, not `inbox list` (64 MiB a look) while it stores.
        let arrived = try poll(timeout: .seconds(180), interval: .milliseconds(200)) {
            (try s.receiver.state()?.int("stored") ?? 0) >= 1 + Self.largeAnswerEvents
        }
        #expect(arrived, "\(s.daemon.stderrText.suffix(2000))")
        let inbox = try s.receiver.inbox()
        let numbers = inbox.compactMap { $0.object("data")?.object("data")?.int("n") }
        #expect(numbers == [1] + Array(first..<(first + Self.largeAnswerEvents)), "stored \(numbers.count)")
        // No gap among them. (One after them is possible and right: a slow machine may let the
        // server expire the session while the answer is stored; the next handshake says so.)
        let lastEvent = try #require(inbox.lastIndex { $0.object("data")?.object("data")?.int("n") == first + Self.largeAnswerEvents - 1 })
        #expect(!inbox[...lastEvent].contains { $0.string("kind") == "gap" }, "a gap marker among the events")
        // It came as one answer, committed in several chunks.
        let batches = try s.receiver.audit().filter { $0.string("event") == "notifications_received" }
        #expect(batches.count > 10, "\(batches.count) commits")
        let peak = peakRSSKiB(s.daemon.pid) ?? Int.max
        #expect(peak < Self.rssBoundKiB, "peak RSS \(peak) KiB for a 64 MiB answer")
        try expectDelivery(s, 2, "after the large answer")
    }

    @Test func aLargeAnswerCutOffKeepsWholeEventsThenAGapMarker() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        // The connect after the one held now is answered cut off after half its bytes, then
        // the connection is closed; the delivery of 1 ends the held one.
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "close"])
        try expectDelivery(s, 1, "before the cut answer")
        let first = 1000
        try publishLargeBatch(s.simulator, first: first)
        let noticed = try poll(timeout: .seconds(300), interval: .milliseconds(200)) { try !s.receiver.gaps().isEmpty }
        #expect(noticed, "\(s.daemon.stderrText.suffix(2000))")
        try expectDelivery(s, 2, "after the cut answer")
        let inbox = try s.receiver.inbox()
        let kinds = inbox.map { $0.string("kind") ?? "" }
        let gapAt = try #require(kinds.firstIndex(of: "gap"))
        let before = inbox[..<gapAt].compactMap { $0.object("data")?.object("data") }
        // The events before the cut, each whole, in order; none after the gap but the next one.
        #expect(before.count > 1 && before.count < 1 + Self.largeAnswerEvents, "\(before.count) stored before the gap")
        #expect(before.compactMap { $0.int("n") } == [1] + Array(first..<(first + before.count - 1)))
        #expect(before.dropFirst().allSatisfy { $0.string("p")?.utf8.count == Self.padding }, "an event was stored in part")
        #expect(try s.receiver.numbers().last == 2)
        let reason = inbox[gapAt].object("data")?.string("reason") ?? ""
        #expect(reason.contains("answer was lost"), "\(reason)")
        let peak = peakRSSKiB(s.daemon.pid) ?? Int.max
        #expect(peak < Self.rssBoundKiB, "peak RSS \(peak) KiB for a 64 MiB answer cut off")
    }
}
