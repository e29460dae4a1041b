import EdgeStore
import EdgeUplink
import Foundation

/// Peak memory of the engine draining a backlog, measured in a process of its own so that
/// the figure is the engine's and not the benchmark's (which holds bodies and records).
///
/// The figure is the child's own VmHWM (peak RSS of the address space it got at exec), which
/// it writes to `--report`. `ru_maxrss` from `wait4` is kept for comparison but is not the
/// child's: glibc's posix_spawn clones with CLONE_VM|CLONE_VFORK, so at exec the kernel
/// folds the high-water RSS of the address space being left, the parent's, into the child's
/// `maxrss` (exec_mmap -> setmax_mm_hiwater_rss). It reads as the parent's peak.
///
/// Hidden mode: `edgebuf-bench drain-child --db PATH --url URL [--report FILE]` drains and
/// exits 0 when the outbox is empty, 1 otherwise.
enum DrainChild {
    static func main(arguments: [String]) async -> Int32 {
        guard let path = arguments.option("--db"), let url = arguments.option("--url") else {
            FileHandle.standardError.write(Data("usage: edgebuf-bench drain-child --db PATH --url URL\n".utf8))
            return 64
        }
        do {
            let engine = try SyncEngine(configuration: DrainWorkload.uplink(url: url), databasePath: path,
                                        databaseOptions: DatabaseOptions(), logger: DrainWorkload.logger)
            guard try await engine.drain() else { throw BenchError("the drain was cancelled") }
            let left = try DrainWorkload.remaining(path: path)
            guard left == 0 else { throw BenchError("\(left) records left after drain()") }
            if let report = arguments.option("--report") {
                try "\(try peakRSSKiB())\n".write(toFile: report, atomically: true, encoding: .utf8)
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("edgebuf-bench drain-child: \(error)\n".utf8))
            return 1
        }
    }

    struct Result: Sendable {
        let seconds: Double
        /// The child's VmHWM.
        let peakRSSKiB: Int
        /// `ru_maxrss` from wait4 (see above: the parent's peak leaks into it).
        let waitMaxRSSKiB: Int
        /// The benchmark's own VmHWM when it spawned the child.
        let parentPeakRSSKiB: Int
    }

    /// Spawns this executable in drain-child mode and waits for it (blocking).
    static func measure(path: String, url: String) throws -> Result {
        let report = path + ".rss"
        let parentPeak = try peakRSSKiB()
        let start = DispatchTime.now().uptimeNanoseconds
        let pid = try ChildProcesses.spawn(executable(), ["drain-child", "--db", path, "--url", url, "--report", report])
        let (status, usage) = try ChildProcesses.wait(pid)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard status == 0 else { throw BenchError("drain-child on \(path) ended with wait status \(status)") }
        defer { try? FileManager.default.removeItem(atPath: report) }
        guard let text = try? String(contentsOfFile: report, encoding: .utf8),
              let peak = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw BenchError("drain-child wrote no peak RSS to \(report)")
        }
        return Result(seconds: seconds, peakRSSKiB: peak, waitMaxRSSKiB: usage.ru_maxrss, parentPeakRSSKiB: parentPeak)
    }

    /// This process's VmHWM in KiB, from /proc/self/status.
    static func peakRSSKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first?.trimmingCharacters(in: .whitespaces) ?? "") else {
            throw BenchError("no VmHWM in /proc/self/status")
        }
        return kib
    }

    /// This executable's path.
    static func executable() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw BenchError("cannot read /proc/self/exe: \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
