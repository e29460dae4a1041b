import Foundation
import TestSupport
import Testing

/// SIGHUP with an `[ingest]` section: the server restarts with the new settings while clients
/// keep posting, and every request it answered 2xx stays in the outbox.
@Suite(.serialized) struct IngestReloadTests {
    static let oldToken = "ingest-token-old-0a1b2c3d4e5f"
    static let newToken = "ingest-token-new-9f8e7d6c5b4a"

    /// 8 keep-alive clients post IoTDA messages with unique ids and the old token, reconnecting
    /// when a connection drops, while `[ingest] token` is changed and the daemon gets SIGHUP.
    /// The ingest server alone restarts (same pid); then the old token is refused (403 IOTDA.000004,
    /// IoTDA's answer to a bad token) and the new one served. Every message answered 200 is in
    /// the outbox exactly once, none answered 403 is there, a request cut off by the restart (no
    /// answer) is there at most once, and neither token is in the log.
    @Test func aChangedTokenRestartsTheServerAndLosesNoAnsweredRecord() throws {
        let daemon = try IngestDaemon(ingest: "token = \"\(Self.oldToken)\"")
        let process = try daemon.start()
        let poster = try Self.startPosters(daemon, token: Self.oldToken)
        defer { poster.process.kill9() }
        #expect(poll(timeout: .seconds(20), interval: .milliseconds(50)) { poster.answers().filter { $0.status == 200 }.count >= 100 },
                "the premise: the clients were answered before the reload: \(poster.answers().count) answers")

        let text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: Self.oldToken, with: Self.newToken)
            .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let before = poster.answers().count
        process.send(SIGHUP)
        #expect(poll(timeout: .seconds(15)) { process.stderrText.contains("engine restarted with the new configuration") },
                "no restart logged: \(process.stderrText.suffix(1500))")
        #expect(process.stderrText.contains("edgebuf.reload.restarting=ingest"), "\(process.stderrText.suffix(1500))")
        // The restarted server refuses the old token: the clients see 403s.
        #expect(poll(timeout: .seconds(15), interval: .milliseconds(50)) { poster.answers().filter { $0.status == 403 }.count >= 20 },
                "no 403 after the reload: \(poster.answers().count - before) answers since")
        poster.stop()
        #expect(poster.process.wait(timeout: .seconds(30)) == 0, "the clients: \(poster.process.stderrText.suffix(1000))")
        #expect(process.isRunning, "the daemon kept running through the reload")

        let url = "\(daemon.base)/v5/devices/d-new/sys/messages/up"
        let body = #"{"name":"after","id":"after-reload","content":{}}"#
        let withNew = try daemon.curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(Self.newToken)", "-d", body, url])
        #expect(withNew.stdout == "200", "the new token: \(withNew.stdout) \(withNew.stderr)")
        let withOld = try daemon.curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(Self.oldToken)", "-d", body, url])
        #expect(withOld.stdout == "403", "the old token: \(withOld.stdout) \(withOld.stderr)")

        let answers = poster.answers()
        let stored = try daemon.records().compactMap { ($0["payload"] as? JSONDict)?.string("id") }
        var counts: [String: Int] = [:]
        for id in stored { counts[id, default: 0] += 1 }
        let acknowledged = answers.filter { $0.status == 200 }.map(\.id)
        let missing = acknowledged.filter { counts[$0] == nil }
        #expect(missing.isEmpty, "answered 200 but not stored: \(missing.prefix(10)) of \(acknowledged.count)")
        let twice = counts.filter { $0.value > 1 }
        #expect(twice.isEmpty, "stored twice: \(twice.keys.prefix(10))")
        let refusedButStored = answers.filter { $0.status == 403 && counts[$0.id] != nil }
        #expect(refusedButStored.isEmpty, "answered 403 but stored: \(refusedButStored.prefix(5).map(\.id))")
        let others = Set(answers.map(\.status)).subtracting([200, 403, 0])
        #expect(others.isEmpty, "answers other than 200, 403 and none: \(others.sorted())")
        #expect(counts["after-reload"] == 1)
        #expect(!daemon.logs.contains(Self.oldToken) && !daemon.logs.contains(Self.newToken), "a token is in the daemon's log")
        let dropped = answers.filter { $0.status == 0 }.count
        print("ingest reload: \(acknowledged.count) answered 200, \(answers.filter { $0.status == 403 }.count) answered 403, \(dropped) cut off by the restart")
        process.send(SIGTERM)
        #expect(process.wait(timeout: .seconds(10)) == 0, "run: \(process.stderrText.suffix(1500))")
    }

    /// A reload to an `[ingest]` that would be unsafe (off loopback without HTTPS) is refused
    /// with a log line naming the key; the running server keeps serving with its settings, and
    /// a later valid reload (a new port) moves it there.
    @Test func anUnsafeIngestOnSighupIsRefusedAndANewPortIsServed() throws {
        let daemon = try IngestDaemon(ingest: "token = \"\(Self.oldToken)\"")
        let process = try daemon.start()
        let text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "127.0.0.1:\(daemon.port)", with: "0.0.0.0:\(daemon.port)")
            .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        process.send(SIGHUP)
        #expect(poll(timeout: .seconds(10)) { process.stderrText.contains("configuration reload refused") },
                "no refusal logged: \(process.stderrText.suffix(1500))")
        let line = process.stderrText.components(separatedBy: "\n").last { $0.contains("configuration reload refused") } ?? ""
        #expect(line.contains("cert_file"), "the refusal does not name the missing key: \(line)")
        #expect(!process.stderrText.contains("engine restarted"), "a refused reload restarted an engine")

        let body = #"{"name":"n","id":"still-served","content":{}}"#
        func post(port: Int, id: String) throws -> String {
            let url = "http://127.0.0.1:\(port)/v5/devices/d-1/sys/messages/up"
            return try daemon.curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(Self.oldToken)",
                                    "-d", body.replacingOccurrences(of: "still-served", with: id), url]).stdout
        }
        #expect(try post(port: daemon.port, id: "still-served") == "200")

        let newPort = try freePort()
        try text.replacingOccurrences(of: "127.0.0.1:\(daemon.port)", with: "127.0.0.1:\(newPort)")
            .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        process.send(SIGHUP)
        #expect(poll(timeout: .seconds(15)) { isListening(port: newPort) }, "the new port is not served: \(process.stderrText.suffix(1500))")
        #expect(try post(port: newPort, id: "on-the-new-port") == "200")
        #expect(poll(timeout: .seconds(5)) { !isListening(port: daemon.port) }, "the old port is still served")
        let stored = try daemon.records().compactMap { ($0["payload"] as? JSONDict)?.string("id") }
        #expect(stored.sorted() == ["on-the-new-port", "still-served"])
        process.send(SIGTERM)
        #expect(process.wait(timeout: .seconds(10)) == 0, "run: \(process.stderrText.suffix(1500))")
    }

    /// Clients posting until told to stop, each answer logged as `id status` (0: no answer).
    struct Posters {
        let process: ChildProcess
        let log: String
        let stopFile: String

        func answers() -> [(id: String, status: Int)] {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ")
                guard parts.count == 2, let status = Int(parts[1]) else { return nil }  // a line cut mid-write
                return (String(parts[0]), status)
            }
        }

        func stop() { FileManager.default.createFile(atPath: stopFile, contents: nil) }
    }

    /// 8 clients on keep-alive connections; a connection that fails is opened again 20 ms later.
    static func startPosters(_ daemon: IngestDaemon, token: String) throws -> Posters {
        let log = daemon.directory.file("answers")
        let stopFile = daemon.directory.file("stop")
        let script = daemon.directory.file("posters.py")
        try #"""
            import http.client, json, os, sys, threading, time
            port, log, stop, token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
            lock = threading.Lock()
            out = open(log, "w", buffering=1)
            def client(n):
                c, seq = None, 0
                while not os.path.exists(stop):
                    seq += 1
                    mid = "c%d-%d" % (n, seq)
                    body = json.dumps({"name": "tick", "id": mid, "content": {"client": n, "seq": seq}})
                    status = 0
                    try:
                        if c is None:
                            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                        c.request("POST", "/v5/devices/d-%d/sys/messages/up" % n, body=body,
                                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
                        r = c.getresponse(); r.read(); status = r.status
                        if r.getheader("connection", "").lower() == "close":
                            c.close(); c = None
                    except Exception:
                        if c is not None: c.close()
                        c = None
                        time.sleep(0.02)
                    with lock:
                        out.write("%s %d\n" % (mid, status))
            threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
            for t in threads: t.start()
            for t in threads: t.join()
            """#.write(toFile: script, atomically: true, encoding: .utf8)
        let process = try ChildProcess(try which("python3"), [script, String(daemon.port), log, stopFile, token],
                                       stdout: daemon.directory.file("posters.out"), stderr: daemon.directory.file("posters.err"))
        return Posters(process: process, log: log, stopFile: stopFile)
    }
}
