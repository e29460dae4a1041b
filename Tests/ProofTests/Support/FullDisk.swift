import Foundation
import TestSupport

/// What an `enqueue --jsonl` that failed says it did NOT store: `lines 1...40, 81...120 were
/// NOT stored, nor any line after line 120; 40 records were stored`.
struct RefusedLines: CustomStringConvertible {
    /// The groups of lines named as not stored.
    let spans: [ClosedRange<Int>]
    /// No line after this one was stored.
    let lastLine: Int

    /// Nil when the message does not have that shape.
    init?(stderr: String) {
        guard let sentence = stderr.split(separator: "\n").first(where: { $0.hasPrefix("lines ") && $0.contains(" were NOT stored, nor any line after line ") }) else {
            return nil
        }
        let parts = sentence.dropFirst("lines ".count).components(separatedBy: " were NOT stored, nor any line after line ")
        guard parts.count == 2, let last = Int(parts[1].prefix { $0.isNumber }) else { return nil }
        var spans: [ClosedRange<Int>] = []
        for span in parts[0].components(separatedBy: ", ") {
            let bounds = span.components(separatedBy: "...").compactMap { Int($0) }
            guard bounds.count == 2, bounds[0] <= bounds[1] else { return nil }
            spans.append(bounds[0]...bounds[1])
        }
        self.spans = spans
        lastLine = last
    }

    /// Whether `line` is one the message says was not stored.
    func refuses(_ line: Int) -> Bool { line > lastLine || spans.contains { $0.contains(line) } }

    var description: String { "\(spans.map { "\($0.lowerBound)...\($0.upperBound)" }.joined(separator: ", ")), after \(lastLine)" }
}

extension ChildProcess {
    /// How many lines of its stderr contain `text`.
    func stderrLines(containing text: String) -> Int {
        stderrText.split(separator: "\n").filter { $0.contains(text) }.count
    }
}

/// What the daemon logs (at notice level) when a received batch could not be committed.
let inboxStoreFailedLine = "downlink could not store received notifications"

/// What the daemon logs when the result of an answered uplink request (the delete of the
/// delivered records and the request's audit row) could not be committed.
let uplinkCommitFailedLine = "uplink could not store the result of a request"

/// What the daemon logs when only the audit row of an answered uplink request (a retry, a
/// split) could not be written, and waits for the next commit.
let uplinkAuditDeferredLine = "uplink could not audit a request"

/// A small tmpfs mounted on `directory` in a private mount namespace (`unshare -m`) held open
/// by a `sleep`: the rest of the machine never sees the mount, and it goes away with the last
/// process in the namespace. Commands reach it through `launcher` (`nsenter -m`). Needs root.
final class SmallFileSystem: @unchecked Sendable {
    let directory: String
    let holder: ChildProcess
    private let nsenter: String

    static let isAvailable: Bool = {
        guard geteuid() == 0, let unshare = try? which("unshare"), (try? which("nsenter")) != nil else { return false }
        let probe = try? runBounded(unshare, ["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"], timeout: .seconds(10))
        return probe?.exitCode == 0
    }()

    /// Mounts a tmpfs of `bytes` on `directory` (created if missing); `log` is a path prefix
    /// for the holder's output.
    init(directory: String, bytes: Int, log: String) throws {
        self.directory = directory
        mkdir(directory, 0o700)
        nsenter = try which("nsenter")
        // `$0` is the directory, `$1` the size; `sleep` keeps the namespace (and the mount) alive.
        let script = #"mount -t tmpfs -o size="$1",mode=0700 tmpfs "$0" && echo mounted && exec sleep 900"#
        holder = try ChildProcess(try which("unshare"), ["-m", "--propagation", "private", "sh", "-c", script, directory, "\(bytes)"],
                                  stdout: log + ".out", stderr: log + ".err")
        let holder = holder
        let mounted = poll(timeout: .seconds(10)) { holder.stdoutText.contains("mounted") || !holder.isRunning }
        guard mounted, holder.isRunning else {
            holder.kill9()
            throw TestFailure("mounting a tmpfs in a private namespace failed: \(holder.stderrText)")
        }
    }

    deinit { holder.kill9() }

    /// The prefix that runs a command in the namespace.
    var launcher: [String] { [nsenter, "-t", "\(holder.pid)", "-m", "--"] }

    /// Runs `script` with `sh -c` in the namespace (`$0` is the directory).
    @discardableResult
    func shell(_ script: String) throws -> BoundedResult {
        try runBounded(nsenter, ["-t", "\(holder.pid)", "-m", "--", "sh", "-c", script, directory], timeout: .seconds(30))
    }

    /// Fills the file system with a filler file, then gives back `leaving` bytes of it.
    func fill(leaving: Int) throws {
        // dd stops at ENOSPC (and says so with exit 1): that is the point.
        try shell(#"dd if=/dev/zero of="$0/filler" bs=64k 2>/dev/null; truncate -s -"# + "\(leaving)" + #" "$0/filler""#)
    }

    /// Deletes the filler: space returns under the running processes.
    func makeRoom() throws {
        let result = try shell(#"rm "$0/filler""#)
        guard result.exitCode == 0 else { throw TestFailure("rm filler: \(result.stderrText)") }
    }

    /// Bytes still available to an unprivileged writer (statvfs f_bavail), from inside.
    func availableBytes() throws -> Int? {
        let result = try shell(#"stat -f -c '%a %S' "$0""#)
        let fields = result.stdoutText.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return fields.count == 2 ? fields[0] * fields[1] : nil
    }
}

/// What a daemon logs as it stops with audit rows still waiting for space: `... of N requests`.
let uplinkAuditLostPrefix = "uplink stopped with the audit rows of "
