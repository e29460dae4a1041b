// The drain benchmark: the sync engine against the physical limit measured in the same run.
// Usage: edgebuf-bench drain [--dir DIR] [--json FILE] [--latency-samples CSV]
//        edgebuf-bench drain --ratio-only [--rounds N] [--dir DIR]   (raw and engine only, alternated)
// (tools/bench builds in release first)
import EdgeStore
import EdgeUplink
import Foundation

/// Drains through the sync engine and through a raw C loop doing the same work, into the
/// same loopback nginx, and reports ratios; also the transport alone, the engine's peak
/// memory on large backlogs, and enqueue-to-delivered latency when online.
enum DrainBenchmark {
    static let backlog = 200_000
    /// Backlogs drained in a child process for peak RSS: flat means the same for both.
    static let rssBacklogs = [100_000, 1_000_000]
    /// The ceiling posts the backlog's bodies this many times over, for a measurable time.
    static let ceilingRounds = 10
    static let latencyRecords = 500
    static let latencyIntervalMilliseconds = 5

    static func main(arguments: [String]) async -> Int32 {
        ChildProcesses.cleanUpOnSignals()
        do {
            if arguments.contains("--ratio-only") {
                try await ratioOnly(dir: arguments.option("--dir") ?? NSTemporaryDirectory() + "edgebuf-bench",
                                    rounds: Int(arguments.option("--rounds") ?? "2") ?? 2)
                return 0
            }
            try await run(dir: arguments.option("--dir") ?? NSTemporaryDirectory() + "edgebuf-bench", json: arguments.option("--json"),
                          latencySamples: arguments.option("--latency-samples"))
            return 0
        } catch {
            FileHandle.standardError.write(Data("edgebuf-bench drain: \(error)\n".utf8))
            ChildProcesses.cleanUp()
            return 1
        }
    }

    static func progress(_ line: String) {
        FileHandle.standardError.write(Data("    \(line)\n".utf8))
    }

    static func run(dir: String, json: String?, latencySamples: String?) async throws {
        let runStart = MachineLoad.now()
        let work = try ChildProcesses.makeDirectory(under: dir, prefix: "drain")
        defer { ChildProcesses.removeDirectory(work) }
        let sink = try NginxSink(under: work)
        defer { sink.stop() }
        let url = sink.url
        let device = DrainWorkload.device
        let secret = DrainWorkload.secret
        let now = Timestamp.nowMilliseconds()
        progress("nginx on \(url)")

        // 1. The physical limit: the raw C loop.
        let rawPath = DrainWorkload.fresh(work + "/raw.db")
        let rawBuild = try await DrainWorkload.buildBacklog(path: rawPath, count: backlog, now: now)
        progress("raw: backlog of \(backlog) built in \(format(rawBuild)) s")
        var mark = try sink.requests().count
        let raw = try await onThread("edgebuf-bench-raw") {
            try RawDrain.drain(path: rawPath, url: url, device: device, secret: secret)
        }
        guard raw.records == backlog, try DrainWorkload.remaining(path: rawPath) == 0 else {
            throw BenchError("the raw drain sent \(raw.records) of \(backlog) records")
        }
        let rawDelivery = try sink.checkDelivery(since: mark, expectedBytes: raw.bodyBytes)
        try RawDrain.verify(path: rawPath, requests: raw.requests)
        removeDatabase(rawPath)

        // 2. edgebuf: the same backlog drained by the engine.
        let enginePath = DrainWorkload.fresh(work + "/edgebuf.db")
        let engineBuild = try await DrainWorkload.buildBacklog(path: enginePath, count: backlog, now: now)
        progress("edgebuf: backlog of \(backlog) built in \(format(engineBuild)) s")
        let openSeconds = try elapsedSeconds { _ = try Database.open(path: enginePath) }
        let (engineSeconds, engineDelivery) = try await engineDrain(path: enginePath, url: url, sink: sink)
        removeDatabase(enginePath)

        // 3. The transport ceiling: the raw loop's bodies, prebuilt, posted alone.
        let bodies = RawDrain.bodies((0..<backlog).map { DrainWorkload.record($0, now: now).payload })
        mark = try sink.requests().count
        let ceiling = try await onThread("edgebuf-bench-ceiling") {
            try RawDrain.postOnly(bodies: bodies, records: backlog, rounds: ceilingRounds, url: url, device: device, secret: secret)
        }
        let ceilingDelivery = try sink.checkDelivery(since: mark, expectedBytes: ceiling.bodyBytes)
        let drainsDone = MachineLoad.now()

        // 4. Peak RSS of the engine draining large backlogs, each in a process of its own.
        var rss: [(records: Int, build: Double, result: DrainChild.Result, delivery: NginxSink.Delivery)] = []
        for count in rssBacklogs {
            let path = DrainWorkload.fresh(work + "/rss-\(count).db")
            let build = try await DrainWorkload.buildBacklog(path: path, count: count, now: now)
            progress("drain-child: backlog of \(count) built in \(format(build)) s")
            mark = try sink.requests().count
            let result = try await onThread("edgebuf-bench-child") { try DrainChild.measure(path: path, url: url) }
            rss.append((count, build, result, try sink.checkDelivery(since: mark)))
            removeDatabase(path)
        }

        // 5. Enqueue-to-delivered latency with a running engine.
        progress("latency: \(latencyRecords) records, \(latencyIntervalMilliseconds) ms apart")
        let latencyStart = MachineLoad.now()
        let latency = try await DrainLatency.measure(path: work + "/latency.db", sink: sink, count: latencyRecords,
                                                     interval: .milliseconds(latencyIntervalMilliseconds), now: now)
        let latencyDone = MachineLoad.now()
        removeDatabase(work + "/latency.db")
        for problem in latency.problems { progress("latency: \(problem)") }
        if let latencySamples { try latency.csv.write(toFile: latencySamples, atomically: true, encoding: .utf8) }
        let drainsPressure = drainsDone.pressure(since: runStart)
        let latencyPressure = latencyDone.pressure(since: latencyStart)

        // Report.
        let rawRate = Double(raw.records) / raw.seconds
        let engineRate = Double(backlog) / engineSeconds
        let ceilingRate = Double(ceiling.records) / ceiling.seconds
        let ceilingMBps = Double(ceiling.bodyBytes) / ceiling.seconds / 1e6
        let ratio = engineRate / rawRate
        let nginxP50 = percentile(latency.toNginx, 0.50), nginxP99 = percentile(latency.toNginx, 0.99)
        let goneP50 = percentile(latency.gone, 0.50), goneP99 = percentile(latency.gone, 0.99)
        func perPOST(_ d: NginxSink.Delivery, _ records: Int) -> String {
            "\(d.summary), \(records / max(d.requests, 1)) rec/POST"
        }
        print("| benchmark | records | seconds | records/s | ratio / figure | target |")
        print("|---|---:|---:|---:|---:|---|")
        row(RawDrain.summary, raw.records, raw.seconds, perPOST(rawDelivery, raw.records))
        row("edgebuf SyncEngine.drain() (open without quick_check, auth included)", backlog, engineSeconds,
            "\(format(ratio))x raw; \(perPOST(engineDelivery, backlog)); open+quick_check before it, untimed, \(format(openSeconds)) s")
        row("transport ceiling: curl POSTs of the raw drain's bodies, prebuilt, \(ceilingRounds)x over", ceiling.records, ceiling.seconds, "\(format(ceilingMBps, 0)) MB/s, \(ceilingDelivery.summary)")
        for entry in rss {
            row("edgebuf drain-child, \(entry.records) backlog (own process)", entry.records, entry.result.seconds,
                "peak RSS \(mib(entry.result.peakRSSKiB)) MiB (wait4 ru_maxrss \(mib(entry.result.waitMaxRSSKiB)), parent's peak \(mib(entry.result.parentPeakRSSKiB))), \(entry.delivery.summary)")
        }
        print("| enqueue -> received by nginx ($msec), 1 record every \(latencyIntervalMilliseconds) ms | \(latency.toNginx.count) | \(format(latency.seconds)) | | p50 \(format(nginxP50, 1)) ms, p99 \(format(nginxP99, 1)) ms, max \(format(latency.toNginx.max() ?? .nan, 1)) ms | |")
        print("| enqueue -> gone from the outbox (~1 ms polls) | \(latency.gone.count) | | | p50 \(format(goneP50, 1)) ms, p99 \(format(goneP99, 1)) ms, max \(format(latency.gone.max() ?? .nan, 1)) ms; \(latency.requests) POSTs | |")
        print("| drain: edgebuf vs raw C | | | | \(format(ratio))x | >= 0.8x |")
        print("| raw C vs transport ceiling | | | | \(format(rawRate / ceilingRate))x | |")
        print("| peak RSS draining \(rss.map { "\($0.records / 1000)k" }.joined(separator: " / ")) | | | | \(rss.map { mib($0.result.peakRSSKiB) }.joined(separator: " / ")) MiB | < 50 MiB, flat |")
        print("| engine idle (empty outbox, 1 s): process CPU | | | | \(format(latency.idleCPUMillisecondsPerSecond, 1)) ms/s | |")
        print("")
        print("Machine: \(ProcessInfo.processInfo.activeProcessorCount) CPUs, load average \(format(runStart.loadAverage)) at start, \(format(latencyDone.loadAverage)) at end; "
            + "some task waited for a CPU \(format(drainsPressure.cpu, 0))% of the time from the start through the ceiling, "
            + "\(format(latencyPressure.cpu, 0))% during the latency run (IO: \(format(drainsPressure.io, 0))%, \(format(latencyPressure.io, 0))%).")

        if let json {
            var out = JSONObject()
            out.add("drain_raw_does", RawDrain.summary)
            out.add("drain_raw_per_second", rawRate)
            out.add("drain_edgebuf_per_second", engineRate)
            out.add("drain_ratio", ratio)
            out.add("drain_raw_requests", rawDelivery.requests)
            out.add("drain_edgebuf_requests", engineDelivery.requests)
            out.add("drain_edgebuf_open_seconds", openSeconds)
            out.add("transport_ceiling_per_second", ceilingRate)
            out.add("transport_ceiling_mb_per_second", ceilingMBps)
            for entry in rss {
                out.add("drain_child_\(entry.records)_per_second", Double(entry.records) / entry.result.seconds)
                out.add("drain_child_\(entry.records)_peak_rss_mib", Double(entry.result.peakRSSKiB) / 1024)
                out.add("drain_child_\(entry.records)_wait4_maxrss_mib", Double(entry.result.waitMaxRSSKiB) / 1024)
            }
            out.add("latency_records", latencyRecords)
            out.add("latency_to_nginx_p50_ms", nginxP50)
            out.add("latency_to_nginx_p99_ms", nginxP99)
            out.add("latency_gone_p50_ms", goneP50)
            out.add("latency_gone_p99_ms", goneP99)
            out.add("latency_requests", latency.requests)
            out.add("engine_idle_cpu_ms_per_second", latency.idleCPUMillisecondsPerSecond)
            out.add("backlog_build_seconds", [rawBuild, engineBuild] + rss.map(\.build))
            out.add("load_average_start", runStart.loadAverage)
            out.add("load_average_end", latencyDone.loadAverage)
            out.add("cpu_pressure_percent_drains", drainsPressure.cpu)
            out.add("cpu_pressure_percent_latency", latencyPressure.cpu)
            out.add("io_pressure_percent_drains", drainsPressure.io)
            out.add("io_pressure_percent_latency", latencyPressure.io)
            try out.json.write(toFile: json, atomically: true, encoding: .utf8)
        }
    }

    /// The drain's ratio alone, for profiling work: the raw loop and the engine drain the same
    /// backlog into the same nginx, alternated `rounds` times (raw first in each round), each
    /// round's ratio printed. No ceiling, RSS or latency phases.
    static func ratioOnly(dir: String, rounds: Int) async throws {
        let work = try ChildProcesses.makeDirectory(under: dir, prefix: "drain")
        defer { ChildProcesses.removeDirectory(work) }
        let sink = try NginxSink(under: work)
        defer { sink.stop() }
        let url = sink.url
        let now = Timestamp.nowMilliseconds()
        print("| round | raw records/s | engine records/s | ratio |")
        print("|---:|---:|---:|---:|")
        for round in 1...max(rounds, 1) {
            let rawPath = DrainWorkload.fresh(work + "/raw.db")
            _ = try await DrainWorkload.buildBacklog(path: rawPath, count: backlog, now: now)
            let mark = try sink.requests().count
            let raw = try await onThread("edgebuf-bench-raw") {
                try RawDrain.drain(path: rawPath, url: url, device: DrainWorkload.device, secret: DrainWorkload.secret)
            }
            guard raw.records == backlog, try DrainWorkload.remaining(path: rawPath) == 0 else {
                throw BenchError("the raw drain sent \(raw.records) of \(backlog) records")
            }
            _ = try sink.checkDelivery(since: mark, expectedBytes: raw.bodyBytes)
            try RawDrain.verify(path: rawPath, requests: raw.requests)
            removeDatabase(rawPath)

            let enginePath = DrainWorkload.fresh(work + "/edgebuf.db")
            _ = try await DrainWorkload.buildBacklog(path: enginePath, count: backlog, now: now)
            _ = try Database.open(path: enginePath)
            let (seconds, _) = try await engineDrain(path: enginePath, url: url, sink: sink)
            let verification = try AuditLog(try Database.openPrepared(path: enginePath)).verify()
            guard verification.isIntact else { throw BenchError("the engine's audit does not verify: \(verification.problem ?? "")") }
            removeDatabase(enginePath)
            let rawRate = Double(raw.records) / raw.seconds
            let engineRate = Double(backlog) / seconds
            print("| \(round) | \(Int(rawRate)) | \(Int(engineRate)) | \(format(engineRate / rawRate))x |")
        }
    }

    /// The engine's timed drain of the backlog at `path` into `sink`, started as `edgebuf run`
    /// starts it: the caller opened and checked the file, so the engine's own open skips
    /// quick_check. Fails unless every record left the outbox and reached the sink.
    static func engineDrain(path: String, url: String, sink: NginxSink) async throws -> (seconds: Double, delivery: NginxSink.Delivery) {
        let mark = try sink.requests().count
        var checked = DatabaseOptions()
        checked.checkOnOpen = false
        let engine = try SyncEngine(configuration: DrainWorkload.uplink(url: url), databasePath: path,
                                    databaseOptions: checked, logger: DrainWorkload.logger)
        let start = DispatchTime.now().uptimeNanoseconds
        let drained = try await engine.drain()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let progress = await engine.progress()
        guard drained, progress.deliveredRecords == backlog, try DrainWorkload.remaining(path: path) == 0 else {
            throw BenchError("the engine delivered \(progress.deliveredRecords) of \(backlog) records (\(progress.lastError ?? "no error"))")
        }
        return (seconds, try sink.checkDelivery(since: mark, expectedBytes: Int(progress.deliveredBytes)))
    }

    static func row(_ name: String, _ records: Int, _ seconds: Double, _ figure: String) {
        print("| \(name) | \(records) | \(format(seconds)) | \(Int(Double(records) / seconds)) | \(figure) | |")
    }

    /// Nearest-rank percentile; NaN for no values.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
    }

    static func mib(_ kib: Int) -> String { format(Double(kib) / 1024, 1) }

    static func format(_ value: Double, _ digits: Int = 2) -> String {
        String(format: "%.\(digits)f", value)
    }

    static func elapsedSeconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func removeDatabase(_ path: String) {
        _ = DrainWorkload.fresh(path)
    }
}

extension JSONObject {
    /// A list of numbers.
    mutating func add(_ name: String, _ values: [Double]) {
        add(name, rawJSON: Array("[\(values.map { String($0) }.joined(separator: ","))]".utf8))
    }
}
