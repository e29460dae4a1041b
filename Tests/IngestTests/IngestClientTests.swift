import Foundation
import TestSupport
import Testing

/// The ingest server with real clients: curl, Python's http.client, an unmodified IoTDA device.
@Suite(.serialized) struct IngestClientTests {
    static let property = #"{"services":[{"service_id":"Battery","properties":{"level":87},"event_time":"2026-11-22T03:10:10.555Z"}]}"#

    /// curl reuses one keep-alive connection for three reports, uploads a chunked body, and
    /// sends `Expect: 100-continue` and gets the 100 before its body; every 2xx is in the outbox.
    @Test func curlKeepAliveChunkedAndExpectContinue() throws {
        let daemon = try IngestDaemon()
        try daemon.start()
        let url = "\(daemon.base)/v5/devices/d-1/sys/properties/report"
        let one = ["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", "-H", "content-type: application/json", "-d", Self.property, url]
        let keepAlive = try daemon.curl(one + ["--next"] + one + ["--next"] + one)
        #expect(keepAlive.stdout == "200 1\n200 0\n200 0\n", "one connection for three requests: \(keepAlive.stdout) \(keepAlive.stderr)")

        let lines = (1...200).map { #"{"kind":"message","device_id":"d-2","name":"n","content":{"seq":\#($0)}}"# }.joined(separator: "\n")
        let file = daemon.directory.file("lines.jsonl")
        try lines.write(toFile: file, atomically: true, encoding: .utf8)
        let chunked = try daemon.curl(["-i", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file)", "\(daemon.base)/v1/records"])
        #expect(statusCodes(chunked.stdout) == [200], "\(chunked.stdout.prefix(300)) \(chunked.stderr)")
        #expect(chunked.stdout.components(separatedBy: "\"id\":").count - 1 == 200)

        let expect = try daemon.curl(["-i", "-H", "Expect: 100-continue", "--data-binary", "@\(file)", "\(daemon.base)/v1/records"])
        #expect(statusCodes(expect.stdout) == [100, 200], "\(expect.stdout.prefix(300)) \(expect.stderr)")

        // Refused before the body is sent: curl gets the 413 instead of a 100.
        let big = daemon.directory.file("big.jsonl")
        try String(repeating: lines + "\n", count: 200).write(toFile: big, atomically: true, encoding: .utf8)
        let refused = try daemon.curl(["-i", "-H", "Expect: 100-continue", "--data-binary", "@\(big)", "\(daemon.base)/v1/records"])
        #expect(statusCodes(refused.stdout) == [413], "\(refused.stdout.prefix(300)) \(refused.stderr)")

        let records = try daemon.records()
        #expect(records.filter { $0.string("kind") == "property" }.count == 3)
        #expect(records.filter { $0.string("kind") == "message" }.count == 400)
    }

    /// Python's http.client on one connection: a Cumulocity measurementcollection (201), a
    /// single measurement, a bad body (400 naming the field, nothing stored), /healthz, /metrics.
    @Test func pythonHTTPClient() throws {
        let daemon = try IngestDaemon()
        try daemon.start()
        let result = try daemon.python(#"""
            import http.client, json, sys
            c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
            def post(path, body, ctype="application/json"):
                c.request("POST", path, body=body, headers={"Content-Type": ctype})
                r = c.getresponse()
                return r.status, r.read().decode()
            m = {"source": {"id": "4711"}, "type": "c8y_T", "time": "2026-11-22T03:10:10.555Z", "c8y_T": {"T": {"value": 21.5, "unit": "C"}}}
            print(post("/measurement/measurements", json.dumps({"measurements": [m, m, m]}), "application/vnd.com.nsn.cumulocity.measurementcollection+json"))
            print(post("/measurement/measurements", json.dumps(m)))
            bad = dict(m); bad.pop("type")
            print(post("/measurement/measurements", json.dumps({"measurements": [m, bad]})))
            c.request("GET", "/healthz"); r = c.getresponse(); print((r.status, r.read().decode()))
            c.request("GET", "/metrics"); r = c.getresponse(); print((r.status, r.read().decode()))
            """#)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("(201, '{\"measurements\":[{\"id\":\"") == true, "\(lines.first ?? "")")
        #expect(lines.dropFirst().first?.hasPrefix("(201, '{\"id\":\"") == true)
        #expect(lines.dropFirst(2).first?.contains("400") == true)
        #expect(lines.dropFirst(2).first?.contains("measurements[1].type") == true)
        #expect(result.stdout.contains("(200, 'ok\\n')"))
        #expect(result.stdout.contains(#"edgebuf_outbox_records{class=\"normal\"} 4"#) || result.stdout.contains(#"edgebuf_outbox_records{class="normal"} 4"#), "\(result.stdout.suffix(1500))")
        #expect(try daemon.records().count == 4, "the refused collection stored nothing")
    }

    /// An unmodified IoTDA HTTPS device's steps, with ingest.token as its device secret:
    /// device-auth signs the secret with the hour, then property reports and a message carry
    /// the answered access_token; a wrong token and no token get IoTDA's 403 IOTDA.000004 (so
    /// the device authenticates again), a wrong signature 401. The token
    /// never appears in the logs (debug level), the audit, or /metrics.
    @Test func unmodifiedIoTDADeviceWithToken() throws {
        let token = "ingest-token-5f1d0c9a7e3b2a81"
        let daemon = try IngestDaemon(ingest: "token = \"\(token)\"")
        try daemon.start()
        let result = try daemon.python(#"""
            import hashlib, hmac, http.client, json, sys, time
            port, secret = int(sys.argv[1]), sys.argv[2]
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            def call(method, path, body=None, headers={}):
                c.request(method, path, body=body, headers=dict({"Content-Type": "application/json"}, **headers))
                r = c.getresponse()
                return r.status, r.read().decode()
            ts = time.strftime("%Y%m%d%H", time.gmtime())
            pw = hmac.new(ts.encode(), secret.encode(), hashlib.sha256).hexdigest()
            status, body = call("POST", "/v5/device-auth", json.dumps({"device_id": "dev-1", "sign_type": 0, "timestamp": ts, "password": pw}))
            print("auth", status)
            access = json.loads(body)["access_token"]
            for level in range(5):
                report = {"services": [{"service_id": "Battery", "properties": {"level": level}}]}
                print("report", call("POST", "/v5/devices/dev-1/sys/properties/report", json.dumps(report), {"access_token": access})[0])
            print("message", call("POST", "/v5/devices/dev-1/sys/messages/up", json.dumps({"name": "alarm", "id": "m-1", "content": "door"}), {"access_token": access})[0])
            print("bearer", call("POST", "/v5/devices/dev-1/sys/properties/report", json.dumps(report), {"Authorization": "Bearer " + secret})[0])
            print("none", call("POST", "/v5/devices/dev-1/sys/properties/report", json.dumps(report))[0])
            print("wrong", call("POST", "/v5/devices/dev-1/sys/properties/report", json.dumps(report), {"access_token": access[:-1] + ("1" if access[-1] == "0" else "0")})[0])
            bad = hmac.new(ts.encode(), b"not-the-secret", hashlib.sha256).hexdigest()
            print("badauth", call("POST", "/v5/device-auth", json.dumps({"device_id": "dev-1", "sign_type": 0, "timestamp": ts, "password": bad}))[0])
            print("metrics", call("GET", "/metrics", headers={"Authorization": "Bearer " + secret}))
            """#, [token])
        #expect(result.status == 0, "\(result.stderr)")
        let out = result.stdout
        #expect(out.contains("auth 200\n"))
        #expect(out.components(separatedBy: "report 200\n").count - 1 == 5, "\(out)")
        #expect(out.contains("message 200\n"))
        #expect(out.contains("bearer 200\n"))
        #expect(out.contains("none 403\n"))
        #expect(out.contains("wrong 403\n"))
        #expect(out.contains("badauth 401\n"))
        #expect(out.contains(#"edgebuf_ingest_requests_total{endpoint="iotda_properties",status="403"} 2"#), "\(out.suffix(1200))")
        let records = try daemon.records()
        #expect(records.count == 7)
        #expect(records.allSatisfy { $0.string("target") == "dev-1" })

        daemon.process?.stop()
        #expect(daemon.process?.exitStatus == 0, "\(daemon.logs.suffix(800))")
        #expect(!daemon.logs.contains(token), "the token is in the daemon's output")
        #expect(!out.contains(token), "the token is in an answer")
        let audit = try edgebuf(["audit", "list", "--db", daemon.database])
        #expect(!audit.stdout.contains(token) && !audit.stderr.contains(token))
        let file = try Data(contentsOf: URL(fileURLWithPath: daemon.database))
        #expect(file.range(of: Data(token.utf8)) == nil, "the token is in the database file")
    }

    /// A unix socket (0660) serves the same API; a stale one is replaced at start, a regular
    /// file in its place is not.
    @Test func unixSocket() throws {
        let daemonDirectory = TemporaryDirectory("edgebuf-sock")
        let socket = daemonDirectory.file("ingest.sock")
        let daemon = try IngestDaemon(ingest: "unix_socket = \"\(socket)\"")
        try daemon.start()
        // chmod follows bind at once; the log line "ingest serving" comes after both.
        #expect(poll(timeout: .seconds(10)) { daemon.logs.contains("ingest serving") })
        #expect(fileMode(socket).map { $0 & 0o777 } == 0o660)
        let answer = try daemon.curl(["-i", "--unix-socket", socket, "-d", Self.property, "http://localhost/v5/devices/u-1/sys/properties/report"])
        #expect(statusCodes(answer.stdout) == [200], "\(answer.stdout) \(answer.stderr)")
        #expect(try daemon.records().first?.string("target") == "u-1")

        // kill -9 leaves the socket behind: the next start replaces it.
        daemon.process?.kill9()
        try daemon.start()
        #expect(poll(timeout: .seconds(10)) { daemon.logs.contains("ingest serving") })
        let again = try daemon.curl(["-i", "--unix-socket", socket, "-d", Self.property, "http://localhost/v5/devices/u-2/sys/properties/report"])
        #expect(statusCodes(again.stdout) == [200], "\(again.stdout) \(again.stderr)")
        daemon.process?.stop()
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed at a graceful stop")

        // A file that is not a socket is never replaced.
        try "keep me".write(toFile: socket, atomically: true, encoding: .utf8)
        let refused = try edgebuf(["run", "--config", daemon.configPath, "--db", daemon.database])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("not a socket"), "\(refused.stderr)")
        #expect((try? String(contentsOfFile: socket, encoding: .utf8)) == "keep me")
    }
}
