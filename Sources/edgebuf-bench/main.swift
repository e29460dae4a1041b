// The enqueue benchmark: edgebuf against the physical limit measured in the same run.
// Usage: edgebuf-bench enqueue --edgebuf PATH/TO/edgebuf [--dir DIR] [--json FILE]
// Run through tools/bench, which builds in release mode first.
import CSQLite
import EdgeBuffer
import EdgeStore
import Foundation

struct Measurement {
    let name: String
    let records: Int
    let seconds: Double
    var extra: [String: String] = [:]
    var rate: Double { Double(records) / seconds }
}

func elapsed(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// A representative ~200-byte property record.
func input(_ n: Int) -> RecordInput {
    var input = RecordInput(kind: .property)
    input.deviceID = "device-\(n % 16)"
    input.serviceID = "Environment"
    input.properties = Array(#"{"temperature":\#(20 + n % 10).5,"humidity":\#(40 + n % 20),"pressure":1013.\#(n % 10),"seq":\#(n),"note":"steady state reading"}"#.utf8)
    return input
}

func records(_ count: Int) -> [NewRecord] {
    let now = Timestamp.nowMilliseconds()
    return (0..<count).map { try! input($0).validated(now: now, maxBodyBytes: 1 << 20) }
}

/// Raw C API (`RawInsert`): the same schema (our migrations) and pragmas, `perTransaction`
/// rows per commit with the totals row updated in it. This is the ceiling for storing these rows with this durability.
func rawInsert(path: String, rows: [NewRecord], perTransaction: Int) throws -> Double {
    _ = try Database.open(path: path)  // schema and pragmas as edgebuf sets them
    var db: OpaquePointer?
    sqlite3_open(path, &db)
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", nil, nil, nil)
    var raw = RawInsert(db: db!)
    let seconds = try elapsed {
        var index = 0
        while index < rows.count {
            try raw.commit(rows[index..<min(index + perTransaction, rows.count)])
            index += perTransaction
        }
    }
    raw.finalize()
    sqlite3_close(db)
    return seconds
}

func fresh(_ dir: String, _ name: String) -> String {
    let path = (dir as NSString).appendingPathComponent(name)
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    return path
}

/// (a) batches of 1000 through Outbox vs the raw loop at 1000 rows per commit.
func batched(dir: String) async throws -> [Measurement] {
    let count = 200_000
    let rows = records(count)
    let raw = try rawInsert(path: fresh(dir, "a-raw.db"), rows: rows, perTransaction: 1000)
    let outbox = try Outbox(path: fresh(dir, "a-edgebuf.db"))
    let ours = try await elapsedAsync {
        var index = 0
        while index < rows.count {
            _ = try await outbox.enqueue(Array(rows[index..<min(index + 1000, rows.count)]))
            index += 1000
        }
    }
    outbox.close()
    return [Measurement(name: "raw C insert, 1000 rows/commit", records: count, seconds: raw),
            Measurement(name: "edgebuf Outbox.enqueue, batches of 1000", records: count, seconds: ours)]
}

func elapsedAsync(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// (b) 64 producers, one record at a time each, waiting for the durable ack, vs one
/// fsync-ed commit per record.
func concurrent(dir: String) async throws -> [Measurement] {
    let producers = 64
    let perProducer = 300
    let rows = records(producers * perProducer)
    let rawCount = 3000
    let raw = try rawInsert(path: fresh(dir, "b-raw.db"), rows: Array(rows.prefix(rawCount)), perTransaction: 1)
    let outbox = try Outbox(path: fresh(dir, "b-edgebuf.db"))
    let ours = try await elapsedAsync {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<producers {
                group.addTask {
                    for i in 0..<perProducer { _ = try await outbox.enqueue([rows[p * perProducer + i]]) }
                }
            }
            try await group.waitForAll()
        }
    }
    outbox.close()
    return [Measurement(name: "raw C insert, 1 row/commit (one fsync each)", records: rawCount, seconds: raw),
            Measurement(name: "edgebuf, 64 producers awaiting each ack", records: rows.count, seconds: ours)]
}

/// (c) the CLI streaming 1,000,000 JSON lines from a file; peak RSS from wait4.
func jsonLines(dir: String, edgebuf: String) throws -> [Measurement] {
    let count = 1_000_000
    let file = (dir as NSString).appendingPathComponent("c.jsonl")
    if !FileManager.default.fileExists(atPath: file) {
        FileManager.default.createFile(atPath: file, contents: nil)
        let handle = FileHandle(forWritingAtPath: file)!
        var chunk = ""
        for n in 0..<count {
            chunk += #"{"kind":"property","device_id":"device-\#(n % 16)","service_id":"Environment","properties":{"temperature":\#(20 + n % 10).5,"humidity":\#(40 + n % 20),"pressure":1013.\#(n % 10),"seq":\#(n),"note":"steady state reading"}}"# + "\n"
            if chunk.utf8.count > 1 << 20 { handle.write(Data(chunk.utf8)); chunk = "" }
        }
        handle.write(Data(chunk.utf8))
        try handle.close()
    }
    let db = fresh(dir, "c-edgebuf.db")
    var rss = 0
    let seconds = try elapsed {
        let pid = try spawn(edgebuf, ["--db", db, "enqueue", "--jsonl", file])
        var status: Int32 = 0
        // Not ru_maxrss from wait4: posix_spawn vforks, so the child's maximum includes this
        // (large) process's RSS from before exec. The kernel's own high-water mark of the
        // child, VmHWM, read until it exits, is the child's alone.
        while waitpid(pid, &status, WNOHANG) == 0 {
            rss = max(rss, highWaterKiB(pid))
            usleep(10_000)
        }
        guard status == 0 else { fatalError("edgebuf enqueue --jsonl exited with \(status)") }
    }
    var m = Measurement(name: "edgebuf enqueue --jsonl, 1M lines", records: count, seconds: seconds)
    m.extra["peak_rss_mib"] = String(format: "%.1f", Double(rss) / 1024)
    return [try sqliteShell(dir: dir, count: count), m]
}

/// The floor for (c): Debian's `sqlite3` shell reading the same rows as SQL (the payloads
/// edgebuf stores for those lines), on a file with edgebuf's schema and pragmas (WAL,
/// synchronous FULL), one transaction per 8192 rows as `enqueue --jsonl` commits them, 64
/// rows to each INSERT.
/// It parses SQL instead of JSON: what the issue compares against.
func sqliteShell(dir: String, count: Int) throws -> Measurement {
    let shell = "/usr/bin/sqlite3"
    guard FileManager.default.isExecutableFile(atPath: shell) else { throw BenchError("\(shell) is missing (apt-get install sqlite3)") }
    let script = (dir as NSString).appendingPathComponent("c.sql")
    if !FileManager.default.fileExists(atPath: script) {
        FileManager.default.createFile(atPath: script, contents: nil)
        let handle = FileHandle(forWritingAtPath: script)!
        let now = Timestamp.nowMilliseconds()
        var chunk = "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n"
        for n in 0..<count {
            let inGroup = n % JSONLinesGroup.size
            if inGroup == 0 {
                chunk += (n == 0 ? "" : ";\nUPDATE outbox_totals SET records = records + \(JSONLinesGroup.size) WHERE class = 1;\nCOMMIT;\n") + "BEGIN IMMEDIATE;\n"
            }
            // 64 rows a statement: the shell parses those faster than one INSERT a row
            // (6.2 vs 15.2 s for 1M rows here), so the floor is the faster of the two.
            if inGroup % 64 == 0 {
                chunk += (inGroup == 0 ? "" : ";\n") + "INSERT INTO outbox (kind, class, target, child, event_time, enqueued_at, payload, bytes) VALUES "
            } else {
                chunk += ", "
            }
            let row = try! input(n).validated(now: now, maxBodyBytes: 1 << 20)
            chunk += "('\(row.kind.rawValue)', \(row.recordClass.rawValue), '\(row.target)', NULL, \(row.eventTime), \(now), CAST('\(String(decoding: row.payload, as: UTF8.self))' AS BLOB), \(row.payload.count))"
            if chunk.utf8.count > 1 << 20 { handle.write(Data(chunk.utf8)); chunk = "" }
        }
        chunk += ";\nUPDATE outbox_totals SET records = records + \(count % JSONLinesGroup.size) WHERE class = 1;\nCOMMIT;\n"
        handle.write(Data(chunk.utf8))
        try handle.close()
    }
    let db = fresh(dir, "c-sqlite3.db")
    _ = try Database.open(path: db)  // schema and pragmas as edgebuf sets them
    let input = open(script, O_RDONLY)
    guard input >= 0 else { throw BenchError("cannot read \(script)") }
    defer { close(input) }
    var rss = 0
    let seconds = try elapsed {
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let words: [String] = [shell, "-batch", "-bail", db]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawn(&pid, shell, &actions, nil, argv, environ) == 0 else { throw BenchError("cannot start \(shell)") }
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            rss = max(rss, highWaterKiB(pid))
            usleep(10_000)
        }
        guard status == 0 else { throw BenchError("\(shell) exited with \(status)") }
    }
    let stored = try Database.open(path: db).scalarInt("SELECT count(*) FROM outbox")
    guard stored == count else { throw BenchError("sqlite3 stored \(stored) of \(count) rows") }
    var m = Measurement(name: "sqlite3 shell, the same rows as SQL (64 per INSERT, 8192 per txn)", records: count, seconds: seconds)
    m.extra["peak_rss_mib"] = String(format: "%.1f", Double(rss) / 1024)
    return m
}

/// `enqueue --jsonl`'s group size, for the floor's transactions.
enum JSONLinesGroup { static let size = 8192 }

/// VmHWM (peak RSS, KiB) of a running process, 0 when it is gone.
func highWaterKiB(_ pid: pid_t) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

func spawn(_ path: String, _ arguments: [String]) throws -> pid_t {
    var pid: pid_t = 0
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let rc = posix_spawn(&pid, path, nil, nil, argv, environ)
    guard rc == 0 else { throw NSError(domain: "spawn", code: Int(rc)) }
    return pid
}

// MARK: Main

let arguments = Array(CommandLine.arguments.dropFirst())
// The drain benchmark (DrainBenchmark.swift) and its hidden child mode (DrainChild.swift).
if arguments.first == "drain" { exit(await DrainBenchmark.main(arguments: Array(arguments.dropFirst()))) }
if let mode = arguments.first, ["drain-backlog", "drain-raw", "drain-engine"].contains(mode) {
    exit(await DrainProfile.main(mode: mode, arguments: Array(arguments.dropFirst())))
}
if arguments.first == "end-to-end" { exit(await EndToEnd.main(arguments: Array(arguments.dropFirst()))) }
if arguments.first == "ingest" { exit(await IngestBenchmark.main(arguments: Array(arguments.dropFirst()))) }
if arguments.first == "downlink-cpu" { exit(DownlinkCPU.main(arguments: Array(arguments.dropFirst()))) }
if arguments.first == "drain-child" { exit(await DrainChild.main(arguments: Array(arguments.dropFirst()))) }
guard arguments.first == "enqueue", let edgebufPath = arguments.option("--edgebuf") else {
    FileHandle.standardError.write(Data("usage: edgebuf-bench enqueue --edgebuf PATH [--dir DIR] [--json FILE]\n       edgebuf-bench drain [--dir DIR] [--json FILE]\n       edgebuf-bench ingest --edgebuf PATH [--dir DIR] [--json FILE]\n       edgebuf-bench end-to-end --edgebuf PATH [--dir DIR] [--rounds N] [--json FILE]\n".utf8))
    exit(64)
}
let dir = arguments.option("--dir") ?? NSTemporaryDirectory() + "edgebuf-bench"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

let a = try await batched(dir: dir)
let b = try await concurrent(dir: dir)
let c = try jsonLines(dir: dir, edgebuf: edgebufPath)

let ratioA = a[1].rate / a[0].rate
let ratioB = b[1].rate / b[0].rate
print("| benchmark | records | seconds | records/s | ratio / figure | target |")
print("|---|---:|---:|---:|---:|---|")
for m in a + b + c {
    print("| \(m.name) | \(m.records) | \(String(format: "%.2f", m.seconds)) | \(Int(m.rate)) | \(m.extra.map { "\($0.key) \($0.value)" }.joined()) | |")
}
print("| (a) batched enqueue vs raw | | | | \(String(format: "%.2f", ratioA))x | >= 0.8x |")
print("| (b) 64 producers vs one fsync per record | | | | \(String(format: "%.1f", ratioB))x | >= 10x |")
let ratioC = c[1].rate / c[0].rate
print("| (c) --jsonl 1M lines | | | | \(Int(c[1].rate))/s = \(String(format: "%.2f", ratioC))x sqlite3, peak RSS \(c[1].extra["peak_rss_mib"] ?? "?") MiB | >= 0.9x sqlite3, < 50 MiB |")

if let jsonPath = arguments.option("--json") {
    var out = JSONObject()
    out.add("batched_raw_per_second", a[0].rate)
    out.add("batched_edgebuf_per_second", a[1].rate)
    out.add("batched_ratio", ratioA)
    out.add("concurrent_raw_fsync_per_second", b[0].rate)
    out.add("concurrent_edgebuf_per_second", b[1].rate)
    out.add("concurrent_ratio", ratioB)
    out.add("jsonl_sqlite3_per_second", c[0].rate)
    out.add("jsonl_per_second", c[1].rate)
    out.add("jsonl_ratio_to_sqlite3", ratioC)
    out.add("jsonl_peak_rss_mib", Double(c[1].extra["peak_rss_mib"] ?? "0") ?? 0)
    try out.json.write(toFile: jsonPath, atomically: true, encoding: .utf8)
}
