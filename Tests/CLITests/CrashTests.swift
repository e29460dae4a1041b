import EdgeStore
import Foundation
import TestSupport
import Testing

/// `kill -9` and concurrent writers against the real binary.
@Suite(.serialized) struct CrashTests {
    let dir = TemporaryDirectory()

    init() { signal(SIGPIPE, SIG_IGN) }

    func line(_ seq: Int) -> String {
        #"{"kind":"property","device_id":"d\#(seq % 5)","service_id":"S","properties":{"seq":\#(seq)}}"# + "\n"
    }

    /// A line of the producer's stream: record `seq`, sent in `attempt` (a resend of an
    /// unacknowledged record carries its seq again, in a later attempt).
    func line(_ seq: Int, attempt: Int) -> String {
        #"{"kind":"property","device_id":"d\#(seq % 5)","service_id":"S","properties":{"seq":\#(seq),"attempt":\#(attempt)}}"# + "\n"
    }

    /// What one `enqueue --jsonl --ack` process did.
    struct Attempt {
        /// The seq of each line in stream order (line N is `seqs[N - 1]`), as far as any of it
        /// was handed to the pipe.
        var seqs: [Int]
        /// Complete acknowledgement lines: line number and the id it names.
        var acks: [(line: Int, id: Int64)]
        var terminationReason: Process.TerminationReason
        var terminationStatus: Int32
    }

    /// Runs `enqueue --jsonl --ack` as attempt `attempt`: streams `resend` first, then fresh
    /// seqs from `firstFresh` (none when `delay` is nil), and kills it with SIGKILL after
    /// `delay`, or, without a delay, closes its stdin after `resend` and lets it finish.
    func stream(db: String, attempt: Int, resend: [Int], firstFresh: Int, killAfter delay: Duration?) throws -> Attempt {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: edgebufBinary)
        process.arguments = ["--db", db, "enqueue", "--jsonl", "--ack"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handed = SeqListBox()
        let writer = Thread {
            let fd = input.fileHandleForWriting.fileDescriptor
            var pending = resend[...]
            var fresh = firstFresh
            while delay != nil || !pending.isEmpty {
                var seqs: [Int] = []
                while seqs.count < 200 && (delay != nil || !pending.isEmpty) {
                    if let seq = pending.popFirst() { seqs.append(seq) } else { seqs.append(fresh); fresh += 1 }
                }
                let chunk = seqs.map { line($0, attempt: attempt) }.joined()
                handed.append(seqs)  // before the write: a line partly written may be stored
                let ok = chunk.utf8CString.withUnsafeBufferPointer { buf -> Bool in
                    var offset = 0
                    let count = buf.count - 1
                    while offset < count {
                        let n = write(fd, buf.baseAddress! + offset, count - offset)
                        if n <= 0 { return false }
                        offset += n
                    }
                    return true
                }
                if !ok { return }
            }
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let collected = DataBox()
        let readerDone = DispatchSemaphore(value: 0)
        Thread {
            collected.set(output.fileHandleForReading.readDataToEndOfFile())
            readerDone.signal()
        }.start()
        if let delay {
            Thread.sleep(forTimeInterval: Double(delay.components.attoseconds) / 1e18 + Double(delay.components.seconds))
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        if delay != nil { try? input.fileHandleForWriting.close() }
        readerDone.wait()
        // The writer stops at its first failed write (EPIPE once the child is gone).
        let writerDeadline = Date().addingTimeInterval(10)
        while writer.isExecuting && Date() < writerDeadline { Thread.sleep(forTimeInterval: 0.01) }
        if writer.isExecuting { Issue.record("attempt \(attempt): the writer thread is still writing 10 s after the child ended") }
        // Only complete lines were acknowledged.
        let text = String(decoding: collected.get(), as: UTF8.self)
        var acks: [(line: Int, id: Int64)] = []
        for ackLine in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            guard let ack = try? parseObject(String(ackLine)), let number = ack.int("line"), let id = ack.int("id") else {
                Issue.record("not an acknowledgement: \(ackLine.prefix(200))")
                continue
            }
            acks.append((number, Int64(id)))
        }
        return Attempt(seqs: handed.all, acks: acks, terminationReason: process.terminationReason, terminationStatus: process.terminationStatus)
    }

    /// 12 producers killed with SIGKILL at random moments of a `--jsonl --ack` stream; after
    /// each kill the next one first resends every line not acknowledged, as a producer must,
    /// and a last one resends what is left and ends its input. Each acknowledgement names the
    /// row holding exactly its line; no line of an attempt is stored twice, nothing is stored
    /// that was not sent; a line stored without its acknowledgement (committed just before a
    /// kill) comes after the last acknowledged line of its attempt; every record ends up
    /// acknowledged exactly once.
    @Test func everyAcknowledgedRecordSurvivesKill9AndNoneIsStoredTwice() throws {
        let db = dir.file("kill.db")
        var attempts: [Attempt] = []
        var unacknowledged: [Int] = []
        var nextFresh = 0
        var resent = 0
        var generator = SystemRandomNumberGenerator()
        for attempt in 0..<12 {
            let delay = Duration.milliseconds(Int.random(in: 100...600, using: &generator))
            let run = try stream(db: db, attempt: attempt, resend: unacknowledged, firstFresh: nextFresh, killAfter: delay)
            #expect(run.terminationReason == .uncaughtSignal && run.terminationStatus == SIGKILL,
                    "attempt \(attempt) must end by SIGKILL; it ended by \(run.terminationReason == .exit ? "exit" : "signal") \(run.terminationStatus)")
            resent += min(unacknowledged.count, run.seqs.count)
            let acked = Set(run.acks.compactMap { $0.line <= run.seqs.count ? run.seqs[$0.line - 1] : nil })
            // Resend what was not acknowledged, in order: the old backlog (sent or not), then
            // the fresh lines handed to this attempt.
            let freshHanded = run.seqs.dropFirst(unacknowledged.count)
            unacknowledged = (unacknowledged + freshHanded).filter { !acked.contains($0) }
            nextFresh += freshHanded.count
            attempts.append(run)
        }
        let last = try stream(db: db, attempt: attempts.count, resend: unacknowledged, firstFresh: nextFresh, killAfter: nil)
        #expect(last.terminationReason == .exit && last.terminationStatus == 0, "the last producer ends its input and exits 0 (\(last.terminationStatus))")
        let resentAll = last.seqs == unacknowledged
        #expect(resentAll, "the last producer sent exactly the \(unacknowledged.count) lines not acknowledged")
        attempts.append(last)
        let killedAcks = attempts.dropLast().reduce(0) { $0 + $1.acks.count }
        #expect(killedAcks > 1000, "the stream made progress between kills (\(killedAcks) acknowledged)")
        #expect(resent > 0, "lines not acknowledged before a kill were resent")

        let connection = try Database.open(path: db)
        #expect(try connection.scalarText("PRAGMA integrity_check") == "ok")
        let rows = try connection.prepare("SELECT id, json_extract(payload, '$.properties.seq'), json_extract(payload, '$.properties.attempt') FROM outbox")
        var stored: [Int64: (seq: Int, attempt: Int)] = [:]
        var copies: [String: Int] = [:]  // "seq/attempt"
        while try rows.step() {
            stored[rows.int64(0)] = (rows.int(1), rows.int(2))
            copies["\(rows.int(1))/\(rows.int(2))", default: 0] += 1
        }
        let twice = copies.filter { $0.value > 1 }.keys.sorted()
        let noneTwice = twice.isEmpty  // (a Bool, so that a failure does not print the whole list)
        #expect(noneTwice, "lines stored twice in one attempt (seq/attempt): \(twice.prefix(10))")
        #expect(try OutboxStore(connection).total().records == Int64(stored.count), "running totals survived the kills")

        var ackedIn: [Int: [Int]] = [:]  // seq: the attempts that acknowledged it
        var wrongAcks: [String] = []
        for (number, attempt) in attempts.enumerated() {
            for ack in attempt.acks {
                guard ack.line >= 1 && ack.line <= attempt.seqs.count else {
                    wrongAcks.append("attempt \(number) acknowledged line \(ack.line), which it was never sent")
                    continue
                }
                let seq = attempt.seqs[ack.line - 1]
                ackedIn[seq, default: []].append(number)
                guard let row = stored[ack.id] else {
                    wrongAcks.append("attempt \(number) line \(ack.line) (seq \(seq)): id \(ack.id) acknowledged but not stored")
                    continue
                }
                if row.seq != seq || row.attempt != number {
                    wrongAcks.append("attempt \(number) line \(ack.line) (seq \(seq)): id \(ack.id) holds seq \(row.seq) of attempt \(row.attempt)")
                }
            }
        }
        let acksRight = wrongAcks.isEmpty
        #expect(acksRight, "\(wrongAcks.count) acknowledgements do not name their stored line: \(wrongAcks.prefix(5))")
        let total = nextFresh
        let notOnce = (0..<total).filter { ackedIn[$0]?.count != 1 }
        let eachOnce = notOnce.isEmpty
        #expect(eachOnce, "\(notOnce.count) records not acknowledged exactly once: \(notOnce.prefix(10).map { "\($0): \(ackedIn[$0] ?? [])" })")

        // Rows without an acknowledgement: lines a killed attempt committed after its last ack.
        let ackedIDs = Set(attempts.flatMap { $0.acks.map(\.id) })
        var extra = 0
        var misplaced: [String] = []
        for (id, row) in stored where !ackedIDs.contains(id) {
            extra += 1
            guard row.attempt < attempts.count - 1, let number = attempts[row.attempt].seqs.firstIndex(of: row.seq).map({ $0 + 1 }) else {
                misplaced.append("id \(id): seq \(row.seq) of attempt \(row.attempt), never sent in that attempt or in the clean one")
                continue
            }
            let lastAcked = attempts[row.attempt].acks.map(\.line).max() ?? 0
            if number <= lastAcked { misplaced.append("id \(id): line \(number) of attempt \(row.attempt), before its last ack \(lastAcked)") }
        }
        let extraInPlace = misplaced.isEmpty
        #expect(extraInPlace, "\(misplaced.count) rows stored without an acknowledgement: \(misplaced.prefix(5))")
        print("kill -9 of enqueue --jsonl --ack: \(attempts.count - 1) kills, \(total) records, \(resent) lines resent, \(extra) rows stored without their acknowledgement (committed just before a kill, so stored again when resent)")
    }

    @Test func twoProcessesWriteTheSameDatabaseAtOnce() throws {
        let db = dir.file("two.db")
        _ = try edgebuf(["--db", db, "init"])
        let files = try (0..<2).map { p -> String in
            let path = dir.file("p\(p).jsonl")
            try (0..<20_000).map { line(p * 100_000 + $0) }.joined().write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let group = DispatchGroup()
        let statuses = StatusBox()
        for file in files {
            DispatchQueue.global().async(group: group) {
                let result = try? edgebuf(["--db", db, "enqueue", "--jsonl", file])
                statuses.append(result?.status ?? -1)
            }
            // Single-record writers at the same time as the streams.
            DispatchQueue.global().async(group: group) {
                for n in 0..<20 {
                    let r = try? edgebuf(["--db", db, "enqueue", "message", "--device", "m", "--name", "n", "--content", "\(n)"])
                    statuses.append(r?.status ?? -1)
                }
            }
        }
        group.wait()
        #expect(statuses.all.allSatisfy { $0 == 0 })
        let connection = try Database.open(path: db)
        #expect(try connection.scalarInt("SELECT count(*) FROM outbox") == 40_040)
        #expect(try OutboxStore(connection).total().records == 40_040)
    }
}

final class SeqListBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func append(_ v: [Int]) { lock.lock(); values += v; lock.unlock() }
    var all: [Int] { lock.lock(); defer { lock.unlock() }; return values }
}

final class StatusBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int32] = []
    func append(_ v: Int32) { lock.lock(); values.append(v); lock.unlock() }
    var all: [Int32] { lock.lock(); defer { lock.unlock() }; return values }
}

final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Data()
    func set(_ v: Data) { lock.lock(); value = v; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return value }
}
