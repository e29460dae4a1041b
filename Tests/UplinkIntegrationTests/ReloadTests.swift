import Foundation
import TestSupport
import Testing

/// SIGHUP: `edgebuf run` reads its configuration again.
extension Uplink {
    @Suite struct ReloadTests {
        /// A changed `[uplink] url`: records enqueued after the SIGHUP go to the new platform
        /// only, the daemon keeps its pid, and the log names the restarted engine.
        @Test func sighupWithAChangedURLSendsToTheNewPlatform() throws {
            let first = try Simulator()
            let second = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: first))
            try ws.enqueue((1...3).map { Line.property(seq: $0) })
            let daemon = try ws.startRun(logLevel: "notice")
            defer { daemon.kill9() }
            #expect(poll(timeout: .seconds(15)) { ((try? first.accepted()) ?? []).count == 3 })

            try ws.write(Workspace.Uplink(simulator: second))
            daemon.send(SIGHUP)
            #expect(poll(timeout: .seconds(10)) { daemon.stderrText.contains("engine restarted with the new configuration") },
                    "no restart logged: \(daemon.stderrText.suffix(1500))")
            try ws.enqueue((4...6).map { Line.property(seq: $0) })
            #expect(poll(timeout: .seconds(15)) { ((try? second.accepted()) ?? []).count == 3 },
                    "the new platform got \(((try? second.accepted()) ?? []).count) of 3: \(daemon.stderrText.suffix(1500))")
            #expect(acceptedCounts(try first.accepted()) == [1: 1, 2: 1, 3: 1], "nothing more went to the old platform")
            #expect(acceptedCounts(try second.accepted()) == [4: 1, 5: 1, 6: 1])
            #expect(daemon.isRunning)
            #expect(daemon.stderrText.contains("edgebuf.reload.restarting=uplink"), "\(daemon.stderrText.suffix(1500))")
            daemon.send(SIGTERM)
            #expect(daemon.wait(timeout: .seconds(10)) == 0, "run: \(daemon.stderrText.suffix(1500))")
            #expect(try ws.auditIntact())
        }

        /// A configuration that cannot be used (a TOML error, an unknown key, nothing to run)
        /// is refused with a log line naming the problem; the old configuration keeps working
        /// and the engine is not restarted. The secret of the running configuration never
        /// appears in the log.
        @Test func aBrokenConfigurationOnSighupIsRefusedAndTheOldOneKeepsWorking() throws {
            let simulator = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: simulator))
            let good = try String(contentsOfFile: ws.config, encoding: .utf8)
            let daemon = try ws.startRun(logLevel: "notice")
            defer { daemon.kill9() }
            try ws.enqueue([Line.property(seq: 1)])
            #expect(poll(timeout: .seconds(15)) { ((try? simulator.accepted()) ?? []).count == 1 })

            let broken: [(text: String, mustName: String)] = [
                (good + "\nbogus_key = 1\n", "bogus_key"),
                (good.replacingOccurrences(of: "[uplink]", with: "[uplink"), "edgebuf.toml"),
                ("[database]\nsynchronous = \"full\"\n", "nothing to run"),
            ]
            for (round, bad) in broken.enumerated() {
                try bad.text.write(toFile: ws.config, atomically: true, encoding: .utf8)
                let refusals = daemon.stderrText.components(separatedBy: "configuration reload refused").count - 1
                daemon.send(SIGHUP)
                #expect(poll(timeout: .seconds(10)) {
                    daemon.stderrText.components(separatedBy: "configuration reload refused").count - 1 == refusals + 1
                }, "round \(round): no refusal logged: \(daemon.stderrText.suffix(1500))")
                let line = daemon.stderrText.components(separatedBy: "\n").last { $0.contains("configuration reload refused") } ?? ""
                #expect(line.contains(bad.mustName), "round \(round): the refusal does not name \(bad.mustName): \(line)")
                // Enqueued without --config: the file is broken on purpose.
                let enqueued = try edgebuf(["--db", ws.db, "enqueue", "--jsonl"], stdin: Line.property(seq: 10 + round) + "\n")
                #expect(enqueued.status == 0, "\(enqueued.stderr)")
                #expect(poll(timeout: .seconds(15)) { ((try? simulator.accepted()) ?? []).count == 2 + round },
                        "round \(round): the running configuration stopped delivering: \(daemon.stderrText.suffix(1500))")
            }
            #expect(daemon.isRunning)
            #expect(!daemon.stderrText.contains("engine restarted"), "a refused reload restarted an engine")
            #expect(!daemon.stderrText.contains(Simulator.devices["gw-1"]!), "the secret is in the log")
            daemon.send(SIGTERM)
            #expect(daemon.wait(timeout: .seconds(10)) == 0, "run: \(daemon.stderrText.suffix(1500))")
        }

        /// A SIGHUP with nothing changed restarts nothing; a changed setting of one engine
        /// restarts that engine alone.
        @Test func anUnchangedConfigurationRestartsNothing() throws {
            let simulator = try Simulator()
            let ws = try Workspace(Workspace.Uplink(simulator: simulator))
            let daemon = try ws.startRun(logLevel: "notice")
            defer { daemon.kill9() }
            try ws.enqueue([Line.property(seq: 1)])
            #expect(poll(timeout: .seconds(15)) { ((try? simulator.accepted()) ?? []).count == 1 })
            daemon.send(SIGHUP)
            #expect(poll(timeout: .seconds(10)) { daemon.stderrText.contains("configuration reloaded: nothing changed") },
                    "\(daemon.stderrText.suffix(1500))")
            // Only [audit] changes: the audit's retention restarts, the uplink does not.
            let text = try String(contentsOfFile: ws.config, encoding: .utf8)
            try (text + "\n[audit]\nmax_rows = 5000\n").write(toFile: ws.config, atomically: true, encoding: .utf8)
            daemon.send(SIGHUP)
            #expect(poll(timeout: .seconds(10)) { daemon.stderrText.contains("edgebuf.reload.restarting=audit retention") },
                    "\(daemon.stderrText.suffix(1500))")
            #expect(!daemon.stderrText.contains("edgebuf.engine=uplink"), "the uplink was restarted: \(daemon.stderrText.suffix(1500))")
            try ws.enqueue([Line.property(seq: 2)])
            #expect(poll(timeout: .seconds(15)) { ((try? simulator.accepted()) ?? []).count == 2 })
            daemon.send(SIGTERM)
            #expect(daemon.wait(timeout: .seconds(10)) == 0, "run: \(daemon.stderrText.suffix(1500))")
        }
    }
}
