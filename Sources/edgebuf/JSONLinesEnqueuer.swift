import EdgeBuffer
import EdgeStore
import Foundation
import Synchronization

/// Streams JSON lines into the outbox: reads what is available, validates each line, and
/// commits the good ones of each read as one group while the next read is parsed. Memory is
/// bounded by the read size and the two groups in flight, not by the input.
struct JSONLinesEnqueuer {
    let outbox: Outbox
    let strict: Bool
    let ack: Bool
    let showProgress: Bool

    /// A line longer than this is refused without being buffered whole.
    static let maximumLineBytes = 4 << 20
    /// Bytes read per system call.
    static let readSize = 256 << 10
    /// Groups committed while the next is parsed.
    static let window = 2
    /// A group is committed when it holds this many records, when its first record has waited
    /// `maximumGroupDelay`, or as soon as the input has no more bytes ready: a slow producer
    /// gets its acknowledgements at once, a fast one at least every few milliseconds.
    static let maximumGroup = 8192
    static let maximumGroupDelay: Duration = .milliseconds(20)

    struct Summary {
        var lines = 0
        var stored = 0
        var rejected = 0
    }

    /// A group of records on its way to the outbox.
    final class Group: Sendable {
        let lineNumbers: [Int]
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<[Int64], any Error>?>(nil)
        init(lineNumbers: [Int]) { self.lineNumbers = lineNumbers }
    }

    /// Whether a read of `fd` would return (bytes, end of input or an error) within
    /// `milliseconds`.
    static func inputReady(_ fd: Int32, milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, milliseconds) != 0
    }

    /// The index of the first newline in `buffer[from..<to]` (memchr: the scan for line ends
    /// runs over every byte of the input).
    static func newline(in buffer: [UInt8], from: Int, to: Int) -> Int? {
        buffer.withUnsafeBytes { raw in
            memchr(raw.baseAddress! + from, 0x0a, to - from).map { $0 - UnsafeMutableRawPointer(mutating: raw.baseAddress!) }
        }
    }

    func run(path: String?) throws -> Summary {
        let fd: Int32
        if let path {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw CLIFailure(status: .noInput, message: "cannot read \(path): \(String(cString: strerror(errno)))")
            }
        } else {
            fd = 0
        }
        defer { if fd != 0 { close(fd) } }

        var summary = Summary()
        var inFlight: [Group] = []
        var carry: [UInt8] = []
        var skippingLongLine = false
        var buffer = [UInt8](repeating: 0, count: Self.readSize)
        var stop = false
        var records: [NewRecord] = []
        var lines: [Int] = []
        var groupStarted: ContinuousClock.Instant?
        let progress = Progress(enabled: showProgress)

        // Counts a stored group and prints its acks.
        func acknowledge(_ group: Group, _ ids: [Int64]) {
            summary.stored += ids.count
            progress.update(stored: summary.stored)
            if ack {
                var out = ""
                out.reserveCapacity(ids.count * 24)
                for (line, id) in zip(group.lineNumbers, ids) { out += "{\"line\":\(line),\"id\":\(id)}\n" }
                FileOutput.standardOutput.write(out)
            }
        }

        // Waits for the oldest group, prints its acks, and throws if it failed.
        func settleOldest() throws {
            let group = inFlight.removeFirst()
            group.done.wait()
            switch group.result.withLock({ $0! }) {
            case .success(let ids):
                acknowledge(group, ids)
            case .failure(let error):
                func span(_ group: Group) -> String { "\(group.lineNumbers.first ?? 0)...\(group.lineNumbers.last ?? 0)" }
                // Later groups were queued behind this one and may have been committed (the
                // daemon can free space in between): every stored line must be acknowledged,
                // or a producer that resends the unacknowledged ones stores them twice.
                var refused = [span(group)]
                var lastLine = group.lineNumbers.last ?? 0
                for later in inFlight {
                    later.done.wait()
                    lastLine = max(lastLine, later.lineNumbers.last ?? 0)
                    switch later.result.withLock({ $0! }) {
                    case .success(let ids): acknowledge(later, ids)
                    case .failure: refused.append(span(later))
                    }
                }
                inFlight.removeAll()
                throw CLIFailure(status: ExitStatus.of(error), message:
                    "\(error)\nlines \(refused.joined(separator: ", ")) were NOT stored, nor any line after line \(lastLine); \(summary.stored) records were stored\(ack ? " (each acknowledged on stdout)" : "")")
            }
        }

        func submit(_ records: [NewRecord], lines: [Int]) throws {
            guard !records.isEmpty else { return }
            if inFlight.count >= Self.window { try settleOldest() }
            let group = Group(lineNumbers: lines)
            inFlight.append(group)
            outbox.submit(records) { result in
                group.result.withLock { $0 = result }
                group.done.signal()
            }
        }

        while !stop {
            // While no input is ready, hand out the acknowledgements of the groups committed
            // meanwhile, so a producer that waits for its ack before it sends more gets it
            // (settling only when more input comes would leave it waiting for ever). Input
            // that comes within the poll is read at once: the next group is still parsed
            // while the last one commits.
            while !inFlight.isEmpty && !Self.inputReady(fd, milliseconds: 2) {
                while inFlight.first?.result.withLock({ $0 != nil }) == true { try settleOldest() }
            }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, Self.readSize) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIFailure(status: .noInput, message: "reading input failed: \(String(cString: strerror(errno)))")
            }
            let atEOF = n == 0
            let now = Timestamp.nowMilliseconds()

            func handle(_ line: ArraySlice<UInt8>) {
                summary.lines += 1
                let number = summary.lines
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { return }  // blank line
                do {
                    let input = try RecordInput.fromJSONLine(line)
                    records.append(try input.validated(now: now, maxBodyBytes: outbox.configuration.maxBodyBytes))
                    lines.append(number)
                } catch {
                    reject(number, "\(error)")
                }
            }

            func reject(_ number: Int, _ reason: String) {
                summary.rejected += 1
                printError("edgebuf: line \(number): \(reason)")
                if strict { stop = true }
            }

            var start = 0
            let chunk = buffer[0..<n]
            while start < n && !stop, let index = Self.newline(in: buffer, from: start, to: n) {
                if skippingLongLine {
                    skippingLongLine = false
                } else if carry.isEmpty {
                    handle(chunk[start..<index])
                } else {
                    carry.append(contentsOf: chunk[start..<index])
                    handle(carry[...])
                    carry.removeAll(keepingCapacity: carry.count <= Self.readSize)
                }
                start = index + 1
            }
            if !stop && start < n && !skippingLongLine {
                carry.append(contentsOf: chunk[start..<n])
                if carry.count > Self.maximumLineBytes {
                    summary.lines += 1
                    reject(summary.lines, "line: longer than \(Self.maximumLineBytes) bytes, so it cannot hold a record that fits in a request. Split the data.")
                    carry.removeAll()
                    skippingLongLine = true
                }
            }
            if atEOF && !stop && !carry.isEmpty {
                handle(carry[...])  // a last line without a newline
                carry.removeAll()
            }
            // A short read means the producer has nothing more ready: commit now.
            if groupStarted == nil && !records.isEmpty { groupStarted = .now }
            let waited = groupStarted.map { ContinuousClock.now - $0 >= Self.maximumGroupDelay } ?? false
            if atEOF || n < Self.readSize || records.count >= Self.maximumGroup || waited || stop {
                groupStarted = nil
                try submit(records, lines: lines)
                records.removeAll(keepingCapacity: true)
                lines.removeAll(keepingCapacity: true)
            }
            if atEOF { break }
        }
        while !inFlight.isEmpty { try settleOldest() }
        progress.finish(stored: summary.stored)
        return summary
    }
}

/// Progress on stderr for long streams: records stored and the rate, at most twice a second.
final class Progress {
    let enabled: Bool
    let started = Date()
    var lastPrint = Date.distantPast

    init(enabled: Bool) { self.enabled = enabled }

    func update(stored: Int) {
        guard enabled, Date().timeIntervalSince(lastPrint) >= 0.5 else { return }
        lastPrint = Date()
        let elapsed = max(Date().timeIntervalSince(started), 0.001)
        FileOutput.standardError.write("\renqueued \(stored) records (\(Int(Double(stored) / elapsed))/s)   ")
    }

    func finish(stored: Int) {
        guard enabled, lastPrint != Date.distantPast else { return }
        let elapsed = max(Date().timeIntervalSince(started), 0.001)
        FileOutput.standardError.write("\renqueued \(stored) records in \(String(format: "%.1f", elapsed)) s (\(Int(Double(stored) / elapsed))/s)\n")
    }
}
