import EdgeStore
import Foundation
import TestSupport

/// The channel the proof suite's notifications go to.
let proofChannel = "/operations/4711"

extension Device {
    /// `[downlink]` for the simulator's Bayeux endpoint as t1/alice on `proofChannel`, with short
    /// timings: polls held 4 s (`network_idle_limit` 8 s), dead at hold + 3 s, backoff 100 ms to
    /// 1 s; `extra` raw keys on top.
    func useDownlink(_ simulator: Simulator, extra: [String: String] = [:]) throws {
        let user = Simulator.cumulocityUsers.first!
        var keys: [String: String] = [
            "url": Self.quoted(simulator.url + "/notification/realtime"),
            "channels": "[" + Self.quoted(proofChannel) + "]",
            "username": Self.quoted(user.key),
            "password": Self.quoted(user.value),
            "network_idle_limit": Self.quoted("8s"),
            "poll_deadline_margin": Self.quoted("3s"),
            "backoff_initial": Self.quoted("100ms"),
            "backoff_max": Self.quoted("1s"),
            "credentials_backoff": Self.quoted("30s"),
        ]
        if simulator.url.hasPrefix("http://") { keys["allow_plain_http"] = "true" }
        if let ca = simulator.caFile { keys["ca_file"] = Self.quoted(ca) }
        for (key, value) in extra { keys[key] = value }
        sections["downlink"] = keys
        try writeConfig()
    }

    /// `inbox list --json`: notifications and gap markers, oldest first.
    func inbox() throws -> [JSONDict] {
        try parseLines(try ebOK(["inbox", "list", "--json", "--limit", "10000000"]))
    }

    /// A component's saved state (`uplink`, `downlink`), read straight from the file.
    func runtimeState(_ component: String) -> JSONDict? {
        guard FileManager.default.fileExists(atPath: db),
              let connection = try? Connection(path: db, readOnly: true),
              let statement = try? connection.prepare("SELECT state FROM runtime_state WHERE component = '\(component)'"),
              (try? statement.step()) == true, let text = try? statement.text(0) else { return nil }
        return try? parseObject(text)
    }
}

/// The number a proof notification carries: `{"realtimeAction", "data": {"id", "n"}}` as the
/// simulator sends it and the inbox stores it.
func notificationNumber(_ data: JSONDict?) -> Int? {
    data?.object("data")?.int("n") ?? data?.int("n")
}

extension Simulator {
    /// Publishes notification `n` (a Cumulocity operation CREATE with a stable id) on
    /// `proofChannel`; `pad` bytes of filler make it bigger.
    func publishNotification(_ n: Int, pad: Int = 0) throws {
        var data: JSONDict = ["id": "op-\(n)", "n": n]
        if pad > 0 { data["pad"] = String(repeating: "q", count: pad) }
        try control("POST", "/_sim/bayeux/publish", ["channel": proofChannel, "data": [data], "realtime_action": "CREATE"])
    }

    /// Every event the Bayeux endpoint wrote into an answer (the last 10,000).
    func deliveries() throws -> [JSONDict] {
        (try control("GET", "/_sim/bayeux/deliveries") as? JSONDict)?["deliveries"] as? [JSONDict] ?? []
    }

    func bayeuxStats() throws -> JSONDict {
        try control("GET", "/_sim/bayeux/stats") as? JSONDict ?? [:]
    }

    func behave(_ behaviours: JSONDict...) throws {
        try control("POST", "/_sim/bayeux/behaviours", behaviours)
    }

    /// Platform requests with seq >= `since`.
    func requests(since: Int) throws -> [JSONDict] {
        (try control("GET", "/_sim/requests?since=\(since)") as? JSONDict)?["requests"] as? [JSONDict] ?? []
    }
}

/// The platform side of the downlink: on a thread of its own, publishes notification 1, 2, ...
/// into the simulator's Bayeux endpoint every `pause`.
final class Publisher: @unchecked Sendable {
    private let lock = NSLock()
    private var stopping = false
    private var published: [Int] = []
    private var next: Int
    private let done = DispatchSemaphore(value: 0)
    private var running = false
    let simulator: Simulator
    let pause: Duration
    let pad: Int

    init(simulator: Simulator, first: Int = 1, pause: Duration = .milliseconds(100), pad: Int = 0) {
        self.simulator = simulator
        self.next = first
        self.pause = pause
        self.pad = pad
    }

    func start() {
        running = true
        let thread = Thread { [self] in
            while !lock.withLock({ stopping }) {
                publishOnce()
                sleep(pause)
            }
            done.signal()
        }
        thread.name = "proof-publisher"
        thread.start()
    }

    func stop() {
        guard running else { return }
        lock.withLock { stopping = true }
        done.wait()
        running = false
    }

    func publishOnce() {
        let n = lock.withLock { () -> Int in
            defer { next += 1 }
            return next
        }
        if (try? simulator.publishNotification(n, pad: pad)) != nil {
            lock.withLock { published.append(n) }
        }
    }

    var count: Int { lock.withLock { published.count } }
}

/// What the simulator delivered against what the inbox holds. Every delivered notification
/// must be stored exactly once, or be covered by a gap marker: a gap row stored after the
/// last stored notification that was delivered before it and before the first stored one
/// delivered after it, i.e. where a consumer reading the inbox in order meets the hole.
struct InboxReconciliation: CustomStringConvertible {
    /// n -> the index of its first delivery.
    let firstDelivery: [Int: Int]
    /// n -> how many inbox rows carry it.
    let storedCounts: [Int: Int]
    /// n -> its inbox id (the first, if stored twice).
    let storedID: [Int: Int]
    let gapIDs: [Int]
    let rows: [JSONDict]
    let deliveriesCount: Int
    /// Notifications whose first delivery was in the last answer a session got (the request
    /// with the highest seq among that client's deliveries): the answer a `kill -9` can cut off.
    let inLastAnswerOfASession: Set<Int>

    init(simulator: Simulator, device: Device) throws {
        let deliveries = try simulator.deliveries()
        var first: [Int: Int] = [:], firstAnswer: [Int: (client: String, request: Int)] = [:], lastRequest: [String: Int] = [:]
        for delivery in deliveries {
            guard delivery.string("channel") == proofChannel, let n = notificationNumber(delivery.object("data")),
                  let index = delivery.int("index") else { continue }
            let client = delivery.string("client_id") ?? "", request = delivery.int("request") ?? -1
            lastRequest[client] = max(lastRequest[client] ?? Int.min, request)
            if index < first[n] ?? Int.max {
                first[n] = index
                firstAnswer[n] = (client, request)
            }
        }
        firstDelivery = first
        inLastAnswerOfASession = Set(firstAnswer.filter { lastRequest[$0.value.client] == $0.value.request }.map(\.key))
        deliveriesCount = deliveries.count
        rows = try device.inbox()
        var counts: [Int: Int] = [:], ids: [Int: Int] = [:], gaps: [Int] = []
        for row in rows {
            guard let id = row.int("id") else { continue }
            if row.string("kind") == "gap" { gaps.append(id); continue }
            guard let n = notificationNumber(row.object("data")) else { continue }
            counts[n, default: 0] += 1
            if ids[n] == nil { ids[n] = id }
        }
        storedCounts = counts
        storedID = ids
        gapIDs = gaps
    }

    /// Stored more than once.
    var storedTwice: [Int] { storedCounts.filter { $0.value > 1 }.map(\.key).sorted() }

    /// Delivered, not stored.
    var missing: [Int] { firstDelivery.keys.filter { storedCounts[$0] == nil }.sorted() }

    /// Delivered, not stored, and no gap marker where a consumer would meet the hole.
    var uncovered: [Int] {
        missing.filter { n in
            let index = firstDelivery[n]!
            var before = Int.min, after = Int.max
            for (m, id) in storedID {
                guard let other = firstDelivery[m] else { continue }
                if other < index { before = max(before, id) } else if other > index { after = min(after, id) }
            }
            return !gapIDs.contains { $0 > before && $0 < after }
        }
    }

    var description: String {
        "delivered \(firstDelivery.count) (\(deliveriesCount) deliveries), stored \(storedCounts.count), stored twice \(storedTwice.count), missing \(missing.count) (uncovered \(uncovered.count): \(uncovered.prefix(20))), gap markers \(gapIDs.count)"
    }
}

