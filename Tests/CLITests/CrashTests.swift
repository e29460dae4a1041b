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

    /// Starts `enqueue --jsonl --ack`, streams lines from `firstSeq`, kills it with SIGKILL
    /// after `delay`, and returns the acknowledged seqs and the next unsent seq.
    func streamAndKill(db: String, firstSeq: Int, delay: Duration) throws -> (acked: [Int], nextSeq: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: edgebufBinary)
        process.arguments = ["--db", db, "enqueue", "--jsonl", "--ack"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let sent = SeqBox(firstSeq)
        let writer = Thread {
            var seq = firstSeq
            let fd = input.fileHandleForWriting.fileDescriptor
            while true {
                var chunk = ""
                for _ in 0..<200 { chunk += line(seq); seq += 1 }
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
                sent.set(seq)
                if !ok { return }
            }
        }
        writer.start()
        let collected = DataBox()
        let readerDone = DispatchSemaphore(value: 0)
        Thread {
            collected.set(output.fileHandleForReading.readDataToEndOfFile())
            readerDone.signal()
        }.start()
        Thread.sleep(forTimeInterval: Double(delay.components.attoseconds) / 1e18 + Double(delay.components.seconds))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        readerDone.wait()
        // Only complete lines were acknowledged.
        let text = String(decoding: collected.get(), as: UTF8.self)
        var acked: [Int] = []
        for ackLine in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            guard let range = ackLine.range(of: #""line":"#), let end = ackLine[range.upperBound...].firstIndex(of: ",") else { continue }
            if let n = Int(ackLine[range.upperBound..<end]) { acked.append(firstSeq + n - 1) }
        }
        return (acked, sent.get())
    }

    @Test func everyAcknowledgedRecordSurvivesKill9AndNoneIsStoredTwice() throws {
        let db = dir.file("kill.db")
        var acked: [Int] = []
        var seq = 0
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<12 {
            let delay = Duration.milliseconds(Int.random(in: 100...600, using: &generator))
            let cycle = try streamAndKill(db: db, firstSeq: seq, delay: delay)
            acked += cycle.acked
            seq = cycle.nextSeq + 1
        }
        #expect(acked.count > 1000, "the stream made progress between kills")
        let connection = try Database.open(path: db)
        let stmt = try connection.prepare("SELECT json_extract(payload, '$.properties.seq') AS s, count(*) FROM outbox GROUP BY s HAVING count(*) > 1")
        #expect(try !stmt.step(), "no record is stored twice")
        let present = try connection.prepare("SELECT json_extract(payload, '$.properties.seq') FROM outbox")
        var stored = Set<Int>()
        while try present.step() { stored.insert(present.int(0)) }
        let missing = acked.filter { !stored.contains($0) }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(10))")
        #expect(try connection.scalarText("PRAGMA integrity_check") == "ok")
        #expect(try OutboxStore(connection).total().records == Int64(stored.count), "running totals survived the kills")
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

final class SeqBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int
    init(_ value: Int) { self.value = value }
    func set(_ v: Int) { lock.lock(); value = v; lock.unlock() }
    func get() -> Int { lock.lock(); defer { lock.unlock() }; return value }
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
