import Foundation
import TestSupport

/// A plain TCP relay in front of the simulator (`tools/idle_cutter.py` with an idle limit no
/// test reaches), so a test can take the network away: `stop()` drops every open connection
/// and refuses new ones (connection refused), `start()` brings it back on the same port.
final class Relay: @unchecked Sendable {
    let directory = TemporaryDirectory("edgebuf-relay")
    let upstreamPort: Int
    /// The port the daemon connects to; the same across restarts.
    private(set) var port = 0
    private var process: ChildProcess?
    private var starts = 0

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        try start()
    }

    deinit { process?.kill9() }

    var url: String { "http://127.0.0.1:\(port)" }
    var isUp: Bool { process?.isRunning ?? false }

    /// Starts the relay (on the port it had before, if any); waits until it listens.
    func start() throws {
        guard !isUp else { return }
        starts += 1
        let ready = directory.file("ready-\(starts).json")
        // The old port may still be held by connections closing: try again for a while.
        var lastError = ""
        for _ in 0..<20 {
            let child = try ChildProcess(Simulator.python, [
                repositoryRoot + "/tools/idle_cutter.py", "--upstream", "127.0.0.1:\(upstreamPort)",
                "--idle", "1000000000", "--mode", "close", "--port", String(port), "--ready-file", ready,
            ], stdout: directory.file("stdout-\(starts)"), stderr: directory.file("stderr-\(starts)"))
            let started = poll(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: ready) || !child.isRunning }
            if started, child.isRunning, let text = try? String(contentsOfFile: ready, encoding: .utf8),
               let info = try? parseObject(text), let bound = info.int("port") {
                port = bound
                process = child
                return
            }
            lastError = child.stderrText
            child.kill9()
            sleep(.milliseconds(250))
        }
        throw TestFailure("the relay did not start on port \(port): \(lastError.suffix(800))")
    }

    /// Stops the relay: open connections are closed, new ones refused.
    func stop() {
        process?.stop(grace: .seconds(5))
        process = nil
    }
}

/// The simulator's request log, kept beyond its last 10,000 entries: every `refresh()` reads
/// from the oldest request not yet finished and keeps the latest view of each.
final class RequestLog: @unchecked Sendable {
    let simulator: Simulator
    private(set) var entries: [Int: JSONDict] = [:]
    private var frontier = 0

    init(simulator: Simulator) { self.simulator = simulator }

    func refresh() throws {
        let fresh = try simulator.requests(since: frontier)
        for entry in fresh {
            if let seq = entry.int("seq") { entries[seq] = entry }
        }
        let open = fresh.filter { $0.bool("done") != true }.compactMap { $0.int("seq") }
        frontier = open.min() ?? ((fresh.compactMap { $0.int("seq") }.max() ?? (frontier - 1)) + 1)
    }

    var all: [JSONDict] { entries.keys.sorted().map { entries[$0]! } }

    /// Data requests (not device-auth, not Bayeux).
    var data: [JSONDict] { all.filter { isData($0) } }

    /// Bayeux requests.
    var bayeux: [JSONDict] { all.filter { ($0.string("path") ?? "").hasPrefix("/notification/realtime") } }

    func isData(_ entry: JSONDict) -> Bool {
        (entry.string("path") ?? "").range(of: simulatorDataPaths, options: .regularExpression) != nil
    }
}

/// One stretch of the soak: healthy, or one kind of trouble for a while.
struct SoakPhase: CustomStringConvertible {
    enum Kind: String, CaseIterable {
        /// Nothing injected.
        case healthy
        /// The network is gone: the relay is stopped (open connections closed, new ones refused).
        case refused
        /// Connections closed, reset or truncated mid-answer (some after the platform accepted
        /// the request); long-poll answers cut off or with broken JSON.
        case cutOff
        /// A data request never answered (the request timeout must end it) and a long poll
        /// never answered (the poll deadline must end it).
        case hang
        /// 500/502/503/504 (some with Retry-After), HTML error pages; 5xx on the long poll.
        case storm
        /// The platform's own rate limiter at 2 requests/s, 403 IOTDA.021101 and 429.
        case rateLimit
        /// Tokens revoked by the platform (403 IOTDA.000004), then a token refused and a
        /// re-authentication refused (401 IOTDA.000002).
        case token
        /// A long poll that goes silent after a few heartbeats, as an idle flow a middlebox
        /// forgot: only the deadline can notice.
        case idleDrop
        /// The Bayeux server loses every session (a restart): 402::Unknown client, re-handshake.
        case sessionLoss
    }

    let kind: Kind
    let duration: Duration
    /// Random bits that choose the phase's details (statuses, actions, counts).
    let variant: UInt64

    var description: String { "\(kind.rawValue) \(String(format: "%.1f", seconds(duration))) s" }

    /// How long each kind lasts, in milliseconds. A hung poll is only noticed at hold + margin
    /// (4 s + 3 s in `useDownlink`): those phases last longer.
    static func milliseconds(_ kind: Kind) -> ClosedRange<Int> {
        switch kind {
        case .healthy: 1_500...3_500
        case .refused: 3_000...6_000
        case .cutOff, .storm, .rateLimit, .token: 4_000...7_000
        case .hang, .idleDrop: 8_000...10_000
        case .sessionLoss: 2_000...4_000
        }
    }

    /// Every kind of trouble once, in a seeded order, then more at random while the plan is
    /// shorter than `budget`; a healthy stretch after each. Rate limiting comes last: each
    /// rate-limited answer halves the uplink's pace (down to 0.1 requests/s) and it climbs
    /// back only 5 % per delivered request, so anything after it would barely reach the uplink.
    static func schedule(seed: UInt64, budget: Duration) -> [SoakPhase] {
        var random = SplitMix64(seed: seed)
        let troubles = Kind.allCases.filter { $0 != .healthy && $0 != .rateLimit }
        func phase(_ kind: Kind) -> SoakPhase {
            let range = milliseconds(kind)
            let ms = range.lowerBound + Int(random.next() % UInt64(range.count))
            return SoakPhase(kind: kind, duration: .milliseconds(ms), variant: random.next())
        }
        let last = [phase(.rateLimit), phase(.healthy)]
        var plan: [SoakPhase] = [phase(.healthy)]
        var total = plan[0].duration + last[0].duration + last[1].duration
        var order = troubles.shuffled(using: &random)
        var first = true
        while true {
            if order.isEmpty {
                order = troubles.shuffled(using: &random)
                first = false
            }
            let next = phase(order.removeFirst())
            let rest = phase(.healthy)
            if !first && total + next.duration + rest.duration > budget { break }
            plan += [next, rest]
            total += next.duration + rest.duration
        }
        return plan + last
    }
}

/// Small seeded choices from a phase's variant bits.
struct Choices {
    var random: SplitMix64
    init(_ variant: UInt64) { random = SplitMix64(seed: variant) }
    mutating func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }
    mutating func bool() -> Bool { random.next() % 2 == 0 }
}

/// The IoTDA device-auth path, for faults on authentication only.
let simulatorAuthPath = "^/v5/device-auth$"

extension Device {
    /// Rows of the audit with this event.
    static func rows(_ audit: [JSONDict], _ event: String) -> [JSONDict] {
        audit.filter { $0.string("event") == event }
    }
}

/// A field of /proc/PID/status in KiB (`VmRSS`, `RssAnon`, `RssFile`), or nil.
func statusKiB(_ pid: pid_t, _ field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// The largest resident set seen, split into anonymous memory (the heap) and file-backed
/// pages (the binary and its libraries: most of it in a debug build).
struct ResidentSamples {
    private(set) var maxAnon = 0
    private(set) var maxFile = 0
    private(set) var series: [String] = []

    mutating func sample(_ pid: pid_t, keep: Bool = false) {
        let anon = statusKiB(pid, "RssAnon") ?? 0, file = statusKiB(pid, "RssFile") ?? 0
        maxAnon = max(maxAnon, anon)
        maxFile = max(maxFile, file)
        if keep { series.append(String(format: "%.1f+%.1f", Double(anon) / 1024, Double(file) / 1024)) }
    }
}
