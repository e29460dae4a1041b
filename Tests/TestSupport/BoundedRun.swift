import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a bounded run ended: its exit code or the signal that killed it, whether the test had
/// to kill it for overrunning, and everything it wrote, as bytes (a fuzzer's input and output
/// need not be UTF-8).
public struct BoundedResult: Sendable {
    /// The exit code, or nil when a signal ended the process.
    public let exitCode: Int32?
    /// The signal that ended the process, if one did (SIGKILL after a timeout included).
    public let signal: Int32?
    /// The process was still running at the deadline and was killed with SIGKILL.
    public let timedOut: Bool
    public let stdout: [UInt8]
    public let stderr: [UInt8]
    /// Wall time from start to exit.
    public let seconds: Double

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }

    /// A one-line summary for assertion messages.
    public var summary: String {
        if timedOut { return "killed after \(String(format: "%.1f", seconds)) s (hung)" }
        if let signal { return "killed by signal \(signal)" }
        return "exit \(exitCode ?? -1)"
    }
}

/// Runs `executable` with `arguments`, writing `stdin` to it from another thread, and kills it
/// with SIGKILL if it has not exited after `timeout`. Never throws for the child's behaviour:
/// a crash or a hang is a result the caller asserts on.
public func runBounded(_ executable: String, _ arguments: [String], stdin: [UInt8] = [],
                       environment: [String: String] = [:], removing: [String] = [],
                       timeout: Duration) throws -> BoundedResult {
    signal(SIGPIPE, SIG_IGN)  // a child that exits before reading all its input must not kill us
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "EDGEBUF_DB")
    for key in removing { env.removeValue(forKey: key) }
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let outPipe = Pipe(), errPipe = Pipe(), inPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    process.standardInput = inPipe
    let started = ContinuousClock.now
    try process.run()

    let group = DispatchGroup()
    let out = ByteSink(), err = ByteSink()
    DispatchQueue.global().async(group: group) { out.set(outPipe.fileHandleForReading.readDataToEndOfFile()) }
    DispatchQueue.global().async(group: group) { err.set(errPipe.fileHandleForReading.readDataToEndOfFile()) }
    let input = stdin
    let writer = inPipe.fileHandleForWriting.fileDescriptor
    DispatchQueue.global().async(group: group) {
        input.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(writer, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }  // EPIPE: the child stopped reading
                offset += n
            }
        }
        try? inPipe.fileHandleForWriting.close()
    }

    let deadline = started + timeout
    var timedOut = false
    while process.isRunning {
        if ContinuousClock.now >= deadline {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            break
        }
        usleep(5_000)
    }
    process.waitUntilExit()
    let elapsed = ContinuousClock.now - started
    // The writer may be blocked on a full pipe of a killed child: closing our read ends is
    // not needed, the child's death closes its end and the write fails with EPIPE.
    group.wait()
    let bySignal = process.terminationReason == .uncaughtSignal
    return BoundedResult(exitCode: bySignal ? nil : process.terminationStatus,
                         signal: bySignal ? process.terminationStatus : nil,
                         timedOut: timedOut,
                         stdout: out.bytes, stderr: err.bytes,
                         seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

/// The built edgebuf, bounded.
public func edgebufBounded(_ arguments: [String], stdin: [UInt8] = [], environment: [String: String] = [:],
                           timeout: Duration = .seconds(60)) throws -> BoundedResult {
    try runBounded(edgebufBinary, arguments, stdin: stdin, environment: environment, timeout: timeout)
}

/// Bytes collected on another thread.
private final class ByteSink: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    var bytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return [UInt8](data) }
}
