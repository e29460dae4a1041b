import Foundation
import TestSupport
import Testing

/// An hour of a flapping network compressed into about two minutes: one `edgebuf run`
/// (IoTDA uplink with 4-second tokens, Bayeux downlink) behind a relay the test can take
/// away, while an application enqueues with `--ack` and the platform publishes notifications.
/// A seeded schedule of phases: the network gone (connections closed, then refused),
/// connections cut mid-answer, hung requests and polls, 5xx storms, rate limiting, tokens
/// revoked and credentials refused, long polls gone silent, sessions lost, with healthy
/// stretches between. Then everything is healed and must reconcile: every acknowledged record
/// delivered (duplicates only from answers the daemon never got), every delivered notification
/// stored once or behind a gap marker, the audit chain intact, memory bounded, and the daemon
/// never stopped by itself.
@Suite struct SoakTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    /// The planned length of the trouble (every kind once, then more while it fits).
    static let budget: Duration = .seconds(120)
    /// `[uplink] request_timeout`, seconds: what ends a hung data request.
    static let requestTimeout = 3

    @Test func anHourOfFlappingNetworkEndsInFullReconciliation() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["EDGEBUF_SOAK_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        let plan = SoakPhase.schedule(seed: seed, budget: Self.budget)
        let planned = plan.reduce(Duration.zero) { $0 + $1.duration }
        print("soak: seed \(seed) (EDGEBUF_SOAK_SEED=\(seed) replays the schedule); \(plan.count) phases, \(String(format: "%.0f", seconds(planned))) s: \(plan.map(\.description).joined(separator: ", "))")

        let simulator = try Simulator(extra: ["--token-lifetime", "4"])
        let relay = try Relay(upstreamPort: simulator.port)
        let device = Device(label: "edgebuf-soak")
        try device.useSimulator(simulator, extra: [
            "url": Device.quoted(relay.url),
            "request_timeout": String(Self.requestTimeout), "unauthorized_backoff": Device.quoted("2s"),
        ])
        try device.useDownlink(simulator, extra: ["url": Device.quoted(relay.url + "/notification/realtime")])
        let log = RequestLog(simulator: simulator)
        let producer = Producer(device: device, batch: 20, pause: .milliseconds(100))
        let publisher = Publisher(simulator: simulator, pause: .milliseconds(150))
        producer.attemptOnce()
        let daemon = try device.startRun(tag: "soak")
        defer {
            producer.stop()
            publisher.stop()
            daemon.kill9()
        }
        let connected = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            device.runtimeState("downlink")?.string("phase") == "connected"
        }
        try #require(connected, "the downlink connects through the relay: \(daemon.stderrText.suffix(1500))")
        producer.start()
        publisher.start()

        // The schedule. Requests whose answer the relay may have cut off when it stopped.
        var cutByRelay: Set<Int> = []
        var relayStops = 0
        var notBitten: [String] = []
        var outages: [(from: Date, to: Date)] = [], listeningWhileDown = 0
        var resident = ResidentSamples()
        var diedByItself: String?
        // The daemon's peak resident set (VmHWM), read after every phase and before it stops;
        // a reading that fails is counted, so a measurement that never happened cannot pass.
        var peakRSS = 0, rssReadings = 0, rssMisses = 0
        func readPeakRSS() {
            if let kib = peakRSSKiB(daemon.pid) {
                rssReadings += 1
                peakRSS = max(peakRSS, kib)
            } else {
                rssMisses += 1
            }
        }
        let started = ContinuousClock.now
        for phase in plan {
            guard daemon.isRunning else {
                diedByItself = "exit \(daemon.exitStatus ?? -1) before \(phase): \(daemon.stderrText.suffix(1500))"
                break
            }
            print("soak: \(String(format: "%6.1f", seconds(ContinuousClock.now - started))) s  \(phase)")
            var choices = Choices(phase.variant)
            // A phase lasts its planned time, and then until what it injected has met the
            // daemon (a rate-limited uplink sends slowly), for 10 s more at most.
            let faultsBefore = try simulator.stats().int("faults_applied") ?? 0
            let behavioursBefore = try simulator.bayeuxStats().int("behaviours_applied") ?? 0
            func hold(_ duration: Duration, faults: Int = 0, behaviours: Int = 0) {
                sleep(duration)
                let met = poll(timeout: .seconds(10), interval: .milliseconds(200)) {
                    let applied = (try? simulator.stats().int("faults_applied")) ?? 0
                    let shaped = (try? simulator.bayeuxStats().int("behaviours_applied")) ?? 0
                    return applied - faultsBefore >= faults && shaped - behavioursBefore >= behaviours
                }
                if !met { notBitten.append(phase.description) }
            }
            switch phase.kind {
            case .healthy:
                sleep(phase.duration)
            case .refused:
                let down = Date()
                relay.stop()
                relayStops += 1
                if isListening(port: relay.port) { listeningWhileDown += 1 }
                // The uplink has one data request out at a time: only the newest one, or one
                // still open, can have lost its answer with the relay.
                try log.refresh()
                let data = log.data
                if let newest = data.last?.int("seq") { cutByRelay.insert(newest) }
                cutByRelay.formUnion(data.filter { $0.bool("done") != true }.compactMap { $0.int("seq") })
                sleep(phase.duration)
                // And until the uplink has tried and failed meanwhile (it may be pacing itself
                // after a rate limit), for 10 s more at most.
                let tried = poll(timeout: .seconds(10), interval: .milliseconds(300)) {
                    ((try? device.audit()) ?? []).contains { failedWithoutAnswer($0, since: down) }
                }
                if !tried { notBitten.append(phase.description) }
                try relay.start()
                outages.append((down, Date()))
            case .cutOff:
                let actions = ["close", "reset", "truncate"].shuffled(using: &choices.random)
                try simulator.control("POST", "/_sim/faults", actions.map { action -> JSONDict in
                    ["path": simulatorDataPaths, "count": choices.int(1...3), "action": action, "accept": choices.bool()]
                })
                try simulator.control("POST", "/_sim/bayeux/behaviours", ([
                    ["on": "connect", "count": 1, "action": "close"],
                    ["on": "connect", "count": 1, "action": "truncated_json"],
                    ["on": "connect", "count": 1, "action": "close", "reset": true],
                ] as [JSONDict]).shuffled(using: &choices.random))
                hold(phase.duration, faults: 2, behaviours: 2)
            case .hang:
                try simulator.fault(["path": simulatorDataPaths, "count": 1, "action": "hang", "accept": choices.bool()])
                try simulator.behave(["on": "connect", "count": 1, "action": "hang"])
                hold(phase.duration, faults: 1, behaviours: 1)
            case .storm:
                var faults: [JSONDict] = []
                for _ in 0..<choices.int(2...4) {
                    var fault: JSONDict = ["path": simulatorDataPaths, "count": choices.int(2...6), "status": choices.pick([500, 502, 503, 504])]
                    if choices.int(0...2) == 0 { fault["retry_after"] = 1 }
                    faults.append(fault)
                }
                faults.insert(["path": simulatorDataPaths, "count": 2, "action": "garbage", "status": 502], at: choices.int(0...faults.count))
                try simulator.control("POST", "/_sim/faults", faults)
                try simulator.control("POST", "/_sim/bayeux/behaviours", [
                    ["on": "connect", "count": choices.int(1...3), "action": "http_status", "status": choices.pick([500, 502, 503])],
                    ["on": "any", "count": 1, "action": "http_status", "status": 503, "retry_after": 1],
                ] as [JSONDict])
                hold(phase.duration, faults: 3, behaviours: 1)
            case .rateLimit:
                try simulator.configure(["rate_limit_per_second": 2])
                try simulator.control("POST", "/_sim/faults", ([
                    ["path": simulatorDataPaths, "count": choices.int(1...3), "status": 403, "error_code": "IOTDA.021101", "error_msg": "Device flow control"],
                    ["path": simulatorDataPaths, "count": choices.int(1...3), "status": 429, "retry_after": 1],
                ] as [JSONDict]).shuffled(using: &choices.random))
                try simulator.behave(["on": "connect", "count": 1, "action": "http_status", "status": 429, "retry_after": 1])
                hold(phase.duration, faults: 2, behaviours: 1)
                try simulator.configure(["rate_limit_per_second": 0])
            case .token:
                // Every token the platform issued is gone (as if they had all expired): the
                // next request is refused with IOTDA.000004 and the daemon authenticates again.
                try simulator.configure(["revoke_tokens": true])
                sleep(phase.duration / 2)
                // Then a token refused and the re-authentication refused too.
                try simulator.fault(
                    ["path": simulatorDataPaths, "count": 1, "status": 403, "error_code": "IOTDA.000004", "error_msg": "The token is invalid or expired"],
                    ["path": simulatorAuthPath, "count": 1, "status": 401, "error_code": "IOTDA.000002", "error_msg": "Authentication failed"])
                hold(phase.duration / 2, faults: 2)
            case .idleDrop:
                try simulator.behave(["on": "connect", "count": 1, "action": "heartbeats", "heartbeats": choices.int(1...3),
                                      "heartbeat_interval": 0.5, "then": "silence"])
                hold(phase.duration, behaviours: 1)
            case .sessionLoss:
                try simulator.control("POST", "/_sim/bayeux/kill", ["held": choices.pick(["close", "unknown_client"])])
                sleep(phase.duration)
            }
            try simulator.control("DELETE", "/_sim/faults")
            try simulator.control("DELETE", "/_sim/bayeux/behaviours")
            try log.refresh()
            readPeakRSS()
            resident.sample(daemon.pid, keep: true)
        }
        let troubled = ContinuousClock.now - started
        print("soak: phases whose faults had not all met the daemon 10 s after their end: \(notBitten)")
        producer.stop()
        publisher.stop()
        #expect(diedByItself == nil, "edgebuf run stopped by itself: \(diedByItself ?? "")")

        // Healed: everything drains, the downlink is connected and takes one more notification.
        try relay.start()
        try simulator.configure(["rate_limit_per_second": 0])
        let backlog = (try? device.outboxLines().count) ?? -1
        let peakBeforeDrain = peakRSSKiB(daemon.pid) ?? 0
        // After rate limiting the uplink may be down to its floor of 0.1 requests/s, climbing
        // back 5 % per delivered request: that alone can take minutes.
        let drainStarted = ContinuousClock.now
        let drained = poll(timeout: .seconds(180), interval: .milliseconds(250)) {
            resident.sample(daemon.pid)
            return device.outboxIsEmpty
        }
        let peakAfterDrain = peakRSSKiB(daemon.pid) ?? 0
        let paces = daemon.stderrText.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "edgebuf.uplink.requests_per_second=") else { return nil }
            return String(line[range.upperBound...].prefix { !$0.isWhitespace })
        }
        print("soak: backlog of \(backlog) records when the trouble ended, drained in \(String(format: "%.1f", seconds(ContinuousClock.now - drainStarted))) s; the uplink slowed down \(paces.count) times, to requests/s \(paces); peak RSS \(peakBeforeDrain) KiB before draining, \(peakAfterDrain) KiB after")
        #expect(drained, "the outbox drained once the network healed: \(daemon.stderrText.suffix(1500))")
        let reconnected = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            let state = device.runtimeState("downlink")
            return state?.string("phase") == "connected" && state?.int("pid") == Int(daemon.pid)
        }
        #expect(reconnected, "the downlink is connected after the soak: \(daemon.stderrText.suffix(1500))")
        let final = 1_000_000
        try simulator.publishNotification(final)
        let arrived = poll(timeout: .seconds(30), interval: .milliseconds(100)) {
            ((try? device.inbox()) ?? []).contains { notificationNumber($0.object("data")) == final }
        }
        #expect(arrived, "a notification published after the soak arrives: \(daemon.stderrText.suffix(1500))")
        readPeakRSS()
        #expect(daemon.isRunning, "edgebuf run stopped by itself: exit \(daemon.exitStatus ?? -1): \(daemon.stderrText.suffix(1500))")
        daemon.send(SIGTERM)
        #expect(daemon.wait(timeout: .seconds(15)) == 0, "run stops cleanly on SIGTERM: \(daemon.stderrText.suffix(800))")
        try log.refresh()

        // Uplink: every acknowledged record delivered or still held; nothing unacknowledged.
        let reconciliation = try Reconciliation(acked: producer.acked, simulator: simulator, device: device)
        print("soak: \(String(format: "%.0f", seconds(troubled))) s of trouble, \(producer.all.count) enqueues; uplink: \(reconciliation)")
        #expect(reconciliation.lost.isEmpty, "\(reconciliation)")
        #expect(reconciliation.unacknowledged(attempted: producer.attempted).isEmpty)
        #expect(reconciliation.outbox.isEmpty, "still in the outbox: \(reconciliation.outbox.sorted().prefix(20))")
        // Nothing was refused by the platform (no 4xx for the data itself was injected).
        let deadLetters = try device.deadLetters()
        #expect(deadLetters.isEmpty, "dead-lettered though no record was refused: \(deadLetters.prefix(3))")

        // Duplicates: the daemon deletes a record only after a 2xx it read, so every record was
        // accepted by at most one request answered normally; any other acceptance must come
        // from a request whose answer the daemon never got: a fault that accepted and then
        // broke the answer, or a client that gave up (the request timeout); or may come from
        // one the relay cut off when it stopped, or one slower than the request timeout.
        let requests = log.entries
        func answerLost(_ seq: Int) -> String? {
            guard let entry = requests[seq] else { return nil }
            if entry.object("fault")?.bool("accept") == true { return "fault \(entry.object("fault")?.string("action") ?? "?") after accepting" }
            if let outcome = entry.string("outcome"), outcome != "answered" { return "outcome \(outcome)" }
            if let ms = (entry["duration_ms"] as? NSNumber)?.doubleValue, ms >= Double(Self.requestTimeout * 1000) - 50 { return "slower than the request timeout" }
            if cutByRelay.contains(seq) { return "cut off by the relay" }
            return nil
        }
        var acceptedBy: [Int: [Int]] = [:]
        for record in try simulator.accepted() {
            guard let seq = Records.seq(record), let request = record.int("request") else { continue }
            acceptedBy[seq, default: []].append(request)
        }
        let duplicated = acceptedBy.filter { $0.value.count > 1 }
        let duplicatingRequests = Set(duplicated.values.flatMap { $0 }.filter { answerLost($0) != nil })
        var recordsOf: [Int: Int] = [:]
        for requestsOfRecord in acceptedBy.values { for request in requestsOfRecord { recordsOf[request, default: 0] += 1 } }
        let explanations = duplicatingRequests.sorted().map { "#\($0) (\(recordsOf[$0] ?? 0) records): \(answerLost($0)!)" }
        print("soak: \(duplicated.count) records accepted more than once (\(reconciliation.duplicates) extra acceptances), answers lost: \(explanations.prefix(30))")
        let twiceAnsweredNormally = duplicated.filter { $0.value.filter { answerLost($0) == nil }.count > 1 }.keys.sorted()
        #expect(twiceAnsweredNormally.isEmpty, "records accepted by two requests that were both answered normally: \(twiceAnsweredNormally.prefix(20)): \(twiceAnsweredNormally.prefix(3).map { acceptedBy[$0]!.map { requests[$0].map(jsonText) ?? "?" } })")
        let unlogged = Set(acceptedBy.values.flatMap { $0 }).filter { requests[$0] == nil }
        #expect(unlogged.isEmpty, "accepting requests missing from the request log: \(unlogged.sorted().prefix(10))")

        // Downlink: every delivered notification stored once, or a gap marker where it is missing.
        let inbox = try InboxReconciliation(simulator: simulator, device: device)
        print("soak: published \(publisher.count + 1); inbox: \(inbox)")
        #expect(inbox.storedTwice.isEmpty, "stored twice: \(inbox.storedTwice.prefix(20))")
        #expect(inbox.uncovered.isEmpty, "delivered, not stored, no gap marker: \(inbox)")
        // In the order the platform delivered them.
        let storedInOrder = inbox.storedID.sorted { inbox.firstDelivery[$0.key] ?? 0 < inbox.firstDelivery[$1.key] ?? 0 }.map(\.value)
        #expect(storedInOrder == storedInOrder.sorted(), "notifications stored out of their delivery order")
        #expect(try device.auditIntact(), "the audit chain verifies")
        print("soak: peak RSS of edgebuf run \(peakRSS) KiB; largest anonymous \(resident.maxAnon) KiB, file-backed \(resident.maxFile) KiB; after each phase, anonymous + file-backed MiB: \(resident.series)")
        #expect(rssMisses == 0 && rssReadings == plan.count + 1 && peakRSS > 0,
                "the peak RSS was read from the running daemon after each of the \(plan.count) phases and before it stopped: \(rssReadings) readings, \(rssMisses) failed")
        // Memory is not bounded yet (issue 12, bounded memory): until it is, the bound is not
        // enforced, but the test says what it measured against it, and a peak over it is
        // recorded as a known issue (tools/test lists those). Once memory is bounded, drop the
        // withKnownIssue.
        let rssBoundKiB = 50 * 1024
        let overBound = peakRSS >= rssBoundKiB
        let memory = "peak RSS (VmHWM) of edgebuf run \(peakRSS) KiB (\(String(format: "%.1f", Double(peakRSS) / 1024)) MiB) against the bound \(rssBoundKiB) KiB (\(rssBoundKiB / 1024) MiB): \(overBound ? "OVER the bound; not enforced until memory is bounded (issue 12), recorded as a known issue" : "within the bound (not enforced until memory is bounded, issue 12)")"
        print("soak: MEMORY: \(memory)")
        // A warning, not a failure: tools/test shows it in every run, within the bound or not.
        Issue.record(Comment(rawValue: memory), severity: .warning)
        withKnownIssue("issue 12, bounded memory: the peak RSS of edgebuf run (debug build) has gone over 50 MiB (50.1-50.6 MiB in 4 of 16 runs) when a backlog of ~10k records drained after the soak in 16 KB requests while the downlink ran; about 40 MiB of it are file-backed pages (the 42 MB debug binary and its libraries), the heap grew from about 6 to over 10 MiB during that drain", isIntermittent: true) {
            #expect(peakRSS < rssBoundKiB, "peak RSS \(peakRSS) KiB, over the \(rssBoundKiB) KiB bound")
        }

        // The premises, from the evidence: each kind of trouble happened and the daemon met it.
        let audit = try device.audit()
        let uplinkRequests = Device.rows(audit, "request").map { $0.object("detail") ?? [:] }
        let retries = uplinkRequests.filter { $0.string("outcome") == "retry" }
        func retried(_ condition: (JSONDict) -> Bool) -> Int { retries.filter(condition).count }
        let refused = retried { ($0.string("detail") ?? "").lowercased().contains("could not connect") }
        // Requests and authentications that failed without an answer while the relay was down.
        let failedWhileDown = audit.filter { row in outages.contains { failedWithoutAnswer(row, since: $0.from, until: $0.to) } }.count
        let closed = retried { ($0.string("detail") ?? "").lowercased().contains("connection closed") }
        let timedOut = retried { ($0.string("detail") ?? "").lowercased().contains("timed out") }
        let serverErrors = retried { ($0.int("http_status") ?? 0) >= 500 }
        let rateLimited = uplinkRequests.filter { $0.string("error_code") == "IOTDA.021101" || $0.int("http_status") == 429 }.count
        let tokenRefused = uplinkRequests.filter { $0.string("error_code") == "IOTDA.000004" }.count
        let authenticated = Device.rows(audit, "authenticated").count
        let tokenPhases = plan.filter { $0.kind == .token }.count
        let authFailed = Device.rows(audit, "authentication_failed").map { $0.object("detail") ?? [:] }
        let authRefused = authFailed.filter { $0.int("http_status") == 401 }.count
        let dataOutcomes = Dictionary(grouping: log.data, by: { $0.string("outcome") ?? "open" }).mapValues(\.count)
        let bayeuxOutcomes = Dictionary(grouping: log.bayeux, by: { entry -> String in
            let status = entry.int("status").map(String.init) ?? "-"
            return "\(entry.string("outcome") ?? "open")/\(status)"
        }).mapValues(\.count)
        let gaps = inbox.rows.filter { $0.string("kind") == "gap" }.map { $0.object("data")?.string("reason") ?? "" }
        let bayeux = try simulator.bayeuxStats()
        let stats = try simulator.stats()
        print("soak: uplink \(uplinkRequests.count) requests audited, \(retries.count) retried (could not connect \(refused), closed \(closed), timed out \(timedOut), 5xx \(serverErrors)), rate limited \(rateLimited), token refused \(tokenRefused) (\(tokenPhases) injected, the rest after a revocation), authenticated \(authenticated), authentication failed \(authFailed.count) (refused \(authRefused)); relay stopped \(relayStops) times, \(failedWhileDown) requests and authentications failed meanwhile")
        print("soak: simulator data requests by outcome \(dataOutcomes); Bayeux requests by outcome/status \(bayeuxOutcomes)")
        print("soak: faults applied \(stats.int("faults_applied") ?? -1), Bayeux behaviours applied \(bayeux.int("behaviours_applied") ?? -1), simulator auths \(stats.object("auths") ?? [:])")
        print("soak: Bayeux handshakes \(bayeux.int("handshakes") ?? -1), sessions killed \(bayeux.int("sessions_killed") ?? -1), unknown client \(bayeux.int("unknown_client") ?? -1), connect ends \(bayeux.object("connect_ends") ?? [:]); gap markers \(gaps.count): \(Dictionary(grouping: gaps, by: { String($0.prefix(60)) }).mapValues(\.count))")
        // Every request the platform saw is audited (matched by body size, as a multiset).
        var auditedSizes: [Int: Int] = [:]
        for row in uplinkRequests { auditedSizes[row.int("body_bytes") ?? -1, default: 0] += 1 }
        var unaudited: [JSONDict] = []
        let dataLog = log.data
        for entry in dataLog {
            let size = entry.int("body_bytes") ?? -2
            if (auditedSizes[size] ?? 0) > 0 { auditedSizes[size]! -= 1 } else { unaudited.append(entry) }
        }
        // libcurl is not let to send a POST again by itself when a reused connection dies
        // under it (HTTPConnection's seek callback refuses the rewind), so every request the
        // platform saw is one of the engine's attempts, with its audit row. For the record:
        // reused connections that died without an answer byte, where such a resend would come.
        var firstOnConnection: [Int: Int] = [:]
        for entry in log.all { if let connection = entry.int("connection"), firstOnConnection[connection] == nil { firstOnConnection[connection] = entry.int("seq") } }
        let diedOnReuse = dataLog.filter { entry in
            (firstOnConnection[entry.int("connection") ?? -1] ?? Int.max) < (entry.int("seq") ?? 0)
                && entry.int("status") == nil && ["reset", "close"].contains(entry.string("outcome") ?? "")
        }
        let unauditedBySize = Dictionary(grouping: unaudited, by: { $0.int("body_bytes") ?? -1 }).mapValues(\.count)
        print("soak: \(unaudited.count) data requests the simulator saw without an audit row (by body size: \(unauditedBySize)); reused connections that died without an answer byte: \(diedOnReuse.count)")
        #expect(unaudited.isEmpty, "\(unaudited.count) data requests the simulator logged have no audit row (by body size: \(unauditedBySize)): \(unaudited.prefix(5).map(jsonText))")
        // And each request that delivered records has the audit row of exactly those records.
        var idOf: [Int: Int] = [:]
        for attempt in producer.all {
            let ids = ((try? Acks.parse(attempt.result.stdoutText)) ?? []).map(\.id)
            for (seq, id) in zip(attempt.acked, ids) { idOf[seq] = Int(id) }
        }
        var idsOfRequest: [Int: [Int]] = [:]
        for (seq, requestsOfRecord) in acceptedBy {
            for request in requestsOfRecord { idsOfRequest[request, default: []].append(idOf[seq] ?? -1) }
        }
        let auditedRanges = Set(uplinkRequests.map { "\($0.int("first_id") ?? -1)-\($0.int("last_id") ?? -1)-\($0.int("records") ?? -1)" })
        let deliveredUnaudited = idsOfRequest.filter { request, ids in
            let sorted = ids.sorted()
            return !auditedRanges.contains("\(sorted.first ?? -1)-\(sorted.last ?? -1)-\(sorted.count)")
        }.keys.sorted()
        #expect(deliveredUnaudited.isEmpty, "requests that delivered records have no audit row for them: \(deliveredUnaudited.prefix(10).map { r in "#\(r): ids \(idsOfRequest[r]!.min() ?? -1)...\(idsOfRequest[r]!.max() ?? -1) (\(idsOfRequest[r]!.count)); audited near: \(uplinkRequests.filter { abs(($0.int("first_id") ?? 0) - (idsOfRequest[r]!.min() ?? 0)) < 400 }.map { "\($0.int("first_id") ?? -1)...\($0.int("last_id") ?? -1) (\($0.int("records") ?? -1), \($0.int("body_bytes") ?? -1) B, \($0.string("outcome") ?? "?"))" })" })")
        #expect(listeningWhileDown == 0, "the relay's port still took connections while it was down")
        #expect(failedWhileDown >= 1, "no uplink request or authentication failed while the network was down")
        #expect(closed >= 1, "no uplink request lost its connection mid-answer")
        #expect(timedOut >= 1 && (dataOutcomes["hang"] ?? 0) >= 1, "no hung data request was ended by the request timeout")
        #expect(serverErrors >= 3, "only \(serverErrors) uplink requests met a 5xx")
        #expect(rateLimited >= 2, "only \(rateLimited) uplink requests were rate limited")
        #expect(tokenRefused >= tokenPhases, "only \(tokenRefused) uplink requests were refused for their token in \(tokenPhases) token phases")
        #expect(authRefused >= 1, "no re-authentication was refused")
        #expect(authenticated >= 10, "only \(authenticated) authentications: tokens were not renewed again and again")
        #expect((bayeuxOutcomes.filter { $0.key.hasPrefix("close/") || $0.key.hasPrefix("reset/") }.values.reduce(0, +)) >= 1, "no long poll was cut off")
        #expect((bayeuxOutcomes.filter { $0.key.hasPrefix("hang/") }.values.reduce(0, +)) >= 1, "no long poll hung")
        #expect((bayeuxOutcomes.filter { $0.key.hasPrefix("heartbeats_then_silence/") }.values.reduce(0, +)) >= 1, "no long poll went silent")
        #expect((bayeuxOutcomes.filter { $0.key.hasSuffix("/500") || $0.key.hasSuffix("/502") || $0.key.hasSuffix("/503") || $0.key.hasSuffix("/429") }.values.reduce(0, +)) >= 2, "the long poll met no 5xx or 429")
        #expect(gaps.contains { $0.contains("dead poll") }, "no dead poll was noticed by its deadline: \(gaps)")
        #expect((bayeux.int("sessions_killed") ?? 0) >= 1 && (bayeux.int("handshakes") ?? 0) >= 2, "no session was lost and re-established")
        #expect(relayStops >= 1)
        #expect(reconciliation.acked.count >= 1_000, "only \(reconciliation.acked.count) records acknowledged")
        #expect(inbox.firstDelivery.count >= 200, "only \(inbox.firstDelivery.count) notifications delivered")
    }
}


/// An audit row of a request or an authentication that failed without an HTTP answer
/// (connection refused or closed), written between `since` and `until`.
func failedWithoutAnswer(_ row: JSONDict, since: Date, until: Date = .distantFuture) -> Bool {
    guard ["request", "authentication_failed"].contains(row.string("event") ?? ""), row.object("detail")?.int("http_status") == nil,
          let at = row.string("at").flatMap(parseTimestamp) else { return false }
    return at >= since && at <= until
}
