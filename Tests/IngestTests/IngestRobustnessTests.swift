import Foundation
import TestSupport
import Testing

/// The ingest server under kill -9, malformed requests, idle and slow clients, a full outbox
/// and unsafe configurations.
@Suite(.serialized) struct IngestRobustnessTests {
    /// 16 clients post IoTDA messages with unique ids on keep-alive connections; the daemon is
    /// killed with SIGKILL mid-stream. Every message that got a 200 is in the outbox after the
    /// kill, and no message is there twice.
    @Test func kill9While16ClientsPostLosesNothingAcknowledged() throws {
        let daemon = try IngestDaemon()
        let acknowledged = try Self.postUntilKilled(daemon, device: { "d-\($0)" })
        let ids = try daemon.records().compactMap { ($0["payload"] as? JSONDict)?.string("id") }
        var counts: [String: Int] = [:]
        for id in ids { counts[id, default: 0] += 1 }
        let missing = acknowledged.filter { counts[$0] == nil }
        #expect(missing.isEmpty, "acknowledged but not stored: \(missing.prefix(10)) of \(acknowledged.count)")
        let twice = counts.filter { $0.value > 1 }
        #expect(twice.isEmpty, "stored twice: \(twice.keys.prefix(10))")
        print("ingest kill -9: \(acknowledged.count) acknowledged, \(ids.count) stored (\(ids.count - acknowledged.count) committed but unanswered)")
    }

    /// The same with the uplink draining to the simulator while the clients post: after the
    /// kill, `flush` delivers the rest, and every acknowledged message reached the platform;
    /// the only duplicate can be the one request in flight at the kill.
    @Test func kill9WithTheUplinkRunningDeliversEveryAcknowledgedRecord() throws {
        let simulator = try Simulator()
        let daemon = try IngestDaemon(extra: simulator.iotdaUplinkSection)
        let acknowledged = try Self.postUntilKilled(daemon, device: { _ in "gw-1" })
        let flush = try edgebuf(["flush", "--config", daemon.configPath, "--db", daemon.database])
        #expect(flush.status == 0, "\(flush.stderr.suffix(1000))")
        #expect(try daemon.records().isEmpty)
        var counts: [String: Int] = [:]
        for record in try simulator.accepted() where record.string("kind") == "message" {
            if let id = record.string("id") { counts[id, default: 0] += 1 }
        }
        let missing = acknowledged.filter { counts[$0] == nil }
        #expect(missing.isEmpty, "acknowledged but never delivered: \(missing.prefix(10)) of \(acknowledged.count)")
        let duplicates = counts.values.reduce(0) { $0 + $1 - 1 }
        #expect(duplicates <= 1, "\(duplicates) duplicates; only the request in flight at the kill may be sent twice")
        try daemon.start()
        let metrics = try daemon.curl(["\(daemon.base)/metrics"]).stdout
        #expect(metrics.contains(#"edgebuf_uplink_requests{result="delivered"} "#), "\(metrics)")
        #expect(metrics.contains("edgebuf_uplink_phase{phase="), "\(metrics)")
        #expect(metrics.contains(#"edgebuf_outbox_records{class="normal"} 0"#), "\(metrics)")
        daemon.process?.stop()
        let status = try edgebuf(["status", "--config", daemon.configPath, "--db", daemon.database])
        #expect(status.status == 0, "status reads a configuration with [ingest]: \(status.stderr)")
        print("ingest kill -9 with uplink: \(acknowledged.count) acknowledged, \(counts.count) delivered, \(duplicates) duplicates")
    }

    /// Starts the daemon, lets 16 keep-alive clients post IoTDA messages with unique ids
    /// (`c<client>-<seq>`) until a few hundred were answered, kills the daemon with SIGKILL,
    /// and returns the ids that got a 200.
    static func postUntilKilled(_ daemon: IngestDaemon, device: (Int) -> String) throws -> [String] {
        let process = try daemon.start()
        let acks = daemon.directory.file("acks")
        let script = daemon.directory.file("poster.py")
        try #"""
            import http.client, json, sys, threading
            port, acks, devices = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
            def client(n):
                out = open("%s.%d" % (acks, n), "w", buffering=1)
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                seq = 0
                while True:
                    seq += 1
                    mid = "c%d-%d" % (n, seq)
                    body = json.dumps({"name": "tick", "id": mid, "content": {"client": n, "seq": seq}})
                    try:
                        c.request("POST", "/v5/devices/%s/sys/messages/up" % devices[n], body=body, headers={"Content-Type": "application/json"})
                        r = c.getresponse(); r.read()
                    except Exception:
                        return
                    if r.status == 200:
                        out.write(mid + "\n")
            threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
            for t in threads: t.start()
            for t in threads: t.join()
            """#.write(toFile: script, atomically: true, encoding: .utf8)
        let posters = try ChildProcess(try which("python3"), [script, String(daemon.port), acks, (0..<16).map(device).joined(separator: ",")],
                                       stdout: daemon.directory.file("poster.out"), stderr: daemon.directory.file("poster.err"))
        func acknowledged() -> [String] {
            (0..<16).flatMap { n in
                ((try? String(contentsOfFile: "\(acks).\(n)", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            }
        }
        // Until a few hundred requests were answered (a loaded runner is slow), at most 20 s.
        let started = poll(timeout: .seconds(20), interval: .milliseconds(50)) { acknowledged().count >= 300 }
        process.kill9()
        #expect(posters.wait(timeout: .seconds(30)) != nil, "the clients did not end after the kill")
        posters.kill9()
        let result = acknowledged()
        #expect(started, "the premise: clients were answered before the kill (\(result.count) acks)")
        return result
    }

    /// Malformed requests on raw sockets: bad request lines, huge headers, a Content-Length
    /// longer and shorter than the body, invalid UTF-8 in the path and in the body, a NUL, a
    /// body over the limit announced but never sent, trickled headers and 10,000 idle
    /// connections over max_connections. Each gets an error or a close, nothing is stored,
    /// and the daemon keeps answering with bounded memory.
    @Test func malformedRequestsAndIdleConnections() throws {
        let daemon = try IngestDaemon(ingest: """
            max_connections = 64
            max_body_bytes = "64KB"
            header_timeout = "1s"
            idle_timeout = "2s"
            body_timeout = "1s"
            """)
        let process = try daemon.start()
        let result = try daemon.python(#"""
            import socket, sys, time
            port = int(sys.argv[1])
            def exchange(data, wait=5.0):
                s = socket.create_connection(("127.0.0.1", port), timeout=wait)
                try:
                    s.sendall(data)
                    chunks = []
                    while True:
                        try:
                            b = s.recv(65536)
                        except socket.timeout:
                            return b"".join(chunks) + b"<timeout>"
                        except ConnectionResetError:
                            return b"".join(chunks) + b"<reset>"
                        if not b: return b"".join(chunks)
                        chunks.append(b)
                finally:
                    s.close()
            def status(answer):
                return answer.split(b"\r\n", 1)[0].decode("latin-1") if answer.startswith(b"HTTP/") else answer[:40]
            prop = b'{"services":[{"service_id":"B","properties":{"a":1}}]}'
            bad_utf8 = b'{"kind":"property","device_id":"d","service_id":"\xff\xfe","properties":{"a":1}}'
            cases = {
                "garbage": b"\x00\x01\x02 not http\r\n\r\n",
                "bad_method": b"P\xffST /v1/records HTTP/1.1\r\nHost: x\r\n\r\n",
                "no_version": b"POST /v1/records\r\n\r\n",
                "huge_header": b"POST /v1/records HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n",
                "many_headers": b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n",
                "bad_length": b"POST /v1/records HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                "two_lengths": b"POST /v5/devices/d/sys/properties/report HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n" + prop,
                "short_length": b"POST /v5/devices/d/sys/properties/report HTTP/1.1\r\nContent-Length: 10\r\nConnection: close\r\n\r\n" + prop,
                "long_length": b"POST /v5/devices/d/sys/properties/report HTTP/1.1\r\nContent-Length: 900\r\n\r\n" + prop,
                "utf8_path": b"POST /v5/devices/d\xff\xfe/sys/properties/report HTTP/1.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(prop) + prop,
                "utf8_body": b"POST /v1/records HTTP/1.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(bad_utf8) + bad_utf8,
                "nul_body": b"POST /v5/devices/d/sys/properties/report HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{\x00}",
                "announced_too_big": b"POST /v1/records HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n",
                "chunk_too_big": b"POST /v1/records HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"8000\r\n" + b"a" * 0x8000 + b"\r\n") * 3,
                "bad_chunk": b"POST /v1/records HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            }
            for name, data in cases.items():
                print(name, status(exchange(data)))
            # Trickled head: one byte every 300 ms is cut at the header timeout.
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            start, cut = time.time(), "no"
            try:
                for b in b"POST /v1/records HTTP/1.1\r\nHost: slow\r\n":
                    s.send(bytes([b])); time.sleep(0.3)
            except (BrokenPipeError, ConnectionResetError):
                cut = "yes"
            if cut == "no":
                s.settimeout(5)
                try:
                    cut = "yes" if s.recv(100) == b"" else "answered"
                except (socket.timeout,):
                    cut = "no"
                except ConnectionResetError:
                    cut = "yes"
            print("trickle_cut", cut)
            s.close()
            # 10,000 idle connections against max_connections = 64.
            idle = []
            for i in range(10000):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                except OSError as e:
                    print("connect failed", e); break
            time.sleep(3.5)  # past the idle timeout: every one was closed by the server
            closed = 0
            for s in idle:
                s.settimeout(5)
                try:
                    if s.recv(10) == b"": closed += 1
                except (ConnectionResetError, socket.timeout):
                    closed += 1 if True else 0
                s.close()
            print("idle_closed", closed)
            print("after", status(exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
            """#, name: "fuzz.py")
        #expect(result.status == 0, "\(result.stderr.suffix(1500))")
        let out = result.stdout
        func answer(_ name: String) -> String {
            out.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) } ?? "(none)"
        }
        for name in ["garbage", "bad_method", "no_version", "bad_length", "two_lengths", "bad_chunk", "many_headers"] {
            let a = answer(name)
            #expect(a.hasPrefix("HTTP/1.1 4") || a == "b''" || a.contains("reset"), "\(name): \(a)")
        }
        #expect(answer("huge_header").hasPrefix("HTTP/1.1 4") || answer("huge_header").contains("reset") || answer("huge_header") == "b''", "huge_header: \(answer("huge_header"))")
        #expect(answer("short_length").hasPrefix("HTTP/1.1 400"), "short_length: \(answer("short_length"))")
        #expect(answer("long_length").hasPrefix("HTTP/1.1 408"), "long_length: \(answer("long_length"))")
        #expect(answer("utf8_path").hasPrefix("HTTP/1.1 400"), "utf8_path: \(answer("utf8_path"))")
        #expect(answer("utf8_body").hasPrefix("HTTP/1.1 400"), "utf8_body: \(answer("utf8_body"))")
        #expect(answer("nul_body").hasPrefix("HTTP/1.1 400"), "nul_body: \(answer("nul_body"))")
        #expect(answer("announced_too_big").hasPrefix("HTTP/1.1 413"), "announced_too_big: \(answer("announced_too_big"))")
        #expect(answer("chunk_too_big").hasPrefix("HTTP/1.1 413"), "chunk_too_big: \(answer("chunk_too_big"))")
        #expect(answer("trickle_cut") == "yes")
        #expect(answer("idle_closed") == "10000", "\(out)")
        #expect(answer("after") == "HTTP/1.1 200 OK", "\(out)")
        #expect(process.isRunning, "\(process.stderrText.suffix(1500))")
        #expect(try daemon.records().isEmpty, "a malformed request stored something")
        let rss = (try? String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        #expect(rss > 0 && rss < 200_000, "peak RSS \(rss) kB")
        print("ingest fuzz: peak RSS \(rss) kB")
    }

    /// `max_buffered_bytes` bounds the bodies all connections hold at once: while one client
    /// holds 40 KB of a 48 KB budget half sent, a second 40 KB request gets 503 with
    /// Retry-After before its body is read; once the first ends, the second fits again.
    @Test func bodiesHeldAtOnceAreBounded() throws {
        let daemon = try IngestDaemon(ingest: "max_body_bytes = \"40KB\"\nmax_buffered_bytes = \"48KB\"")
        try daemon.start()
        let result = try daemon.python(#"""
            import socket, sys, time
            port = int(sys.argv[1])
            line = b'{"kind":"message","device_id":"d","name":"n","content":"' + b"x" * 900 + b'"}\n'
            body = line * (40000 // len(line))
            head = b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            def answer(s):
                data = b""
                while b"\r\n\r\n" not in data:
                    b = s.recv(65536)
                    if not b: break
                    data += b
                return data.split(b"\r\n", 1)[0].decode()
            first = socket.create_connection(("127.0.0.1", port), timeout=10)
            first.sendall(head + body[:1000])
            time.sleep(0.3)
            second = socket.create_connection(("127.0.0.1", port), timeout=10)
            second.sendall(head)
            print("second", answer(second))
            first.sendall(body[1000:])
            print("first", answer(first))
            third = socket.create_connection(("127.0.0.1", port), timeout=10)
            third.sendall(head + body)
            print("third", answer(third))
            """#, name: "budget.py")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("second HTTP/1.1 503"), "\(result.stdout)")
        #expect(result.stdout.contains("first HTTP/1.1 200"), "\(result.stdout)")
        #expect(result.stdout.contains("third HTTP/1.1 200"), "\(result.stdout)")
        #expect(try daemon.records().count == 2 * (40000 / 959))
    }

    /// `[database] max_records = 3, when_full = "reject-new"`: a 2-line post fits, the next
    /// 2-line post gets 507 with "NOT stored" and stores neither line (all or nothing).
    @Test func fullOutboxAnswers507AndStoresNothingOfTheRequest() throws {
        let daemon = try IngestDaemon(extra: "[database]\nmax_records = 3\nwhen_full = \"reject-new\"\n")
        try daemon.start()
        let two = (1...2).map { #"{"kind":"message","device_id":"d","name":"n","content":\#($0)}"# }.joined(separator: "\n")
        let first = try daemon.curl(["-i", "--data-binary", two, "\(daemon.base)/v1/records"])
        #expect(statusCodes(first.stdout) == [200])
        let second = try daemon.curl(["-i", "--data-binary", two, "\(daemon.base)/v1/records"])
        #expect(statusCodes(second.stdout) == [507], "\(second.stdout)")
        #expect(second.stdout.contains("NOT stored"))
        #expect(try daemon.records().count == 2)
    }

    /// Unsafe [ingest] settings stop `edgebuf run` before it serves: exit 78 and the key named,
    /// and the token's value is never in the message.
    @Test func unsafeConfigurationIsRefusedWithExit78() throws {
        let token = "tok-never-printed-0123456789"
        for (ingest, key) in [("listen = \"0.0.0.0:8780\"\ntoken = \"\(token)\"", "ingest.cert_file"),
                              ("listen = \"0.0.0.0:8780\"", "ingest.token"),
                              ("token = \"short\"", "ingest.token"),
                              ("cert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent.key\"", "ingest.cert_file")] {
            let directory = TemporaryDirectory("edgebuf-ingest-config")
            let config = directory.file("c.toml")
            try "[ingest]\n\(ingest)\n".write(toFile: config, atomically: true, encoding: .utf8)
            let result = try edgebuf(["run", "--config", config, "--db", directory.file("db")])
            #expect(result.status == 78, "\(ingest): \(result.stderr)")
            #expect(result.stderr.contains(key), "\(result.stderr)")
            #expect(!result.stderr.contains(token))
        }
    }
}
