import CSQLite
import EdgeStore
import Foundation

/// `edgebuf-bench end-to-end`: the whole pipeline as a user runs it, beside its floor in the
/// same run.
///
/// edgebuf: `edgebuf run` (an IoTDA uplink to a loopback nginx that answers 200 at once)
/// started, then `edgebuf enqueue --jsonl FILE` streaming 200,000 sensor readings of ~200 B
/// into the same database; timed from the first spawn until the outbox is empty after the
/// producer exited (a record leaves the outbox only after the sink's 200). CPU is the two
/// processes' own (`wait4` rusage), peak RSS their VmHWM sampled while they run.
///
/// The floor: the same durable work on the C APIs in this process, one thread: the same rows
/// inserted in groups of `JSONLinesEnqueuer.maximumGroup` per transaction (WAL, synchronous
/// FULL; `RawInsert`, 64 rows a statement), then drained as `RawDrain` does (select <= 1 MB,
/// POST, one transaction of range delete + totals + audit row). It parses no JSON: validation is edgebuf's own work, which
/// is what the ratios show the price of.
enum EndToEnd {
    static let records = 200_000
    /// The producer's group size (`JSONLinesEnqueuer.maximumGroup`).
    static let group = 8192

    static func main(arguments: [String]) async -> Int32 {
        guard let edgebuf = arguments.option("--edgebuf") else {
            FileHandle.standardError.write(Data("usage: edgebuf-bench end-to-end --edgebuf PATH [--dir DIR] [--rounds N] [--json FILE]\n".utf8))
            return 64
        }
        ChildProcesses.cleanUpOnSignals()
        do {
            try await run(edgebuf: edgebuf, dir: arguments.option("--dir") ?? NSTemporaryDirectory() + "edgebuf-bench",
                          rounds: Int(arguments.option("--rounds") ?? "1") ?? 1, json: arguments.option("--json"))
            return 0
        } catch {
            FileHandle.standardError.write(Data("edgebuf-bench end-to-end: \(error)\n".utf8))
            ChildProcesses.cleanUp()
            return 1
        }
    }

    /// One JSON line a reading: what the producer writes.
    static func line(_ n: Int) -> String {
        #"{"kind":"property","device_id":"\#(DrainWorkload.device)","service_id":"Environment","properties":{"temperature":\#(20 + n % 10).5,"humidity":\#(40 + n % 20),"pressure":1013.\#(n % 10),"seq":\#(n),"note":"steady state reading"}}"#
    }

    struct Pipeline {
        var seconds = 0.0
        var cpuRun = 0.0
        var cpuEnqueue = 0.0
        var rssKiB: Int { max(rssRunKiB, rssEnqueueKiB) }
        var rssRunKiB = 0
        var rssEnqueueKiB = 0
        /// When the producer exited (its last record committed), from the first spawn.
        var producerSeconds = 0.0
        var requests = 0
        var largestBody = 0
        var delivered = 0
        var cpu: Double { cpuRun + cpuEnqueue }
    }

    struct Floor {
        var intakeSeconds = 0.0
        var intakeCPU = 0.0
        var drainSeconds = 0.0
        var drainCPU = 0.0
        var seconds: Double { intakeSeconds + drainSeconds }
        var cpu: Double { intakeCPU + drainCPU }
    }

    static func run(edgebuf: String, dir: String, rounds: Int, json: String?) async throws {
        let work = try ChildProcesses.makeDirectory(under: dir, prefix: "end-to-end")
        defer { ChildProcesses.removeDirectory(work) }
        let sink = try NginxSink(under: work)
        defer { sink.stop() }
        let file = work + "/records.jsonl"
        var text = ""
        text.reserveCapacity(records * 200)
        for n in 0..<records { text += line(n) + "\n" }
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        let lineBytes = text.utf8.count / records
        let now = Timestamp.nowMilliseconds()
        let rows = try text.split(separator: "\n").map { try RecordInput.fromJSONLine(Array($0.utf8)).validated(now: now, maxBodyBytes: RawDrain.maxBodyBytes) }
        text = ""
        let config = work + "/edgebuf.toml"
        try """
            [uplink]
            platform = "iotda"
            url = "\(sink.url)"
            device_id = "\(DrainWorkload.device)"
            secret = "\(DrainWorkload.secretText)"
            allow_plain_http = true
            proxy = ""

            """.write(toFile: config, atomically: true, encoding: .utf8)

        var pipelines: [Pipeline] = []
        var floors: [Floor] = []
        let load = MachineLoad.now()
        for round in 1...rounds {
            let mark = try sink.requests().count
            var pipeline = try pipelineRun(edgebuf: edgebuf, config: config, file: file, database: DrainWorkload.fresh(work + "/edgebuf-\(round).db"))
            let delivery = try sink.checkDelivery(since: mark)
            pipeline.requests = delivery.requests
            pipeline.largestBody = try sink.requests().dropFirst(mark).filter(\.isReport).map(\.contentLength).max() ?? 0
            pipelines.append(pipeline)
            progress("round \(round): edgebuf \(Int(Double(records) / pipeline.seconds)) records/s in \(format(pipeline.seconds)) s (producer done at \(format(pipeline.producerSeconds)) s), CPU s: run \(format(pipeline.cpuRun)), enqueue \(format(pipeline.cpuEnqueue)); peak RSS MiB: run \(DrainBenchmark.mib(pipeline.rssRunKiB)), enqueue \(DrainBenchmark.mib(pipeline.rssEnqueueKiB))")
            let path = DrainWorkload.fresh(work + "/raw-\(round).db")
            let url = sink.url
            let floor = try await onThread("edgebuf-bench-floor") { try floorRun(path: path, rows: rows, url: url) }
            floors.append(floor)
            progress("round \(round): floor \(Int(Double(records) / floor.seconds)) records/s, \(format(floor.cpu)) CPU s")
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: work + "/edgebuf-\(round).db" + suffix)
                try? FileManager.default.removeItem(atPath: path + suffix)
            }
        }
        let pressure = MachineLoad.now().pressure(since: load)

        // Report: the best round of each (the machine is shared; the best is the least disturbed).
        let best = pipelines.min { $0.seconds < $1.seconds }!
        let floor = floors.min { $0.seconds < $1.seconds }!
        let rate = Double(records) / best.seconds
        let floorRate = Double(records) / floor.seconds
        let perRecord = best.cpu / Double(records) * 1e6
        let intakeRatio = (best.cpuEnqueue / Double(records)) / (floor.intakeCPU / Double(records))
        let drainRatio = best.cpuRun / floor.drainCPU
        func met(_ ok: Bool) -> String { ok ? "met" : "MISS" }
        print("end to end: \(records) readings of \(lineBytes) B as JSON lines, `enqueue --jsonl` into a running `edgebuf run` (IoTDA uplink to loopback nginx); \(rounds) round\(rounds == 1 ? "" : "s"), best shown")
        print("machine: CPU pressure \(format(pressure.cpu, 0)) %, I/O pressure \(format(pressure.io, 0)) % (share of the time some task waited, the benchmark's own included)")
        print("| measurement | figure | target |")
        print("|---|---|---|")
        print("| records/s, start to the outbox empty | \(Int(rate)) (rounds: \(pipelines.map { String(Int(Double(records) / $0.seconds)) }.joined(separator: ", "))) | \(met(rate >= 300_000)) >= 300,000 |")
        print("| floor: raw C intake (\(group) rows/txn, \(RawInsert.rowsPerStatement) rows/statement, FULL) then raw drain, one thread | \(Int(floorRate)) records/s; edgebuf at \(format(rate / floorRate))x | |")
        print("| CPU per record, all edgebuf processes | \(format(perRecord)) us (run \(format(best.cpuRun)) s + enqueue \(format(best.cpuEnqueue)) s) | \(met(perRecord <= 5)) <= 5 us |")
        print("| intake CPU per row vs the raw insert loop | \(format(intakeRatio))x (\(format(best.cpuEnqueue / Double(records) * 1e6)) vs \(format(floor.intakeCPU / Double(records) * 1e6)) us) | \(met(intakeRatio <= 1.5)) <= 1.5x |")
        print("| drain CPU vs the raw drain loop | \(format(drainRatio))x (\(format(best.cpuRun)) vs \(format(floor.drainCPU)) s) | \(met(drainRatio <= 1.2)) <= 1.2x |")
        print("| peak RSS (VmHWM, the larger process) | \(DrainBenchmark.mib(best.rssKiB)) MiB (run \(DrainBenchmark.mib(best.rssRunKiB)), enqueue \(DrainBenchmark.mib(best.rssEnqueueKiB))) | \(met(best.rssKiB <= 45 * 1024)) <= 45 MiB |")
        print("| requests, largest body | \(best.requests), \(best.largestBody) B | \(met(best.largestBody <= RawDrain.maxBodyBytes)) <= 1 MiB |")

        if let json {
            var out = JSONObject()
            out.add("records", records)
            out.add("records_per_second", rate)
            out.add("floor_records_per_second", floorRate)
            out.add("cpu_us_per_record", perRecord)
            out.add("cpu_run_seconds", best.cpuRun)
            out.add("cpu_enqueue_seconds", best.cpuEnqueue)
            out.add("floor_intake_cpu_seconds", floor.intakeCPU)
            out.add("floor_drain_cpu_seconds", floor.drainCPU)
            out.add("intake_cpu_ratio", intakeRatio)
            out.add("drain_cpu_ratio", drainRatio)
            out.add("peak_rss_mib", Double(best.rssKiB) / 1024)
            out.add("requests", best.requests)
            out.add("largest_body_bytes", best.largestBody)
            out.add("peak_rss_run_mib", Double(best.rssRunKiB) / 1024)
            out.add("peak_rss_enqueue_mib", Double(best.rssEnqueueKiB) / 1024)
            out.add("cpu_pressure_percent", pressure.cpu)
            try out.json.write(toFile: json, atomically: true, encoding: .utf8)
        }
    }

    /// One run of the real pipeline; throws unless every record reached the sink once.
    static func pipelineRun(edgebuf: String, config: String, file: String, database: String) throws -> Pipeline {
        let initialized = try ChildProcesses.spawn(edgebuf, ["--db", database, "--config", config, "init"])
        guard try ChildProcesses.wait(initialized).status == 0 else { throw BenchError("edgebuf init failed") }
        var result = Pipeline()
        let start = DispatchTime.now().uptimeNanoseconds
        let daemon = try ChildProcesses.spawn(edgebuf, ["--db", database, "--config", config, "--log-level", "warning", "run"])
        let producer = try ChildProcesses.spawn(edgebuf, ["--db", database, "--config", config, "enqueue", "--jsonl", file])
        let db = try Database.openPrepared(path: database)
        var producerDone = false
        let deadline = ContinuousClock.now + .seconds(300)
        while true {
            result.rssRunKiB = max(result.rssRunKiB, highWaterKiB(daemon))
            if !producerDone {
                result.rssEnqueueKiB = max(result.rssEnqueueKiB, highWaterKiB(producer))
                var status: Int32 = 0
                var usage = rusage()
                if wait4(producer, &status, WNOHANG, &usage) == producer {
                    guard status == 0 else { throw BenchError("edgebuf enqueue --jsonl exited with status \(status)") }
                    result.cpuEnqueue = seconds(usage)
                    result.producerSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    producerDone = true
                }
            }
            if producerDone, try db.scalarInt("SELECT coalesce(sum(records), 0) FROM outbox_totals") == 0 { break }
            guard ContinuousClock.now < deadline, !ChildProcesses.hasExited(daemon) else {
                throw BenchError("edgebuf run did not drain the outbox (ended or over 300 s)")
            }
            usleep(2_000)
        }
        result.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        result.rssRunKiB = max(result.rssRunKiB, highWaterKiB(daemon))
        kill(daemon, SIGTERM)
        let ended = try ChildProcesses.wait(daemon)
        result.cpuRun = seconds(ended.usage)
        result.delivered = Int(try db.scalarInt("SELECT coalesce(sum(json_extract(detail, '$.records')), 0) FROM audit WHERE event = 'request' AND json_extract(detail, '$.outcome') = 'delivered'"))
        guard result.delivered == records else {
            throw BenchError("the audit shows \(result.delivered) records delivered, \(records) were enqueued")
        }
        return result
    }

    /// The floor: raw inserts in groups, then the raw drain, on this thread.
    static func floorRun(path: String, rows: [NewRecord], url: String) throws -> Floor {
        _ = try Database.open(path: path)  // schema and pragmas as edgebuf sets them
        var floor = Floor()
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw BenchError("cannot open \(path)") }
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", nil, nil, nil)
        guard let db else { throw BenchError("cannot open \(path)") }
        var raw = RawInsert(db: db)
        let cpuBefore = threadCPU()
        let start = DispatchTime.now().uptimeNanoseconds
        var index = 0
        while index < rows.count {
            let end = min(index + group, rows.count)
            try raw.commit(rows[index..<end])
            index = end
        }
        raw.finalize()
        sqlite3_close(db)
        floor.intakeSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        floor.intakeCPU = threadCPU() - cpuBefore
        let drainCPU = threadCPU()
        let drained = try RawDrain.drain(path: path, url: url, device: DrainWorkload.device, secret: DrainWorkload.secret)
        floor.drainCPU = threadCPU() - drainCPU
        floor.drainSeconds = drained.seconds
        guard drained.records == rows.count else { throw BenchError("the raw drain sent \(drained.records) of \(rows.count) records") }
        try RawDrain.verify(path: path, requests: drained.requests)
        return floor
    }

    static func seconds(_ usage: rusage) -> Double {
        Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// CPU seconds of the calling thread (user + system).
    static func threadCPU() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD, which Swift does not import
        return seconds(usage)
    }

    static func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

    static func progress(_ line: String) { FileHandle.standardError.write(Data("end-to-end: \(line)\n".utf8)) }
}
