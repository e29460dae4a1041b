import EdgeStore
import EdgeUplink
import Foundation

/// Hidden modes for profiling one side of the drain in a process of its own (under perf or
/// callgrind), against an nginx started by hand with `NginxSink`'s configuration:
///
///     edgebuf-bench drain-backlog --db PATH [--count N]   builds the benchmark's backlog
///     edgebuf-bench drain-raw --db PATH --url URL          the raw loop alone
///     edgebuf-bench drain-engine --db PATH --url URL       the engine alone (open without quick_check)
///
/// Each prints records/s on stdout.
enum DrainProfile {
    static func main(mode: String, arguments: [String]) async -> Int32 {
        guard let path = arguments.option("--db") else {
            FileHandle.standardError.write(Data("usage: edgebuf-bench \(mode) --db PATH [--url URL] [--count N]\n".utf8))
            return 64
        }
        do {
            switch mode {
            case "drain-backlog":
                let count = Int(arguments.option("--count") ?? "") ?? DrainBenchmark.backlog
                let seconds = try await DrainWorkload.buildBacklog(path: DrainWorkload.fresh(path), count: count,
                                                                   now: Timestamp.nowMilliseconds())
                print("built \(count) records in \(DrainBenchmark.format(seconds)) s")
            case "drain-raw":
                guard let url = arguments.option("--url") else { throw BenchError("--url is required") }
                let records = try DrainWorkload.remaining(path: path)
                let result = try RawDrain.drain(path: path, url: url, device: DrainWorkload.device, secret: DrainWorkload.secret)
                guard result.records == Int(records) else { throw BenchError("the raw drain sent \(result.records) of \(records)") }
                print("raw: \(result.records) records, \(result.requests) requests, \(Int(Double(result.records) / result.seconds)) records/s")
            default:
                guard let url = arguments.option("--url") else { throw BenchError("--url is required") }
                let records = try DrainWorkload.remaining(path: path)
                var options = DatabaseOptions()
                options.checkOnOpen = false
                let engine = try SyncEngine(configuration: DrainWorkload.uplink(url: url), databasePath: path,
                                            databaseOptions: options, logger: DrainWorkload.logger)
                let start = DispatchTime.now().uptimeNanoseconds
                guard try await engine.drain() else { throw BenchError("the drain was cancelled") }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let progress = await engine.progress()
                guard progress.deliveredRecords == records else { throw BenchError("the engine delivered \(progress.deliveredRecords) of \(records)") }
                print("engine: \(records) records, \(Int(Double(records) / seconds)) records/s")
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("edgebuf-bench \(mode): \(error)\n".utf8))
            return 1
        }
    }
}
