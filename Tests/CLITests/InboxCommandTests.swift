import EdgeStore
import Foundation
import TestSupport
import Testing

/// `inbox list`, `follow` and `exec` against the real binary, on an inbox filled directly.
@Suite struct InboxCommandTests {
    let dir = TemporaryDirectory()
    var db: String { dir.file("i.db") }

    init() { signal(SIGPIPE, SIG_IGN) }

    /// Stores notifications `from...to` on `/operations/1` (odd) and `/alarms/1` (even).
    func fill(_ range: ClosedRange<Int>, gapBefore: Int? = nil) throws {
        let connection = try Database.open(path: db)
        for n in range {
            let row = InboxNotificationRow(channel: n % 2 == 1 ? "/operations/1" : "/alarms/1", dedupeKey: "k\(n)",
                                           realtimeAction: "CREATE", data: Array(#"{"n":\#(n)}"#.utf8))
            let gap = gapBefore == n ? (reason: "restart", session: 2) : nil
            try connection.transaction { _ = try InboxStore(connection).insert([row], gap: gap, receivedAt: Int64(n)) }
        }
    }

    /// The `n` of each notification line, -1 for a gap line.
    func numbers(_ output: String) -> [Int] {
        output.split(separator: "\n").map { line in
            if line.contains(#""kind":"gap""#) { return -1 }
            guard let range = line.range(of: #"\"data\":\{\"n\":(\d+)\}"#, options: .regularExpression) else { return -2 }
            return Int(line[range].dropFirst(12).dropLast()) ?? -3
        }
    }

    func position(_ consumer: String) throws -> Int64 {
        try InboxStore(try Database.open(path: db)).position(of: consumer)
    }

    @Test func listShowsEverythingOrOneChannelWithGaps() throws {
        try fill(1...4, gapBefore: 3)
        let all = try edgebuf(["--db", db, "inbox", "list", "--json"])
        #expect(all.status == 0)
        #expect(numbers(all.stdout) == [1, 2, -1, 3, 4])
        let ops = try edgebuf(["--db", db, "inbox", "list", "--json", "--channel", "/operations/*"])
        #expect(numbers(ops.stdout) == [1, -1, 3])
        let since = try edgebuf(["--db", db, "inbox", "list", "--json", "--since", "3"])
        #expect(numbers(since.stdout) == [3, 4])
        let text = try edgebuf(["--db", db, "inbox", "list"])
        #expect(text.stdout.contains("GAP"))
        #expect(text.stdout.contains(#"/operations/1 CREATE  {"n":1}"#))
    }

    @Test func followOnceStreamsFromTheCursorAndRemembersIt() throws {
        try fill(1...5)
        let first = try edgebuf(["--db", db, "inbox", "follow", "--consumer", "a", "--once"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(numbers(first.stdout) == [1, 2, 3, 4, 5])
        #expect(try position("a") == 5)
        try fill(6...7)
        let second = try edgebuf(["--db", db, "inbox", "follow", "--consumer", "a", "--once"])
        #expect(numbers(second.stdout) == [6, 7])
        // Another consumer has its own cursor; a channel filter still moves it past the rest.
        let other = try edgebuf(["--db", db, "inbox", "follow", "--consumer", "b", "--once", "--channel", "/alarms/*"])
        #expect(numbers(other.stdout) == [2, 4, 6])
        #expect(try position("b") == 7)
    }

    @Test func aBadConsumerNameIsAUsageError() throws {
        let result = try edgebuf(["--db", db, "inbox", "follow", "--consumer", "a b", "--once"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--consumer may contain only"))
    }

    @Test func followKeepsFollowingNewNotifications() throws {
        try fill(1...2)
        let follower = try LineReader(edgebufBinary, ["--db", db, "inbox", "follow", "--consumer", "live"])
        defer { follower.kill() }
        #expect(numbers(try follower.lines(2, within: .seconds(20)).joined(separator: "\n")) == [1, 2])
        try fill(3...3)
        #expect(numbers(try follower.lines(1, within: .seconds(20)).joined(separator: "\n")) == [3])
        // Read out of the pipe: the cursor follows.
        let deadline = ContinuousClock.now + .seconds(20)
        while try position("live") < 3, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(try position("live") == 3)
    }

    /// At least once: whether the follower is killed or the consumer goes away mid-stream,
    /// every notification the consumer had not read is delivered when it comes back, in order.
    @Test func nothingUnreadIsLostWhenTheFollowerOrTheConsumerDies() throws {
        try fill(1...60)
        var seen: Set<Int> = []
        for round in 0..<4 {
            // A slow consumer: it reads byte by byte, so the rest stays in the pipe.
            let follower = try LineReader(edgebufBinary, ["--db", db, "inbox", "follow", "--consumer", "c"], chunk: 1)
            let got = numbers(try follower.lines(5 + round * 3, within: .seconds(20)).joined(separator: "\n"))
            let cursor = try position("c")
            #expect(got.first.map { Int64($0) == cursor + 1 } == true, "each run starts right after the cursor")
            #expect(got == Array(got[0]...got[got.count - 1]), "in order, without holes")
            if round % 2 == 0 {
                follower.kill()
            } else {
                // The consumer dies: the follower notices the closed pipe and stops, non-zero.
                follower.closeOutput()
                #expect(follower.wait(within: .seconds(20)) == 1)
            }
            #expect(try position("c") < Int64(got.last!), "the cursor never passes what was not read")
            seen.formUnion(got)
        }
        let rest = try edgebuf(["--db", db, "inbox", "follow", "--consumer", "c", "--once"])
        seen.formUnion(numbers(rest.stdout))
        #expect(seen == Set(1...60))
        #expect(try position("c") == 60)
    }

    @Test func execRunsTheCommandPerNotificationAndRetriesAFailure() throws {
        try fill(1...4)
        let log = dir.file("handled.log")
        let failedOnce = dir.file("failed-once")
        // Fails the first time it sees notification 2, handles everything else.
        let script = """
            line=$(cat); echo "$EDGEBUF_INBOX_ID $line" >> \(log)
            case "$line" in *'"n":2}'*) [ -e \(failedOnce) ] || { touch \(failedOnce); exit 3; } ;; esac
            exit 0
            """
        let result = try edgebuf(["--db", db, "inbox", "exec", "--consumer", "ops", "--once", "--retry-initial", "0.05",
                                  "--", "/bin/sh", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("notification 2: exit status 3 (attempt 1); retrying in"))
        let handled = try String(contentsOfFile: log, encoding: .utf8)
        #expect(numbers(handled.split(separator: "\n").map { String($0.split(separator: " ", maxSplits: 1)[1]) }.joined(separator: "\n")) == [1, 2, 2, 3, 4])
        #expect(try position("ops") == 4)
        let audit = try edgebuf(["--db", db, "audit", "list", "--json"])
        #expect(audit.stdout.contains(#""event":"inbox_exec_failed""#))
        #expect(audit.stdout.contains(#""result":"exit status 3""#))
    }

    @Test func execSkipsAPoisonNotificationAfterMaxAttemptsAndAuditsIt() throws {
        try fill(1...3)
        let log = dir.file("handled.log")
        let script = #"line=$(cat); case "$line" in *'"n":2}'*) exit 1 ;; esac; echo "$line" >> "# + log
        let result = try edgebuf(["--db", db, "inbox", "exec", "--consumer", "ops", "--once", "--max-attempts", "2",
                                  "--retry-initial", "0.05", "--", "/bin/sh", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(numbers(try String(contentsOfFile: log, encoding: .utf8)) == [1, 3])
        let audit = try edgebuf(["--db", db, "audit", "list", "--json"]).stdout
        #expect(audit.components(separatedBy: #""event":"inbox_exec_failed""#).count - 1 == 1)
        #expect(audit.contains(#""event":"inbox_exec_skipped""#))
    }

    @Test func execKillsAHungHandlerAfterTheTimeout() throws {
        try fill(1...1)
        let started = ContinuousClock.now
        let result = try edgebuf(["--db", db, "inbox", "exec", "--consumer", "ops", "--once", "--max-attempts", "1",
                                  "--timeout", "0.5", "--", "/bin/sh", "-c", "sleep 30"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("killed after the --timeout"))
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    /// A consumer whose cursor is behind what retention removed is told, like a gap.
    @Test func aConsumerBehindRetentionGetsAGapLine() throws {
        try fill(1...6)
        let connection = try Database.open(path: db)
        try connection.transaction { _ = try InboxStore(connection).purge(maxRecords: 2, maxAgeMilliseconds: nil, now: 100) }
        let result = try edgebuf(["--db", db, "inbox", "follow", "--consumer", "late", "--once"])
        #expect(numbers(result.stdout) == [-1, 5, 6])
        #expect(result.stdout.contains("retention removed notifications up to id 4"))
    }
}

/// A child process whose stdout is read line by line as it comes.
final class LineReader: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private var buffer = Data()
    private let chunk: Int

    /// `chunk`: bytes per read (1 for a consumer that leaves the rest in the pipe).
    init(_ executable: String, _ arguments: [String], chunk: Int = 65536) throws {
        self.chunk = chunk
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "EDGEBUF_DB")
        process.environment = environment
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// The next `count` lines; throws if they do not come within the time.
    func lines(_ count: Int, within limit: Duration) throws -> [String] {
        let deadline = ContinuousClock.now + limit
        var result: [String] = []
        let fd = output.fileHandleForReading.fileDescriptor
        while result.count < count {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                result.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                buffer = Data(buffer[(newline + 1)...])
                continue
            }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw LineReaderTimeout(got: result) }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min(remaining.components.seconds * 1000 + 1, 1000))
            guard poll(&poller, 1, ms) > 0 else { continue }
            var bytes = [UInt8](repeating: 0, count: chunk)
            let n = read(fd, &bytes, bytes.count)
            if n <= 0 { throw LineReaderTimeout(got: result) }
            buffer.append(contentsOf: bytes[0..<n])
        }
        return result
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Closes our end of its stdout, as a consumer that died would.
    func closeOutput() {
        try? output.fileHandleForReading.close()
    }

    /// Its exit status, or nil if it did not exit in time (it is killed then).
    func wait(within limit: Duration) -> Int32? {
        let deadline = ContinuousClock.now + limit
        while process.isRunning, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            kill()
            return nil
        }
        return process.terminationStatus
    }
}

struct LineReaderTimeout: Error, CustomStringConvertible {
    let got: [String]
    var description: String { "timed out after \(got.count) lines: \(got)" }
}
