import EdgeStore
import Foundation
import TestSupport
import Testing

/// The built binary, its output and its exit codes (the README's "Exit codes" table).
@Suite struct CLITests {
    let dir = TemporaryDirectory()
    var db: String { dir.file("cli.db") }

    func eb(_ arguments: [String], stdin: String? = nil) throws -> CommandResult {
        try edgebuf(["--db", db] + arguments, stdin: stdin)
    }

    func count(_ sql: String = "SELECT count(*) FROM outbox") throws -> Int64 {
        try Database.open(path: db).scalarInt(sql)
    }

    @Test func helpAndVersion() throws {
        let help = try edgebuf(["--help"])
        #expect(help.status == 0)
        for command in ["init", "enqueue", "status", "outbox", "dead-letters", "audit"] { #expect(help.stdout.contains(command)) }
        #expect(try edgebuf(["--version"]).status == 0)
        #expect(try edgebuf(["enqueue", "property", "--help"]).stdout.contains("--event-time"))
    }

    @Test func initCreatesAnOwnerOnlyDatabase() throws {
        let result = try eb(["init", "--json"])
        #expect(result.status == 0)
        #expect(result.stdout.contains(#""created":true"#))
        #expect(fileMode(db) == 0o600)
        #expect(try eb(["init"]).stdout.contains("opened"))
    }

    @Test func enqueueEachKindPrintsTheID() throws {
        #expect(try eb(["enqueue", "property", "--device", "d1", "--service", "Battery", "--properties", #"{"level":87}"#]).stdout == "1\n")
        #expect(try eb(["enqueue", "message", "--device", "d1", "--name", "alarm", "--content", #""door open""#, "--class", "critical", "--json"]).stdout == "{\"id\":2}\n")
        #expect(try eb(["enqueue", "child-property", "--gateway", "gw", "--device", "c1", "--service", "T", "--properties", #"{"t":1}"#, "--event-time", "2026-11-22T03:10:10Z"]).status == 0)
        #expect(try eb(["enqueue", "measurement", "--source", "42", "--type", "c8y_T", "--fragments", #"{"c8y_T":{"T":{"value":1}}}"#]).status == 0)
        let status = try eb(["status", "--json"])
        #expect(status.status == 0)
        #expect(status.stdout.contains(#""records":4"#))
        let list = try eb(["outbox", "list", "--json"])
        #expect(list.stdout.split(separator: "\n").count == 4)
        #expect(list.stdout.hasPrefix(#"{"id":2,"kind":"message","class":"critical""#), "critical drains first")
    }

    @Test func badInputExits65NamesTheFieldAndStoresNothing() throws {
        _ = try eb(["init"])
        let result = try eb(["enqueue", "property", "--device", "d1", "--service", "S", "--properties", "[1,2]"])
        #expect(result.status == 65)
        #expect(result.stderr.contains("properties: must be a JSON object"))
        #expect(result.stdout.isEmpty)
        #expect(try count() == 0)
        let time = try eb(["enqueue", "property", "--device", "d1", "--service", "S", "--properties", "{}", "--event-time", "now"])
        #expect(time.status == 65)
        #expect(time.stderr.contains("event_time"))
    }

    @Test func badInputDoesNotEvenCreateTheDatabase() throws {
        let result = try eb(["enqueue", "message", "--device", "bad id!", "--name", "n", "--content", "1"])
        #expect(result.status == 65)
        #expect(!FileManager.default.fileExists(atPath: db))
    }

    @Test func usageErrorsExit64() throws {
        #expect(try eb(["enqueue"]).status == 64)
        #expect(try eb(["enqueue", "property", "--device", "d"]).status == 64)
        #expect(try eb(["status", "--log-level", "loud"]).status == 64)
    }

    @Test func jsonLinesStoreTheGoodLinesAndReportTheBadOnes() throws {
        let input = """
            {"kind":"property","device_id":"d1","service_id":"S","properties":{"n":1}}
            {"kind":"property","device_id":"d1","service_id":"S","properties":"oops"}

            {"kind":"measurement","source":"7","type":"t","fragments":{"f":{"v":{"value":1}}}}
            {"kind":"message","device_id":"d1","name":"n","content":{"a":[1,2,3]}}
            {broken
            """
        let result = try eb(["enqueue", "--jsonl", "--ack"], stdin: input)
        #expect(result.status == 65)
        #expect(result.stdout == "{\"line\":1,\"id\":1}\n{\"line\":4,\"id\":2}\n{\"line\":5,\"id\":3}\n")
        #expect(result.stderr.contains("line 2: properties"))
        #expect(result.stderr.contains("line 6: line: is not a JSON object"))
        #expect(result.stderr.contains("2 of 6 lines were refused"))
        #expect(try count() == 3)
    }

    /// Processes that open a new database path at the same moment (an `init`, a `status` and
    /// an `enqueue`, as a daemon and its producer starting together) all succeed: none takes the
    /// file another one is creating for another program's. Before the fix about one round in
    /// 60 refused it.
    @Test func processesOpeningANewDatabaseAtOnceAllSucceed() throws {
        var refusals: [String] = []
        for round in 0..<60 {
            let path = dir.file("race-\(round).db")
            let commands = [["init"], ["status"], ["enqueue", "property", "--device", "d", "--service", "S", "--properties", #"{"a":1}"#]]
            let processes = try commands.map { arguments -> (Process, Pipe) in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: edgebufBinary)
                process.arguments = ["--db", path] + arguments
                let errors = Pipe()
                process.standardOutput = FileHandle.nullDevice
                process.standardError = errors
                try process.run()
                return (process, errors)
            }
            for (process, errors) in processes {
                let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                if process.terminationStatus != 0 { refusals.append("round \(round): \(process.arguments!.dropFirst(2).first!): \(text)") }
            }
        }
        #expect(refusals.isEmpty, "\(refusals.count) refused: \(refusals.prefix(3))")
    }

    /// A producer that waits for each line's ack before it sends the next gets it while its
    /// input stays open (not only when more lines come or the input ends).
    @Test func aSlowProducerGetsEachAckBeforeItSendsMore() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: edgebufBinary)
        process.arguments = ["--db", db, "enqueue", "--jsonl", "--ack"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let lines = PipeLines(output.fileHandleForReading)
        for seq in 1...3 {
            input.fileHandleForWriting.write(Data((#"{"kind":"property","device_id":"d","service_id":"S","properties":{"n":\#(seq)}}"# + "\n").utf8))
            let ack = lines.next(timeout: .seconds(10))
            #expect(ack == "{\"line\":\(seq),\"id\":\(seq)}", "line \(seq): \(ack ?? "no ack within 10 s while the input stayed open")")
            guard ack != nil else { break }
        }
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try count() == 3)
    }

    @Test func strictStopsAtTheFirstBadLine() throws {
        let input = (1...3).map { #"{"kind":"property","device_id":"d","service_id":"S","properties":{"n":\#($0)}}"# }
            + ["nope"] + (5...6).map { #"{"kind":"property","device_id":"d","service_id":"S","properties":{"n":\#($0)}}"# }
        let result = try eb(["enqueue", "--jsonl", "--strict", "--ack"], stdin: input.joined(separator: "\n") + "\n")
        #expect(result.status == 65)
        #expect(result.stdout.split(separator: "\n").count == 3)
        #expect(try count() == 3)
    }

    @Test func jsonLinesFromAFileAndAMissingFile() throws {
        let path = dir.file("in.jsonl")
        let lines = (1...5000).map { #"{"kind":"property","device_id":"d\#($0 % 7)","service_id":"S","properties":{"n":\#($0)}}"# }
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let result = try eb(["enqueue", "--jsonl", path])
        #expect(result.status == 0)
        #expect(try count() == 5000)
        #expect(try eb(["enqueue", "--jsonl", dir.file("missing.jsonl")]).status == 66)
    }

    @Test func anOverlongLineIsRefusedWithoutStoppingTheStream() throws {
        let huge = #"{"kind":"property","device_id":"d","service_id":"S","properties":{"p":""# + String(repeating: "x", count: 5 << 20) + "\"}}"
        let ok = #"{"kind":"property","device_id":"d","service_id":"S","properties":{"n":1}}"#
        let result = try eb(["enqueue", "--jsonl"], stdin: [ok, huge, ok].joined(separator: "\n") + "\n")
        #expect(result.status == 65)
        #expect(result.stderr.contains("line 2"))
        #expect(try count() == 2)
    }

    @Test func aFullOutboxExits75AndStoresNothing() throws {
        let config = dir.file("small.toml")
        try "[database]\nmax_records = 2\n".write(toFile: config, atomically: true, encoding: .utf8)
        let args = ["--config", config, "enqueue", "property", "--device", "d", "--service", "S", "--properties", "{}"]
        #expect(try eb(args).status == 0)
        #expect(try eb(args).status == 0)
        let full = try eb(args)
        #expect(full.status == 75)
        #expect(full.stderr.contains("outbox is full"))
        #expect(full.stderr.contains("NOT stored"))
        #expect(try count() == 2)
    }

    @Test func aFullDiskExits76StoresNothingOfTheGroupAndRecovers() throws {
        let small = dir.file("tiny.toml")
        try "[database]\nmax_file_bytes = \"256KB\"\n".write(toFile: small, atomically: true, encoding: .utf8)
        let big = String(repeating: "x", count: 3000)
        let lines = (0..<200).map { #"{"kind":"property","device_id":"d","service_id":"S","properties":{"seq":\#($0),"pad":"\#(big)"}}"# }
        let full = try eb(["--config", small, "enqueue", "--jsonl", "--ack"], stdin: lines.joined(separator: "\n") + "\n")
        #expect(full.status == 76)
        #expect(full.stderr.contains("full"))
        #expect(full.stderr.contains("NOT stored"))
        let acked = full.stdout.split(separator: "\n").count
        #expect(try count() == Int64(acked), "exactly the acknowledged records are stored")
        #expect(try Database.open(path: db).scalarText("PRAGMA integrity_check") == "ok")
        // Space returns (no file cap): the same database takes records again.
        #expect(try eb(["enqueue", "--jsonl"], stdin: lines[0] + "\n").status == 0)
        #expect(try count() == Int64(acked) + 1)
    }

    @Test func aConfigMistakeExits78NamingTheKey() throws {
        let config = dir.file("bad.toml")
        try "[database]\nmax_recods = 2\n".write(toFile: config, atomically: true, encoding: .utf8)
        let result = try eb(["--config", config, "status"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("database.max_recods: unknown key"))
    }

    @Test func aForeignDatabaseExits74AndIsUntouched() throws {
        let foreign = try Connection(path: db, create: true)
        try foreign.execute("CREATE TABLE mine (x)")
        let result = try eb(["status"])
        #expect(result.status == 74)
        #expect(result.stderr.contains("not an edgebuf database"))
    }

    @Test func auditVerifyExits3OnTampering() throws {
        let config = dir.file("evict.toml")
        try "[database]\nmax_records = 1\nwhen_full = \"drop-oldest\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        for n in 0..<4 {
            #expect(try eb(["--config", config, "enqueue", "property", "--device", "d", "--service", "S", "--properties", #"{"n":\#(n)}"#]).status == 0)
        }
        let intact = try eb(["audit", "verify"])
        #expect(intact.status == 0)
        #expect(intact.stdout.contains("intact: 3 rows"))
        let list = try eb(["audit", "list", "--json"])
        #expect(list.stdout.split(separator: "\n").count == 3)
        #expect(list.stdout.contains(#""event":"evicted""#))
        let sql = try Connection(path: db)
        try sql.execute("DROP TRIGGER audit_is_append_only_update; UPDATE audit SET detail = '{}' WHERE seq = 2;")
        let broken = try eb(["audit", "verify", "--json"])
        #expect(broken.status == 3)
        #expect(broken.stdout.contains("row 2"))
    }

    @Test func deadLettersCommandsNeedIDsOrAll() throws {
        _ = try eb(["init"])
        #expect(try eb(["dead-letters", "retry"]).status == 64)
        #expect(try eb(["dead-letters", "purge", "--all"]).stdout.contains("purged 0"))
        #expect(try eb(["dead-letters", "list", "--json"]).status == 0)
    }
}

/// Lines of a pipe, read on a thread of their own, each awaited with a timeout.
private final class PipeLines: @unchecked Sendable {
    private let lock = NSCondition()
    private var lines: [String] = []

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lock.lock()
                    lines.append(line)
                    lock.signal()
                    lock.unlock()
                }
            }
        }
    }

    /// The next line, or nil if none came within `timeout`.
    func next(timeout: Duration) -> String? {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds))
        lock.lock()
        defer { lock.unlock() }
        while lines.isEmpty {
            if !lock.wait(until: deadline) { return nil }
        }
        return lines.removeFirst()
    }
}
