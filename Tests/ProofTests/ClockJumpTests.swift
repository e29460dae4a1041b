import Foundation
import TestSupport
import Testing

/// The `faketime` wrapper of libfaketime, if installed.
let faketimePath = try? which("faketime")
/// A C compiler for the timerfd shim (Debian's cc, or the clang of the Swift toolchain).
let cCompiler = (try? which("cc")) ?? (try? which("clang"))

/// `edgebuf run` under libfaketime, its wall clock jumping a day forward and then two days
/// back during an outage of the platform (503 on every data request): retries neither stop
/// for the size of the jump nor spin, delivery follows within a bound once the platform
/// recovers, and the event times stamped at enqueue reach the platform unchanged, whatever the
/// daemon's clock says when it sends.
///
/// What libfaketime 0.9.10 can and cannot do with a Swift binary (seen here, Swift 6):
/// - It must be started through its `faketime` wrapper. Preloaded alone (LD_PRELOAD without
///   the wrapper's FAKETIME_SHARED), the binary sees an empty `CommandLine.arguments` and
///   edgebuf only prints its help. The wrapper forks: the daemon is its child.
/// - To change the time while the daemon runs, the wrapper starts a shell that drops FAKETIME
///   (which would win) and execs edgebuf reading FAKETIME_TIMESTAMP_FILE on every clock call
///   (FAKETIME_NO_CACHE=1).
/// - Faking the monotonic clocks stops every Swift sleep, even at offset +0 (CLOCK_MONOTONIC
///   is then reported on the wall clock's scale, so dispatch's timers are set decades ahead):
///   FAKETIME_DONT_FAKE_MONOTONIC=1 is required. That is also what a real clock step (NTP,
///   an RTC reset) does: only CLOCK_REALTIME jumps.
/// - Even so, libfaketime's `timerfd_settime` shifts absolute timers on CLOCK_MONOTONIC and
///   CLOCK_BOOTTIME by the fake offset, so after a backward jump every Swift sleep would last
///   the jump's size, which no real clock step does. A ten-line shim preloaded before
///   libfaketime makes `timerfd_settime` and `timerfd_gettime` plain system calls again.
@Suite(.enabled(if: faketimePath != nil && cCompiler != nil, "needs the faketime package (tools/lib.sh installs it) and a C compiler"))
struct ClockJumpTests {
    static var faketime: String? { faketimePath }

    init() { signal(SIGPIPE, SIG_IGN) }

    /// Compiles the shim that keeps timerfds out of libfaketime's hands into `directory`.
    static func timerfdShim(in directory: TemporaryDirectory) throws -> String {
        let source = directory.file("timerfd.c"), library = directory.file("timerfd.so")
        let code = """
            // libfaketime shifts absolute timerfd deadlines by its fake offset whatever the
            // timer's clock; a real wall-clock step leaves monotonic timers alone.
            #define _GNU_SOURCE
            #include <sys/syscall.h>
            #include <sys/timerfd.h>
            #include <unistd.h>
            int timerfd_settime(int fd, int flags, const struct itimerspec *new_value, struct itimerspec *old_value) {
                return (int)syscall(SYS_timerfd_settime, fd, flags, new_value, old_value);
            }
            int timerfd_gettime(int fd, struct itimerspec *value) {
                return (int)syscall(SYS_timerfd_gettime, fd, value);
            }
            """
        try code.write(toFile: source, atomically: true, encoding: .utf8)
        let result = try runBounded(cCompiler!, ["-shared", "-fPIC", "-O2", "-o", library, source], timeout: .seconds(60))
        guard result.exitCode == 0 else { throw TestFailure("compiling the timerfd shim: \(result.stderrText)") }
        return library
    }

    /// faketime, then a shell that drops FAKETIME, preloads the shim and execs the rest.
    static func launcher(in directory: TemporaryDirectory) throws -> [String] {
        let shim = try timerfdShim(in: directory)
        return [faketime!, "-f", "+0", "/bin/sh", "-c", "unset FAKETIME; export LD_PRELOAD=\"\(shim) $LD_PRELOAD\"; exec \"$0\" \"$@\""]
    }

    /// The pid of edgebuf under the faketime wrapper (its child, once it has exec'd).
    static func childPID(of wrapper: ChildProcess) -> pid_t? {
        var found: pid_t?
        _ = poll(timeout: .seconds(10)) {
            let children = (try? String(contentsOfFile: "/proc/\(wrapper.pid)/task/\(wrapper.pid)/children", encoding: .utf8)) ?? ""
            for text in children.split(separator: " ") {
                guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
                let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
                if exe.hasSuffix("/edgebuf") { found = pid }
            }
            return found != nil
        }
        return found
    }

    /// Milliseconds since 1970 of an RFC 3339 time as edgebuf prints it.
    static func milliseconds(_ text: String?) -> Double? {
        text.flatMap(parseTimestamp).map { $0.timeIntervalSince1970 * 1000 }
    }

    @Test func libfaketimeMovesTheClockOfTheSwiftBinary() throws {
        let device = Device(label: "edgebuf-faketime")
        try device.writeConfig()
        let shifted = try runBounded(Self.faketime!, ["-f", "-1d", edgebufBinary, "--db", device.db, "--config", device.config,
                                                      "enqueue", "property", "--device", "d", "--service", "S", "--properties", #"{"seq":1}"#],
                                     environment: ["FAKETIME_DONT_FAKE_MONOTONIC": "1"], timeout: .seconds(30))
        #expect(shifted.exitCode == 0, "\(shifted.summary): \(shifted.stderrText)")
        let record = try #require(try device.outbox().first)
        let enqueued = try #require(Self.milliseconds(record.string("enqueued_at")))
        let offset = (enqueued - Date().timeIntervalSince1970 * 1000) / 3_600_000
        #expect(abs(offset + 24) < 0.2, "enqueued_at is \(offset) h from now under faketime -1d: \(record)")
    }

    /// The wall clock jumps a day forward, then two days back, during a 503 outage, and ten
    /// days back while the daemon is idle; the monotonic clock does not move (as with a real
    /// NTP step or RTC reset). Retries go on at their pace, delivery follows recovery, an
    /// enqueue wakes the idle daemon, and every event time is the one stamped at enqueue.
    @Test func wallClockJumpsNeitherStallNorSpinTheUplinkAndKeepEventTimes() throws {
        let simulator = try Simulator()
        let device = Device(label: "edgebuf-clock")
        try device.useSimulator(simulator)
        let clockFile = device.directory.file("faketime")
        try "+0\n".write(toFile: clockFile, atomically: true, encoding: .utf8)
        // Records stamped by an application with a right clock: default and explicit event times.
        try device.enqueue((1...20).map { Records.property($0) } + (21...25).map { Records.property($0, eventTime: "2026-01-02T03:04:05.678Z") })
        let stamped = try Self.eventTimes(device)
        #expect(stamped.count == 25)

        try simulator.fault(["count": 1_000_000, "status": 503, "path": simulatorDataPaths])
        let environment = ["FAKETIME_TIMESTAMP_FILE": clockFile, "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"]
        let wrapper = try device.startRun(logLevel: "info", launcher: try Self.launcher(in: device.directory), environment: environment)
        let daemon = Self.childPID(of: wrapper)
        defer {
            if let daemon { kill(daemon, SIGKILL) }
            wrapper.kill9()
        }
        try #require(daemon != nil, "edgebuf runs under the faketime wrapper: \(wrapper.stderrText.suffix(800))")
        func dataRequests() -> Int { ((try? simulator.dataRequests()) ?? []).count }
        #expect(poll(timeout: .seconds(20)) { dataRequests() >= 3 }, "the daemon is retrying: \(wrapper.stderrText.suffix(1500))")

        // Each jump: the clock file changes, and within 3 s the retries go on.
        let outageStarted = ContinuousClock.now
        let before = dataRequests()
        let jumps = ["+1d", "-1d"]
        for jump in jumps {
            sleep(.seconds(2))
            try "\(jump)\n".write(toFile: clockFile, atomically: true, encoding: .utf8)
            let atJump = dataRequests()
            let goesOn = poll(timeout: .seconds(3)) { dataRequests() >= atJump + 2 }
            #expect(goesOn, "retries stalled after the clock jumped to \(jump): \(dataRequests() - atJump) requests in 3 s")
        }
        sleep(.seconds(1))
        // The daemon really runs on the faked clock: it stamps its own state with it.
        try Self.expectDaemonClock(device, hours: -24)

        let outage = ContinuousClock.now - outageStarted
        let during = dataRequests() - before
        // Backoff 50 ms to 500 ms with full jitter: a few requests a second. A spinning loop
        // would make thousands, a stalled one none.
        let perSecond = Double(during) / seconds(outage)
        print("clock jumps \(jumps): \(during) requests in \(String(format: "%.1f", seconds(outage))) s of outage (\(String(format: "%.1f", perSecond))/s)")
        #expect(during >= 6, "only \(during) retries in \(seconds(outage)) s")
        #expect(perSecond < 40, "\(during) retries in \(seconds(outage)) s: the retry loop spins")

        // Recovery: every record arrives within a few backoff periods.
        try simulator.control("DELETE", "/_sim/faults")
        try Self.expectDelivered(simulator, 1...25, within: .seconds(8), log: wrapper)

        // Idle, ten days back: an enqueue from another process still wakes the daemon at once.
        try "-10d\n".write(toFile: clockFile, atomically: true, encoding: .utf8)
        sleep(.seconds(1))
        // (The daemon sends them at once, so their stamps are checked against the real time
        // around the enqueue rather than read back from the outbox.)
        let enqueueStarted = Date().timeIntervalSince1970 * 1000
        try device.enqueue((26...30).map { Records.property($0) })
        let enqueueEnded = Date().timeIntervalSince1970 * 1000
        try Self.expectDelivered(simulator, 26...30, within: .seconds(5), log: wrapper)
        try Self.expectDaemonClock(device, hours: -240)

        // Event times as stamped at enqueue, not as the daemon's clock says.
        let accepted = try simulator.accepted()
        let milliseconds = Self.milliseconds
        #expect(Set(accepted.compactMap(Records.seq)) == Set(1...30))
        for record in accepted {
            guard let seq = Records.seq(record) else { continue }
            if seq > 25 {
                let sent = milliseconds(record.string("event_time")) ?? 0
                #expect(sent >= enqueueStarted - 1 && sent <= enqueueEnded + 1, "seq \(seq): sent \(record.string("event_time") ?? "nil"), stamped outside its enqueue")
                continue
            }
            #expect(record.string("event_time") == stamped[seq], "seq \(seq): sent \(record.string("event_time") ?? "nil"), stamped \(stamped[seq] ?? "nil")")
            #expect(record.bool("event_time_replaced") == false)
        }
        if let daemon { kill(daemon, SIGTERM) }
        #expect(wrapper.wait(timeout: .seconds(10)) == 0, "run: \(wrapper.stderrText.suffix(800))")
        #expect(try device.auditIntact(), "the audit chain survives its rows' times going backwards")
    }

    /// The outbox's event times by seq.
    static func eventTimes(_ device: Device) throws -> [Int: String] {
        Dictionary(uniqueKeysWithValues: try device.outbox().compactMap { record -> (Int, String)? in
            guard let seq = record.object("payload").flatMap(Records.seq), let time = record.string("event_time") else { return nil }
            return (seq, time)
        })
    }

    /// The daemon's last saved state carries its (faked) time: `hours` off the real one.
    static func expectDaemonClock(_ device: Device, hours: Double, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let state = try parseObject(try device.ebOK(["status", "--json"]))
        let reported = milliseconds(state.object("uplink")?.string("updated_at")) ?? 0
        let skew = (reported - Date().timeIntervalSince1970 * 1000) / 3_600_000
        #expect(abs(skew - hours) < 0.1, "the daemon's clock is \(skew) h off, not \(hours) h: libfaketime did not take hold", sourceLocation: sourceLocation)
    }

    static func expectDelivered(_ simulator: Simulator, _ seqs: ClosedRange<Int>, within bound: Duration, log: ChildProcess,
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        let started = ContinuousClock.now
        let delivered = poll(timeout: bound + .seconds(7)) { Set(((try? simulator.accepted()) ?? []).compactMap(Records.seq)).isSuperset(of: seqs) }
        let took = ContinuousClock.now - started
        #expect(delivered, "\(seqs) not delivered: \(log.stderrText.suffix(1500))", sourceLocation: sourceLocation)
        #expect(took < bound, "\(seqs) delivered after \(took), bound \(bound)", sourceLocation: sourceLocation)
    }
}
