import EdgeBuffer
import EdgeStore
import Foundation
import Synchronization

/// The ingest benchmark: `edgebuf run` serving [ingest] on loopback, against the in-process
/// `Outbox.enqueue` and `enqueue --jsonl` measured in the same run.
///
/// (a) 64 keep-alive clients (libcurl, one thread each) each POSTing one IoTDA property report
///     and waiting for its answer, over and over; records/s and p50/p99 latency, against 64
///     tasks awaiting `Outbox.enqueue` (target >= 0.5x).
/// (b) `POST /v1/records` of 1,000 lines at a time on one connection, against
///     `edgebuf enqueue --jsonl` of the same lines (target >= 0.8x).
/// (c) the daemon's peak RSS with 64 and with 1,000 connections open (target < 60 MiB).
///
/// Usage: edgebuf-bench ingest --edgebuf PATH [--dir DIR] [--json FILE]
enum IngestBenchmark {
    static let clients = 64
    static let perClient = 300
    static let lineBatches = 100
    static let linesPerPost = 1000

    static func main(arguments: [String]) async -> Int32 {
        guard let edgebuf = arguments.option("--edgebuf") else {
            FileHandle.standardError.write(Data("usage: edgebuf-bench ingest --edgebuf PATH [--dir DIR] [--json FILE]\n".utf8))
            return 64
        }
        ChildProcesses.cleanUpOnSignals()
        do {
            let parent = arguments.option("--dir") ?? NSTemporaryDirectory()
            let dir = try ChildProcesses.makeDirectory(under: parent, prefix: "ingest")
            defer { ChildProcesses.cleanUp() }
            try await run(edgebuf: edgebuf, dir: dir, json: arguments.option("--json"))
            return 0
        } catch {
            FileHandle.standardError.write(Data("edgebuf-bench ingest: \(error)\n".utf8))
            return 1
        }
    }

    static func report(_ n: Int) -> [UInt8] {
        Array(#"{"services":[{"service_id":"Environment","properties":{"temperature":\#(20 + n % 10).5,"humidity":\#(40 + n % 20),"pressure":1013.\#(n % 10),"seq":\#(n),"note":"steady state reading"}}]}"#.utf8)
    }

    static func line(_ n: Int) -> String {
        #"{"kind":"property","device_id":"device-\#(n % 16)","service_id":"Environment","properties":{"temperature":\#(20 + n % 10).5,"humidity":\#(40 + n % 20),"pressure":1013.\#(n % 10),"seq":\#(n),"note":"steady state reading"}}"#
    }

    static func run(edgebuf: String, dir: String, json: String?) async throws {
        // (a) in process: 64 tasks awaiting Outbox.enqueue, one record each time.
        let outbox = try Outbox(path: dir + "/a-outbox.db")
        let total = clients * perClient
        let now = Timestamp.nowMilliseconds()
        let rows = (0..<total).map { n -> NewRecord in
            var input = RecordInput(kind: .property)
            input.deviceID = "device-\(n % 16)"
            input.serviceID = "Environment"
            input.properties = Array(report(n).dropFirst(#"{"services":[{"service_id":"Environment","properties":"#.utf8.count).dropLast(3))
            return try! input.validated(now: now, maxBodyBytes: 1 << 20)
        }
        let inProcess = try await elapsedAsync {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in 0..<clients {
                    group.addTask { for i in 0..<perClient { _ = try await outbox.enqueue([rows[c * perClient + i]]) } }
                }
                try await group.waitForAll()
            }
        }
        outbox.close()

        // The daemon.
        let port = try NginxSink.freePort()
        let config = dir + "/ingest.toml"
        try "[ingest]\nlisten = \"127.0.0.1:\(port)\"\nmax_connections = 2000\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try ChildProcesses.spawn(edgebuf, ["run", "--config", config, "--db", dir + "/ingest.db"])
        defer { ChildProcesses.stop(daemon) }
        let deadline = ContinuousClock.now + .seconds(30)
        while !NginxSink.accepts(port: port) {
            guard ContinuousClock.now < deadline, !ChildProcesses.hasExited(daemon) else { throw BenchError("edgebuf run did not start serving") }
            usleep(20_000)
        }
        let base = "http://127.0.0.1:\(port)"

        // (a) over HTTP: 64 threads, one keep-alive libcurl handle each.
        let latencies = Mutex<[Double]>([])
        let failures = Atomic<Int>(0)
        let overHTTP = try elapsed {
            let done = DispatchGroup()
            for c in 0..<clients {
                done.enter()
                let thread = Thread {
                    defer { done.leave() }
                    guard let poster = try? RawPoster(baseURL: base), (try? poster.setURL(base + "/v5/devices/device-\(c % 16)/sys/properties/report")) != nil else {
                        failures.add(1, ordering: .relaxed)
                        return
                    }
                    var mine: [Double] = []
                    mine.reserveCapacity(perClient)
                    for i in 0..<perClient {
                        let body = report(c * perClient + i)
                        let start = DispatchTime.now().uptimeNanoseconds
                        if (try? poster.post(body)) != 200 { failures.add(1, ordering: .relaxed) }
                        mine.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                    }
                    latencies.withLock { $0 += mine }
                }
                thread.start()
            }
            done.wait()
        }
        guard failures.load(ordering: .relaxed) == 0 else { throw BenchError("\(failures.load(ordering: .relaxed)) ingest posts failed") }
        let rss64 = highWaterKiB(daemon)
        let sorted = latencies.withLock { $0 }.sorted()
        let p50 = sorted[sorted.count / 2], p99 = sorted[sorted.count * 99 / 100]

        // (c) 1,000 connections, each answered once and kept open.
        let sockets = try (0..<1000).map { n -> Int32 in try postOnce(port: port, path: "/v5/devices/device-\(n % 16)/sys/properties/report", body: report(n)) }
        let rss1000 = highWaterKiB(daemon)
        sockets.forEach { close($0) }

        // (b) 1,000-line posts vs enqueue --jsonl of the same lines.
        let bodies = (0..<lineBatches).map { b in Array((0..<linesPerPost).map { line(b * linesPerPost + $0) }.joined(separator: "\n").utf8) + [0x0a] }
        let linesFile = dir + "/b.jsonl"
        FileManager.default.createFile(atPath: linesFile, contents: Data(bodies.joined()))
        let poster = try RawPoster(baseURL: base)
        try poster.setURL(base + "/v1/records")
        let posted = try elapsed { for body in bodies { try poster.postExpectingSuccess(body) } }
        let cliDB = dir + "/b-cli.db"
        _ = try ChildProcesses.wait(try ChildProcesses.spawn(edgebuf, ["--db", cliDB, "init"]))
        let cli = try elapsed {
            let (status, _) = try ChildProcesses.wait(try ChildProcesses.spawn(edgebuf, ["--db", cliDB, "enqueue", "--jsonl", linesFile]))
            guard status == 0 else { throw BenchError("enqueue --jsonl exited with \(status)") }
        }
        let lines = lineBatches * linesPerPost
        let rssEnd = highWaterKiB(daemon)

        let ratioA = inProcess / overHTTP
        let ratioB = cli / posted
        print("| ingest benchmark | records | seconds | records/s | figure | target |")
        print("|---|---:|---:|---:|---|---|")
        print("| Outbox.enqueue, 64 tasks awaiting each ack | \(total) | \(String(format: "%.2f", inProcess)) | \(Int(Double(total) / inProcess)) | | |")
        print("| ingest, 64 keep-alive clients, one report per request | \(total) | \(String(format: "%.2f", overHTTP)) | \(Int(Double(total) / overHTTP)) | p50 \(String(format: "%.2f", p50)) ms, p99 \(String(format: "%.2f", p99)) ms | |")
        print("| (a) ingest vs Outbox.enqueue | | | | \(String(format: "%.2f", ratioA))x | >= 0.5x |")
        print("| enqueue --jsonl, \(lines) lines | \(lines) | \(String(format: "%.2f", cli)) | \(Int(Double(lines) / cli)) | | |")
        print("| POST /v1/records, \(linesPerPost) lines per request | \(lines) | \(String(format: "%.2f", posted)) | \(Int(Double(lines) / posted)) | | |")
        print("| (b) /v1/records vs enqueue --jsonl | | | | \(String(format: "%.2f", ratioB))x | >= 0.8x |")
        print("| (c) daemon peak RSS, 64 / 1,000 connections / end | | | | \(mib(rss64)) / \(mib(rss1000)) / \(mib(rssEnd)) MiB | < 60 MiB |")
        if let json {
            var out = JSONObject()
            out.add("enqueue_64_tasks_per_second", Double(total) / inProcess)
            out.add("ingest_64_clients_per_second", Double(total) / overHTTP)
            out.add("ingest_p50_ms", p50)
            out.add("ingest_p99_ms", p99)
            out.add("ingest_vs_enqueue_ratio", ratioA)
            out.add("jsonl_cli_per_second", Double(lines) / cli)
            out.add("records_post_per_second", Double(lines) / posted)
            out.add("records_post_vs_cli_ratio", ratioB)
            out.add("peak_rss_64_mib", Double(rss64) / 1024)
            out.add("peak_rss_1000_mib", Double(rss1000) / 1024)
            try out.json.write(toFile: json, atomically: true, encoding: .utf8)
        }
    }

    static func mib(_ kib: Int) -> String { String(format: "%.1f", Double(kib) / 1024) }

    /// Opens a connection, POSTs `body` and reads the answer's head; returns the open socket.
    static func postOnce(port: UInt16, path: String, body: [UInt8]) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var address = NginxSink.loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchError("connect: \(String(cString: strerror(errno)))") }
        let request = Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { throw BenchError("send failed") }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 12, String(decoding: buffer[0..<12], as: UTF8.self) == "HTTP/1.1 200" else { throw BenchError("a connection's post was not answered 200") }
        return fd
    }
}
