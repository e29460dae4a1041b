import Foundation
import TestSupport

/// An application feeding edgebuf while a test attacks it: on a thread of its own, runs
/// `edgebuf enqueue --jsonl --ack` again and again with `batch` new records, and keeps the
/// seqs edgebuf acknowledged and how each attempt ended.
final class Producer: @unchecked Sendable {
    /// One `enqueue` process.
    struct Attempt {
        let started: ContinuousClock.Instant
        let ended: ContinuousClock.Instant
        let result: BoundedResult
        let acked: [Int]
    }

    private let lock = NSLock()
    private var attempts: [Attempt] = []
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)
    private var running = false

    let device: Device
    let batch: Int
    let pad: Int
    let pause: Duration
    private var nextSeq: Int
    private let firstSeq: Int
    /// Extra arguments before `enqueue` (for example another `--config`).
    let launcher: [String]

    init(device: Device, firstSeq: Int = 1, batch: Int = 20, pad: Int = 0, pause: Duration = .milliseconds(50), launcher: [String] = []) {
        self.device = device
        self.nextSeq = firstSeq
        self.firstSeq = firstSeq
        self.batch = batch
        self.pad = pad
        self.pause = pause
        self.launcher = launcher
    }

    func start() {
        running = true
        let thread = Thread { [self] in
            while !isStopping {
                attemptOnce()
                sleep(pause)
            }
            done.signal()
        }
        thread.name = "proof-producer"
        thread.start()
    }

    /// Stops after the attempt in progress; returns when it has finished.
    func stop() {
        guard running else { return }
        lock.withLock { stopping = true }
        done.wait()
        running = false
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    /// One enqueue of the next `batch` seqs.
    func attemptOnce() {
        let first = lock.withLock { () -> Int in
            defer { nextSeq += batch }
            return nextSeq
        }
        let lines = (first..<first + batch).map { Records.property($0, pad: pad) }
        let input = Array((lines.joined(separator: "\n") + "\n").utf8)
        let started = ContinuousClock.now
        let arguments = ["--db", device.db, "--config", device.config, "enqueue", "--jsonl", "--ack"]
        let result: BoundedResult
        do {
            if launcher.isEmpty {
                result = try edgebufBounded(arguments, stdin: input, timeout: .seconds(60))
            } else {
                result = try runBounded(launcher[0], Array(launcher.dropFirst()) + [edgebufBinary] + arguments,
                                        stdin: input, timeout: .seconds(60))
            }
        } catch {
            return
        }
        let acked = ((try? Acks.parse(result.stdoutText)) ?? []).map { first + $0.line - 1 }
        lock.withLock { attempts.append(Attempt(started: started, ended: .now, result: result, acked: acked)) }
    }

    var all: [Attempt] { lock.withLock { attempts } }
    /// Every seq handed to an enqueue so far.
    var attempted: ClosedRange<Int> { lock.withLock { firstSeq...max(firstSeq, nextSeq - 1) } }
    var acked: [Int] { all.flatMap(\.acked) }
}
