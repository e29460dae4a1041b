import Foundation
import Synchronization

/// The processes and scratch directories the drain benchmark owns, so that nothing outlives
/// it: a normal exit stops each one explicitly, and SIGINT, SIGTERM or SIGHUP stops whatever
/// is still registered (by pid, never by name) and removes the directories before exiting.
/// tools/bench kills any nginx left in its work directory by pid file as a last resort (for a
/// crash, where no handler runs).
enum ChildProcesses {
    private struct Registry {
        var pids: Set<pid_t> = []
        var directories: Set<String> = []
    }

    private static let registry = Mutex(Registry())

    /// Starts `path` with `arguments` (stdio inherited) and registers its pid.
    static func spawn(_ path: String, _ arguments: [String]) throws -> pid_t {
        var pid: pid_t = 0
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let rc = posix_spawn(&pid, path, nil, nil, argv, environ)
        guard rc == 0 else {
            throw BenchError("cannot start \(path): \(String(cString: strerror(rc)))")
        }
        registry.withLock { _ = $0.pids.insert(pid) }
        return pid
    }

    /// Waits for a registered child and unregisters it; returns its wait status and usage.
    static func wait(_ pid: pid_t) throws -> (status: Int32, usage: rusage) {
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else {
                throw BenchError("wait4(\(pid)) failed: \(String(cString: strerror(errno)))")
            }
        }
        registry.withLock { _ = $0.pids.remove(pid) }
        return (status, usage)
    }

    /// Whether a registered child has exited (it is reaped and unregistered if so).
    static func hasExited(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return false }
        registry.withLock { _ = $0.pids.remove(pid) }
        return true
    }

    /// Sends `signal` to a registered child, then waits up to `grace` for it to exit and
    /// kills it if it has not.
    static func stop(_ pid: pid_t, signal: Int32 = SIGTERM, grace: Duration = .seconds(5)) {
        guard registry.withLock({ $0.pids.contains(pid) }) else { return }
        kill(pid, signal)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if hasExited(pid) { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        _ = try? wait(pid)
    }

    /// Creates a fresh directory `parent/prefix.XXXXXX`, removed at exit or on a signal.
    static func makeDirectory(under parent: String, prefix: String) throws -> String {
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        var template = Array(((parent as NSString).appendingPathComponent(prefix + ".XXXXXX")).utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError("cannot create a directory under \(parent): \(String(cString: strerror(errno)))")
        }
        let path = String(cString: made)
        registry.withLock { _ = $0.directories.insert(path) }
        return path
    }

    /// Removes a directory made by `makeDirectory`.
    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
        registry.withLock { _ = $0.directories.remove(path) }
    }

    /// Stops every registered child and removes every registered directory.
    static func cleanUp() {
        let (pids, directories) = registry.withLock { ($0.pids, $0.directories) }
        for pid in pids { stop(pid, grace: .seconds(2)) }
        for directory in directories { removeDirectory(directory) }
    }

    /// On SIGINT, SIGTERM or SIGHUP: clean up and exit with 128 + the signal.
    static func cleanUpOnSignals() {
        signalSources.withLock { _ in }  // creates them, once
    }

    private static let signalSources: Mutex<[any DispatchSourceSignal]> = {
        let sources = [SIGINT, SIGTERM, SIGHUP].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)  // delivered to the dispatch source instead
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(Data("edgebuf-bench: signal \(number), stopping nginx and children\n".utf8))
                cleanUp()
                exit(128 + number)
            }
            source.resume()
            return source
        }
        return Mutex(sources)
    }()
}

extension [String] {
    /// The value after `name` in a command line (`--dir DIR`), nil when it is not there.
    func option(_ name: String) -> String? {
        guard let i = firstIndex(of: name), i + 1 < count else { return nil }
        return self[i + 1]
    }
}

/// A benchmark failure: what went wrong, for stderr.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
