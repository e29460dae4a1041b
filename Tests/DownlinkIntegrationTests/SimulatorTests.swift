import Foundation
import TestSupport
import Testing

/// The downlink against the simulator's Cumulocity-like Bayeux endpoint, for what Faye does
/// not do: whitespace heartbeats, advice on connects, broken answers, hung polls, `data` as an
/// array, events on a subscribe answer, stale answer ids (tools/SIMULATOR.md, "Behaviours").
@Suite struct SimulatorTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    struct Setup {
        let simulator: Simulator
        let receiver: Receiver
        let daemon: ChildProcess
    }

    /// A simulator, a receiver subscribed to /operations/42 with short timings (polls held 4 s,
    /// deadline hold + 3 s), and the daemon, connected. `before` runs before the daemon starts.
    func connected(https: Bool = false, extra: [String: String] = [:], before: (Simulator) throws -> Void = { _ in }) throws -> Setup {
        let simulator = try Simulator(https: https)
        try before(simulator)
        var keys = ["network_idle_limit": "\"8s\""]
        if let ca = simulator.caFile { keys["ca_file"] = "\"\(ca)\"" }
        for (key, value) in extra { keys[key] = value }
        let user = Simulator.cumulocityUsers.first!
        let receiver = try Receiver(url: simulator.url + "/notification/realtime", username: user.key, password: user.value, extra: keys)
        let daemon = try receiver.start()
        guard try receiver.waitFor(phase: "connected") else {
            throw TestFailure("not connected: \(daemon.stderrText.suffix(2000))")
        }
        return Setup(simulator: simulator, receiver: receiver, daemon: daemon)
    }

    func publish(_ simulator: Simulator, _ data: [JSONDict], channel: String = "/operations/42") throws {
        try simulator.control("POST", "/_sim/bayeux/publish", ["channel": channel, "data": data, "realtime_action": "CREATE"])
    }

    func behave(_ simulator: Simulator, _ behaviour: JSONDict) throws {
        try simulator.control("POST", "/_sim/bayeux/behaviours", behaviour)
    }

    func stats(_ simulator: Simulator) throws -> JSONDict {
        try simulator.control("GET", "/_sim/bayeux/stats") as? JSONDict ?? [:]
    }

    /// Publishes `n` and expects it in the inbox within `timeout`.
    func expectDelivery(_ s: Setup, _ n: Int, timeout: Duration = .seconds(20), _ why: String) throws {
        try publish(s.simulator, [["id": "op-\(n)", "n": n]])
        let arrived = try poll(timeout: timeout, interval: .milliseconds(50)) { try s.receiver.numbers().contains(n) }
        if !arrived {
            let inbox = (try? s.receiver.eb(["inbox", "list", "--json"])).map { "\($0.status) \($0.stdout.suffix(1000)) \($0.stderr)" } ?? ""
            let deliveries = (try? s.simulator.control("GET", "/_sim/bayeux/deliveries")).map { jsonText($0) } ?? ""
            Issue.record("\(why): not delivered. inbox: \(inbox); deliveries: \(deliveries.suffix(1500)); daemon: \(s.daemon.stderrText.suffix(2500))")
        }
    }

    @Test func overHTTPSWithTheDevicesCAAnOperationArrivesAndIsHandled() throws {
        let s = try connected(https: true)
        defer { s.daemon.stop() }
        try s.simulator.control("POST", "/_sim/bayeux/operation", ["deviceId": "42", "fragments": ["c8y_Restart": [:] as JSONDict]])
        #expect(try s.receiver.waitFor(notifications: 1))
        let stored = try #require(try s.receiver.notifications().first)
        #expect(stored.string("realtime_action") == "CREATE")
        let operation = try #require(stored.object("data")?.object("data"))
        #expect(operation.string("status") == "PENDING")
        #expect(operation.object("c8y_Restart") != nil)
        // The device's handler runs once with the notification on stdin.
        let handled = s.receiver.directory.file("handled.json")
        let exec = try s.receiver.eb(["inbox", "exec", "--consumer", "ops", "--once", "--", "/bin/sh", "-c", "cat > \(handled)"])
        #expect(exec.status == 0, "\(exec.stderr)")
        let line = try parseObject(try String(contentsOfFile: handled, encoding: .utf8))
        #expect(line.object("data")?.object("data")?.string("id") == operation.string("id"))
    }

    @Test func whitespaceHeartbeatsBeforeTheAnswerAreAccepted() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 2, "action": "heartbeats", "heartbeats": 5, "heartbeat_interval": 0.1])
        try expectDelivery(s, 1, "heartbeats then the answer")
        try expectDelivery(s, 2, "again")
        #expect(try s.receiver.state()?.int("consecutive_failures") == 0)
    }

    /// Heartbeats, then silence for ever: the deadline (hold + margin) ends the poll, the
    /// client polls again and goes on receiving.
    @Test func heartbeatsThenSilenceIsADeadPoll() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "heartbeats", "heartbeats": 3, "heartbeat_interval": 0.2, "then": "silence"])
        let noticed = try poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            (try s.receiver.state()?.string("last_error") ?? "").contains("dead poll")
        }
        #expect(noticed, "\(s.daemon.stderrText.suffix(2000))")
        try expectDelivery(s, 1, "after the dead poll")
    }

    /// A server that accepts a connect and never answers: the same.
    @Test func aConnectThatHangsIsADeadPoll() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "hang"])
        let noticed = try poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            (try s.receiver.state()?.string("last_error") ?? "").contains("dead poll")
        }
        #expect(noticed, "\(s.daemon.stderrText.suffix(2000))")
        try expectDelivery(s, 1, "after the hung poll")
        #expect(try s.receiver.gaps().first?.object("data")?.string("reason")?.contains("answer was lost") == true)
    }

    /// Broken answers to a connect (something in front of the server answered): each is a
    /// failed connect, retried with backoff; the downlink never crashes and goes on receiving.
    @Test(arguments: [
        #"{"action": "garbage"}"#, #"{"action": "truncated_json"}"#, #"{"action": "html"}"#, #"{"action": "empty"}"#,
        #"{"action": "http_status", "status": 500}"#, #"{"action": "http_status", "status": 503, "retry_after": 1}"#,
        #"{"action": "close"}"#, #"{"action": "close", "reset": true}"#,
        #"{"action": "huge", "size": 8388608}"#,
    ])
    func aBrokenAnswerIsRetried(behaviourJSON: String) throws {
        let behaviour = try parseObject(behaviourJSON)
        let s = try connected()
        defer { s.daemon.stop() }
        var queued = behaviour
        queued["on"] = "connect"
        queued["count"] = 1
        try behave(s.simulator, queued)
        // The held connect ends when an event comes: the next connect meets the behaviour and
        // is answered broken when its hold ends. (Events in a damaged answer are lost, as
        // Bayeux is at most once: none is in it here.)
        try expectDelivery(s, 1, "before the broken answer")
        #expect(try poll(timeout: .seconds(30)) { try s.receiver.state()?.string("last_error") != nil }, "the failure is reported")
        try expectDelivery(s, 2, "after the broken answer (\(behaviour))")
        #expect(s.daemon.isRunning)
        let numbers = try s.receiver.numbers()
        #expect(numbers.count == Set(numbers).count)
    }

    /// An answer that trickles in a byte at a time is slow, not broken: it is read to the end.
    @Test func aDrippingAnswerIsReadToTheEnd() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "drip", "drip_interval": 0.01])
        try expectDelivery(s, 1, "the dripped answer")
        try expectDelivery(s, 2, "the next one")
        #expect(try s.receiver.state()?.int("consecutive_failures") == 0)
    }

    @Test func dataAsAOneElementArrayIsUnwrappedAndDeduplicatedLikeAnObject() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "data_array"])
        let operation: JSONDict = ["id": "7", "n": 7, "status": "PENDING", "lastUpdated": "2026-11-22T08:00:00.000Z"]
        try publish(s.simulator, [operation])
        #expect(try s.receiver.waitFor(notifications: 1))
        // The same version again, as a plain object: not stored twice.
        try publish(s.simulator, [operation])
        try expectDelivery(s, 8, "a later one")
        let numbers = try s.receiver.numbers()
        #expect(numbers == [7, 8])
        let batches = try s.receiver.audit().filter { $0.string("event") == "notifications_received" }
        #expect(batches.compactMap { $0.object("detail")?.int("duplicates") }.reduce(0, +) == 1)
    }

    @Test func eventsOnASubscribeAnswerAreStored() throws {
        let s = try connected(before: { simulator in
            try behave(simulator, ["on": "subscribe", "count": 1, "action": "with_events",
                                   "events": [["channel": "/operations/42", "data": ["id": "early", "n": 99]]]])
        })
        defer { s.daemon.stop() }
        #expect(try s.receiver.waitFor(notifications: 1))
        #expect(try s.receiver.numbers() == [99])
    }

    /// A connect answer with a wrong message id: its events are stored, its advice is not
    /// taken, and the client goes on.
    @Test func aStaleConnectAnswerIdKeepsTheEvents() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "stale_id"])
        try expectDelivery(s, 1, "first connect ends, the next meets the stale id")
        try expectDelivery(s, 2, "events of the stale answer")
        try expectDelivery(s, 3, "and later")
    }

    /// The connects the simulator saw, in order, from its request log (`started_s` when one
    /// arrived, `finished_s` when its answer went out, on the simulator's clock).
    func connects(_ simulator: Simulator) throws -> [JSONDict] {
        try simulator.requests().filter {
            $0.string("path") == "/notification/realtime" && ($0.object("bayeux")?["messages"] as? [String]) == ["connect"]
        }
    }

    /// One connect is answered with `advice.interval` 5000 ms: the next connect reaches the
    /// simulator no sooner than 5 s after that answer went out, while the connect before it,
    /// answered with interval 0, was followed at once. Times are the simulator's own.
    @Test func anIntervalInTheAdviceSpacesTheConnects() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "advice", "advice": ["interval": 5000]])
        // The connect held now ends with a delivery; the next one meets the behaviour and is
        // answered with the advice when its 4 s hold ends.
        try expectDelivery(s, 1, "the delivery that ends the held connect")
        var window: (before: JSONDict, advised: JSONDict, next: JSONDict)?
        let seen = try poll(timeout: .seconds(40), interval: .milliseconds(100)) {
            let all = try connects(s.simulator)
            guard let index = all.firstIndex(where: { $0.object("bayeux")?.object("behaviour")?.string("action") == "advice" }),
                  index >= 1, index + 1 < all.count else { return false }
            window = (all[index - 1], all[index], all[index + 1])
            return true
        }
        let log = try connects(s.simulator).map(jsonText)
        #expect(seen, "a connect answered with the advice and one after it: \(log.suffix(6)); daemon: \(s.daemon.stderrText.suffix(1500))")
        guard let window else { return }
        func seconds(_ entry: JSONDict, _ key: String) -> Double? { (entry[key] as? NSNumber)?.doubleValue }
        let answered = try #require(seconds(window.advised, "finished_s"), "the advised connect was answered: \(jsonText(window.advised))")
        let arrived = try #require(seconds(window.next, "started_s"))
        let gap = arrived - answered
        #expect(window.advised.string("outcome") == "answered", "\(jsonText(window.advised))")
        // The client starts waiting when it has read the answer, after the simulator logged it.
        #expect(gap >= 4.95, "the next connect came \(String(format: "%.3f", gap)) s after the answer that advised 5 s")
        let unadvised = try #require(seconds(window.advised, "started_s")) - (seconds(window.before, "finished_s") ?? .infinity)
        #expect(unadvised < 4, "after the answer before it (interval 0) the client connected again at once, not after \(String(format: "%.3f", unadvised)) s")
        print("advice interval: the connect after the 5000 ms advice came \(String(format: "%.3f", gap)) s after that answer; after the one before (interval 0), \(String(format: "%.3f", unadvised)) s")
        try expectDelivery(s, 2, "after the interval")
    }

    /// "For good": after the stop, no Bayeux request at all (connect or handshake) for 10 s,
    /// longer than a retry (backoff at most 1 s here) or a session presumed expired (hold 4 s
    /// + margin 3 s) would take to send one; the state still says stopped, the daemon is up.
    @Test func aNegativeIntervalStopsTheDownlinkForGood() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "advice", "advice": ["interval": -1]])
        try publish(s.simulator, [["id": "op-1", "n": 1]])
        #expect(try s.receiver.waitFor(phase: "stopped"))
        #expect(try s.receiver.state()?.string("stop_reason")?.contains("negative") == true)
        #expect(try s.receiver.numbers() == [1], "the answer's events are kept")
        func bayeuxRequests() throws -> [JSONDict] {
            try s.simulator.requests().filter { $0.string("path") == "/notification/realtime" }
        }
        let before = try bayeuxRequests().count
        sleep(.seconds(10))
        let after = try bayeuxRequests()
        #expect(after.count == before, "Bayeux requests after the stop: \(after.dropFirst(before).map(jsonText))")
        #expect(try s.receiver.state()?.string("phase") == "stopped")
        #expect(s.daemon.isRunning)
    }

    @Test func reconnectNoneOnAConnectStopsTheDownlinkLoudly() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try behave(s.simulator, ["on": "connect", "count": 1, "action": "advice", "advice": ["reconnect": "none"]])
        try publish(s.simulator, [["id": "op-1", "n": 1]])
        #expect(try s.receiver.waitFor(phase: "stopped"))
        #expect(try s.receiver.state()?.string("stop_reason")?.contains("reconnect \"none\"") == true)
        #expect(try s.receiver.audit().contains { $0.string("event") == "downlink_error" })
        let status = try s.receiver.eb(["status"])
        #expect(status.stdout.contains("downlink     stopped"))
    }

    /// The server forgets every session (a restart): unknown client → handshake → gap marker.
    @Test func killedSessionsLeadToAGapMarker() throws {
        let s = try connected()
        defer { s.daemon.stop() }
        try expectDelivery(s, 1, "before")
        try s.simulator.control("POST", "/_sim/bayeux/kill", [:] as JSONDict)
        #expect(try poll(timeout: .seconds(20)) {
            try s.receiver.gaps().contains { $0.object("data")?.string("reason")?.contains("Unknown client") == true }
        }, "\(s.daemon.stderrText.suffix(2000))")
        #expect(try s.receiver.waitFor(phase: "connected"))
        try expectDelivery(s, 2, "after")
        // The server closes the held poll without an answer: that lost answer may leave a gap
        // marker of its own (libcurl is not let to send the poll again by itself), then the
        // next connect meets the 402 and the new session leaves one. Never more.
        let gaps = try s.receiver.gaps()
        #expect((1...2).contains(gaps.count), "\(gaps)")
    }
}
