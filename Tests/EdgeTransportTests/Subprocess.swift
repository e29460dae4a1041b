import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process whose stdout lines the test can wait for. Killed on `stop()` / deinit.
final class Subprocess: @unchecked Sendable {
    let process = Process()
    private let output = LineBuffer()
    private let stdinPipe = Pipe()

    init(_ executable: String, _ arguments: [String], directory: URL? = nil) throws {
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        // The child's stdin stays open as long as this process lives (see the server script).
        process.standardInput = stdinPipe
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                output.append(data)
            }
        }
        try process.run()
    }

    deinit { stop() }

    /// Waits for a line starting with `prefix` (polling; returns as soon as it is there).
    func line(startingWith prefix: String, within timeout: Duration = .seconds(10)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = output.lines.first(where: { $0.hasPrefix(prefix) }) { return line }
            if !process.isRunning, output.lines.first(where: { $0.hasPrefix(prefix) }) == nil {
                throw TestFailure("\(process.arguments ?? []) exited (\(process.terminationStatus)) before printing \(prefix)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        // One more look: on a loaded machine this task may resume only after the deadline,
        // with the line long there (the blocking tests of other suites share the thread pool).
        if let line = output.lines.first(where: { $0.hasPrefix(prefix) }) { return line }
        throw TestFailure("no line starting with \(prefix) within \(timeout); got \(output.lines)")
    }

    /// Every line printed so far.
    var lines: [String] { output.lines }

    /// SIGKILL, not `terminate()`: children of the test runner inherit a signal mask that
    /// blocks SIGTERM (seen here: SigBlk includes it), so SIGTERM would never arrive.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Lines read from a pipe, appended on a Dispatch thread, read by tests.
final class LineBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = Data()
    private var complete: [String] = []

    func append(_ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        pending.append(data)
        while let newline = pending.firstIndex(of: 10) {
            complete.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
            pending = Data(pending[(newline + 1)...])
        }
    }

    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return complete
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command to completion; returns its exit status and stdout.
@discardableResult
func runCommand(_ arguments: [String], in directory: URL? = nil, allowFailure: Bool = false) throws -> (status: Int32, output: String) {
    let process = Process()
    let pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let output = String(decoding: data, as: UTF8.self)
    if process.terminationStatus != 0 && !allowFailure {
        throw TestFailure("\(arguments.joined(separator: " ")) failed with status \(process.terminationStatus)")
    }
    return (process.terminationStatus, output)
}

/// A TCP port on 127.0.0.1 that the kernel just handed out and that is free again.
func freePort() throws -> Int {
    let socket = try BoundSocket()
    return socket.port
}

/// A TCP socket bound to 127.0.0.1 on a kernel-chosen port but NOT listening: connecting to
/// it is refused, and no other process can take the port while it is open.
final class BoundSocket {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0
            }
        }
        guard bound else { close(fd); throw TestFailure("bind failed") }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}
