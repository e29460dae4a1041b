import Foundation
import TestSupport
import Testing

/// Cumulocity device control end to end against the simulator, whose operation store and
/// transition table (tools/simulator_bayeux.py) are the oracle: statuses through the outbox
/// (`PUT /devicecontrol/operations/{id}`), `inbox exec --operations`, and the REST recovery
/// after gap markers.
@Suite(.serialized) struct OperationTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    /// A device: a receiver on /operations/42 with a Cumulocity `[uplink]` on the same simulator.
    struct Device {
        let simulator: Simulator
        let receiver: Receiver
        var directory: TemporaryDirectory { receiver.directory }

        init() throws {
            simulator = try Simulator()
            let user = Simulator.cumulocityUsers.first!
            receiver = try Receiver(url: simulator.url + "/notification/realtime", username: user.key, password: user.value,
                                    extra: ["network_idle_limit": "\"8s\""])
            let uplink = """
                [uplink]
                platform = "cumulocity"
                url = "\(simulator.url)"
                username = "\(user.key)"
                password = "\(user.value)"
                allow_plain_http = true
                backoff_initial = "100ms"
                backoff_max = "500ms"

                """
            let text = try String(contentsOfFile: receiver.config, encoding: .utf8)
            try (uplink + text).write(toFile: receiver.config, atomically: true, encoding: .utf8)
        }

        /// Creates an operation for device 42; published over Bayeux unless `publish` is false
        /// (created while the device heard nothing).
        @discardableResult
        func createOperation(_ mode: String, publish: Bool = true) throws -> String {
            var body: JSONDict = ["deviceId": "42", "fragments": ["c8y_Command": ["text": "mode-\(mode)"] as JSONDict]]
            if !publish { body["publish"] = false }
            let answer = try simulator.control("POST", "/_sim/bayeux/operation", body) as? JSONDict
            return try #require(answer?.object("operation")?.string("id"))
        }

        /// The simulator's operations (by id), transitions and refused transitions.
        func platform() throws -> (operations: [String: JSONDict], transitions: [JSONDict], refused: [JSONDict]) {
            let state = try simulator.control("GET", "/_sim/bayeux/operations") as? JSONDict ?? [:]
            let operations = (state["operations"] as? [JSONDict] ?? []).reduce(into: [String: JSONDict]()) { $0[$1.string("id") ?? ""] = $1 }
            return (operations, state["transitions"] as? [JSONDict] ?? [], state["refused"] as? [JSONDict] ?? [])
        }

        /// Waits until every operation in `ids` has a final status on the platform.
        func waitForFinal(_ ids: [String], timeout: Duration = .seconds(40)) throws -> Bool {
            try poll(timeout: timeout, interval: .milliseconds(100)) {
                let operations = try platform().operations
                return ids.allSatisfy { ["SUCCESSFUL", "FAILED"].contains(operations[$0]?.string("status") ?? "") }
            }
        }

        /// A handler script: appends the operation id to runs.log, then acts on the mode in
        /// the operation's c8y_Command text.
        func handler() throws -> String {
            let path = directory.file("handler.sh")
            let script = """
                #!/bin/sh
                line=$(cat)
                echo "$EDGEBUF_OPERATION_ID" >> \(directory.file("runs.log"))
                case "$line" in
                  *mode-ok*) echo "progress: done"; echo '{"c8y_Result": {"ok": true, "operation": "'$EDGEBUF_OPERATION_ID'"}}' ;;
                  *mode-fail*) echo "first line" >&2; echo "disk full (password \(Simulator.cumulocityUsers.first!.value))" >&2; exit 3 ;;
                  *mode-crash*) echo "about to crash" >&2; kill -SEGV $$ ;;
                  *mode-hang*) sleep 30 ;;
                  *mode-slow*) sleep 0.$(( $(od -An -N1 -tu1 /dev/urandom) % 4 )); echo '{"c8y_Result": {"slow": true}}' ;;
                  *mode-wait*) while [ ! -e \(directory.file("go")) ]; do sleep 0.05; done; echo '{"c8y_Result": {"waited": true}}' ;;
                  *) exit 9 ;;
                esac
                """
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
            return path
        }

        func runs() -> [String] {
            ((try? String(contentsOfFile: directory.file("runs.log"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        func exec(_ extra: [String] = [], consumer: String = "ops") throws -> CommandResult {
            try receiver.eb(["inbox", "exec", "--operations", "--consumer", consumer, "--once"] + extra + ["--", try handler()])
        }

        func execInBackground(_ extra: [String] = [], consumer: String = "ops", tag: String = "exec") throws -> ChildProcess {
            try ChildProcess(edgebufBinary, ["--db", receiver.db, "--config", receiver.config, "inbox", "exec", "--operations",
                                             "--consumer", consumer] + extra + ["--", try handler()],
                             stdout: directory.file("\(tag).out"), stderr: directory.file("\(tag).err"))
        }

        func diagnostics(_ daemon: ChildProcess?) -> String {
            let state = (try? platform()).map { "ops \(jsonText(Array($0.operations.values))) transitions \(jsonText($0.transitions)) refused \(jsonText($0.refused))" } ?? ""
            let dead = (try? receiver.eb(["dead-letters", "list", "--json"]).stdout) ?? ""
            return "\(state.suffix(3000)) dead letters: \(dead.suffix(1500)) daemon: \(daemon?.stderrText.suffix(2000) ?? "")"
        }
    }

    /// The transitions the platform saw for `id`, as "FROM>TO" (repeats marked).
    func transitions(_ all: [JSONDict], _ id: String) -> [String] {
        all.filter { $0.string("id") == id }.map { "\($0.string("from") ?? "")>\($0.string("to") ?? "")\($0.bool("repeat") == true ? " (repeat)" : "")" }
    }

    @Test func statusesFromTheCLIArriveInOrderAndWhatWouldBreakTheOrderIsDeadLetteredWithTheReason() throws {
        let device = try Device()
        let first = try device.createOperation("ok", publish: false)
        let refusedByPlatform = try device.createOperation("ok", publish: false)
        try device.simulator.control("POST", "/_sim/bayeux/operation", ["id": refusedByPlatform, "status": "FAILED"])
        func enqueue(_ id: String, _ status: String, _ extra: [String] = []) throws {
            let result = try device.receiver.eb(["enqueue", "operation-status", "--id", id, "--status", status] + extra)
            #expect(result.status == 0, "\(result.stderr)")
        }
        // The outcome in bulk and an EXECUTING enqueued after it in critical (which drains
        // first): EXECUTING is superseded, never sent.
        try enqueue(first, "SUCCESSFUL", ["--fragments", #"{"c8y_Result": {"ok": true}}"#, "--class", "bulk"])
        try enqueue(first, "EXECUTING")
        try enqueue(refusedByPlatform, "SUCCESSFUL")
        try enqueue("999999", "EXECUTING")
        var flush = try device.receiver.eb(["flush", "--timeout", "30"])
        #expect(flush.status == 0, "\(flush.stderr)")
        // A late EXECUTING, after the platform accepted SUCCESSFUL.
        try enqueue(first, "EXECUTING")
        flush = try device.receiver.eb(["flush", "--timeout", "30"])
        #expect(flush.status == 0, "\(flush.stderr)")

        let platform = try device.platform()
        #expect(platform.operations[first]?.string("status") == "SUCCESSFUL", "\(device.diagnostics(nil))")
        #expect(platform.operations[first]?.object("c8y_Result")?.bool("ok") == true)
        #expect(transitions(platform.transitions, first) == ["PENDING>SUCCESSFUL"])
        // The one refusal the platform gave is the one the device could not know of.
        #expect(platform.refused.map { $0.string("id") } == [refusedByPlatform])
        let dead = try parseLines(try device.receiver.eb(["dead-letters", "list", "--json"]).stdout)
        let reasons = dead.map { "\($0.string("target") ?? "")/\($0.int("http_status").map(String.init) ?? "-"): \($0.string("reason") ?? "")" }
        #expect(dead.count == 4, "\(reasons)")
        #expect(reasons.contains { $0.hasPrefix("\(first)/-") && $0.contains("superseded") }, "\(reasons)")
        #expect(reasons.contains { $0.hasPrefix("\(first)/-") && $0.contains("already accepted") }, "\(reasons)")
        #expect(reasons.contains { $0.hasPrefix("\(refusedByPlatform)/422") }, "\(reasons)")
        #expect(reasons.contains { $0.hasPrefix("999999/404") }, "\(reasons)")
        // Every request is audited with the operation and the status it carried.
        let requests = try device.receiver.audit().filter { $0.string("event") == "request" }.compactMap { $0.object("detail") }
        #expect(requests.contains { $0.string("operation_id") == first && $0.string("status") == "SUCCESSFUL" && $0.string("outcome") == "delivered" })
    }

    @Test func handlersEndSuccessfulWithTheirFragmentsOrFailedWithTheReason() throws {
        let device = try Device()
        let daemon = try device.receiver.start()
        defer { daemon.stop() }
        #expect(try device.receiver.waitFor(phase: "connected"), "\(daemon.stderrText.suffix(2000))")
        let ok = try device.createOperation("ok")
        let failing = try device.createOperation("fail")
        let crashing = try device.createOperation("crash")
        let hanging = try device.createOperation("hang")
        #expect(try device.receiver.waitFor(notifications: 4))
        let exec = try device.exec(["--timeout", "2"])
        #expect(exec.status == 0, "\(exec.stderr)")
        #expect(try device.waitForFinal([ok, failing, crashing, hanging]), "\(device.diagnostics(daemon))")

        let platform = try device.platform()
        #expect(platform.refused.isEmpty, "\(platform.refused)")
        for id in [ok, failing, crashing, hanging] {
            #expect(transitions(platform.transitions, id).first == "PENDING>EXECUTING", "\(id): \(transitions(platform.transitions, id))")
            #expect(transitions(platform.transitions, id).filter { !$0.hasSuffix("(repeat)") }.count == 2, "\(id): \(transitions(platform.transitions, id))")
        }
        let done = try #require(platform.operations[ok])
        #expect(done.string("status") == "SUCCESSFUL")
        #expect(done.object("c8y_Result")?.bool("ok") == true && done.object("c8y_Result")?.string("operation") == ok)
        let failed = try #require(platform.operations[failing])
        let reason = failed.string("failureReason") ?? ""
        #expect(failed.string("status") == "FAILED")
        #expect(reason.hasPrefix("exit status 3: disk full (password <redacted>)"), "\(reason)")
        #expect(!reason.contains(Simulator.cumulocityUsers.first!.value))
        #expect(platform.operations[crashing]?.string("failureReason")?.hasPrefix("killed by signal 11: about to crash") == true,
                "\(platform.operations[crashing]?.string("failureReason") ?? "")")
        #expect(platform.operations[hanging]?.string("failureReason")?.hasPrefix("killed after the --timeout of 2 s") == true,
                "\(platform.operations[hanging]?.string("failureReason") ?? "")")
        #expect(device.runs().sorted() == [ok, failing, crashing, hanging].sorted())
        // Each outcome is audited; the UPDATE echoes of the device's own statuses ran nothing.
        let finished = try device.receiver.audit().filter { $0.string("event") == "operation_finished" }.compactMap { $0.object("detail") }
        #expect(finished.count == 4)
        #expect(Set(finished.compactMap { $0.string("operation_id") }) == Set([ok, failing, crashing, hanging]))
        let again = try device.exec()
        #expect(again.status == 0 && device.runs().count == 4, "\(again.stderr)")
    }

    @Test func statusesWaitWhileThePlatformIsOfflineAndArriveInOrderWhenItReturns() throws {
        let device = try Device()
        let daemon = try device.receiver.start()
        defer { daemon.stop() }
        #expect(try device.receiver.waitFor(phase: "connected"), "\(daemon.stderrText.suffix(2000))")
        let id = try device.createOperation("wait")
        #expect(try device.receiver.waitFor(notifications: 1))
        // Device control answers 503 from now on (Bayeux still works).
        try device.simulator.fault(["path": "^/devicecontrol/", "status": 503, "count": 100000])
        let exec = try device.execInBackground(["--once"])
        defer { exec.stop() }
        #expect(poll(timeout: .seconds(20)) { device.runs() == [id] }, "the handler did not start: \(exec.stderrText)")
        let offline = try poll(timeout: .seconds(20)) {
            try device.simulator.requests().contains { ($0.string("path") ?? "").hasPrefix("/devicecontrol/") && $0.int("status") == 503 }
        }
        #expect(offline, "EXECUTING was never tried")
        FileManager.default.createFile(atPath: device.directory.file("go"), contents: nil)
        #expect(exec.wait(timeout: .seconds(20)) == 0, "\(exec.stderrText)")
        sleep(.milliseconds(500))
        #expect(try device.platform().operations[id]?.string("status") == "PENDING", "nothing got through while offline")
        try device.simulator.control("DELETE", "/_sim/faults")
        #expect(try device.waitForFinal([id]), "\(device.diagnostics(daemon))")
        let platform = try device.platform()
        #expect(platform.refused.isEmpty)
        #expect(platform.operations[id]?.string("status") == "SUCCESSFUL")
        #expect(platform.operations[id]?.object("c8y_Result")?.bool("waited") == true)
        let seen = transitions(platform.transitions, id).filter { !$0.hasSuffix("(repeat)") }
        #expect(seen == ["PENDING>EXECUTING", "EXECUTING>SUCCESSFUL"], "\(seen)")
        #expect(try parseLines(try device.receiver.eb(["dead-letters", "list", "--json"]).stdout).isEmpty, "nothing withheld")
    }

    @Test func operationsCreatedWhileTheDownlinkWasDownAreRecoveredAfterTheGapAndHandledOnce() throws {
        let device = try Device()
        let daemon = try device.receiver.start()
        defer { daemon.stop() }
        #expect(try device.receiver.waitFor(phase: "connected"), "\(daemon.stderrText.suffix(2000))")
        let heard = try device.createOperation("ok")
        #expect(try device.receiver.waitFor(notifications: 1))
        let exec = try device.execInBackground(["--recovery-page-size", "2"])
        defer { exec.stop() }
        #expect(try device.waitForFinal([heard]), "\(device.diagnostics(daemon)) exec: \(exec.stderrText)")
        // Seven operations nobody heard of over Bayeux, then the session is lost: a gap marker.
        var missed: [String] = []
        for _ in 0..<7 { missed.append(try device.createOperation("ok", publish: false)) }
        let gapsBefore = try device.receiver.gaps().count
        try device.simulator.control("POST", "/_sim/bayeux/kill", ["held": "unknown_client"])
        #expect(try poll(timeout: .seconds(30)) { try device.receiver.gaps().count > gapsBefore }, "no gap marker: \(daemon.stderrText.suffix(2000))")
        #expect(try device.waitForFinal(missed), "\(device.diagnostics(daemon)) exec: \(exec.stderrText)")

        let platform = try device.platform()
        #expect(platform.refused.isEmpty)
        for id in [heard] + missed {
            #expect(platform.operations[id]?.string("status") == "SUCCESSFUL", "\(id)")
            #expect(transitions(platform.transitions, id).filter { !$0.hasSuffix("(repeat)") } == ["PENDING>EXECUTING", "EXECUTING>SUCCESSFUL"], "\(id)")
        }
        #expect(device.runs().sorted() == ([heard] + missed).sorted(), "each handled once: \(device.runs())")
        let recovered = try device.receiver.notifications().filter { $0.bool("recovered") == true }
        #expect(Set(recovered.compactMap { $0.object("data")?.string("id") }) == Set(missed))
        let recoveries = try device.receiver.audit().filter { $0.string("event") == "operations_recovered" }.compactMap { $0.object("detail") }
        let afterGap = recoveries.filter { ($0.string("trigger") ?? "").hasPrefix("after gap marker") }
        #expect(afterGap.contains { $0.int("stored") == 7 && ($0.int("pages") ?? 0) >= 4 }, "\(recoveries)")
    }

    /// `kill -9` of `edgebuf run` and of `inbox exec --operations` at random moments while
    /// operations arrive (some while the daemon is down, so only the recovery after its gap
    /// marker finds them): every operation ends in a final status exactly once, the platform
    /// never refuses a transition, no handler runs twice (an interrupted run ends FAILED
    /// "interrupted"), and the audit chain holds.
    @Test func kill9OfRunAndExecLeavesEveryOperationFinalExactlyOnce() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["EDGEBUF_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        var random = SplitMix64(seed: seed)
        print("operation kill -9: seed \(seed) (EDGEBUF_CRASH_SEED=\(seed) replays the kill schedule)")
        let device = try Device()
        var daemon = try device.receiver.start()
        var execs = 0
        func startExec() throws -> ChildProcess {
            execs += 1
            return try device.execInBackground(["--timeout", "10"], tag: "exec-\(execs)")
        }
        var exec = try startExec()
        defer {
            daemon.stop()
            exec.stop()
        }
        #expect(try device.receiver.waitFor(phase: "connected"), "\(daemon.stderrText.suffix(2000))")
        var created: [String] = []
        for cycle in 0..<30 {
            if cycle < 16 { created.append(try device.createOperation("slow")) }
            sleep(.milliseconds(Int64.random(in: 50...400, using: &random)))
            switch Int.random(in: 0..<3, using: &random) {
            case 0:
                daemon.kill9()
                _ = daemon.wait(timeout: .seconds(5))
                if cycle < 16 && Bool.random(using: &random) { created.append(try device.createOperation("slow")) }  // heard by nobody
                daemon = try device.receiver.start()
            case 1:
                exec.kill9()
                _ = exec.wait(timeout: .seconds(5))
                exec = try startExec()
            default:
                daemon.kill9()
                exec.kill9()
                _ = daemon.wait(timeout: .seconds(5))
                _ = exec.wait(timeout: .seconds(5))
                daemon = try device.receiver.start()
                exec = try startExec()
            }
        }
        let finished = try device.waitForFinal(created, timeout: .seconds(60))
        #expect(finished, "seed \(seed): \(device.diagnostics(daemon)) exec: \(exec.stderrText.suffix(1500))")

        let platform = try device.platform()
        #expect(platform.refused.isEmpty, "seed \(seed): the platform refused \(platform.refused)")
        let runs = device.runs()
        for id in created {
            let seen = transitions(platform.transitions, id).filter { !$0.hasSuffix("(repeat)") }
            let finals = seen.filter { $0.hasSuffix(">SUCCESSFUL") || $0.hasSuffix(">FAILED") }
            #expect(finals.count == 1, "seed \(seed): \(id) went \(seen)")
            #expect(!seen.dropFirst().contains { $0.hasSuffix(">EXECUTING") }, "seed \(seed): \(id) went \(seen)")
            #expect(runs.filter { $0 == id }.count <= 1, "seed \(seed): the handler of \(id) ran \(runs.filter { $0 == id }.count) times")
            let operation = platform.operations[id]
            if operation?.string("status") == "FAILED" {
                #expect(operation?.string("failureReason")?.hasPrefix("interrupted") == true, "seed \(seed): \(id): \(operation?.string("failureReason") ?? "")")
            } else {
                #expect(operation?.object("c8y_Result")?.bool("slow") == true && runs.contains(id), "seed \(seed): \(id) SUCCESSFUL without its handler's result")
            }
        }
        print("operation kill -9: \(created.count) operations, \(platform.operations.values.filter { $0.string("status") == "SUCCESSFUL" }.count) SUCCESSFUL, \(platform.operations.values.filter { $0.string("status") == "FAILED" }.count) FAILED interrupted")
        #expect(try device.receiver.auditIntact())
    }

    /// With room for one record (`max_records = 1`, reject-new) and no daemon, EXECUTING fills
    /// the outbox: the handler's outcome waits for room instead of being lost, and arrives
    /// once a flush has made it.
    @Test func anOutcomeWaitsForRoomInAFullOutbox() throws {
        let device = try Device()
        let text = try String(contentsOfFile: device.receiver.config, encoding: .utf8)
        try ("[database]\nmax_records = 1\n\n" + text).write(toFile: device.receiver.config, atomically: true, encoding: .utf8)
        let id = try device.createOperation("ok", publish: false)
        let exec = try device.execInBackground(["--once", "--retry-initial", "0.2", "--retry-max", "0.5"])
        defer { exec.stop() }
        #expect(poll(timeout: .seconds(20)) { exec.stderrText.contains("cannot be stored yet") }, "\(exec.stderrText)")
        #expect(device.runs() == [id])
        let flush = try device.receiver.eb(["flush", "--timeout", "20"])
        #expect(flush.status == 0, "\(flush.stderr)")
        #expect(exec.wait(timeout: .seconds(20)) == 0, "\(exec.stderrText)")
        #expect(try device.receiver.eb(["flush", "--timeout", "20"]).status == 0)
        let platform = try device.platform()
        #expect(transitions(platform.transitions, id) == ["PENDING>EXECUTING", "EXECUTING>SUCCESSFUL"], "\(device.diagnostics(nil))")
        #expect(platform.operations[id]?.object("c8y_Result")?.bool("ok") == true)
    }
}
