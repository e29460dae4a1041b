import Foundation
@testable import edgebuf
import TestSupport
import Testing

/// `edgebuf run` under systemd's protocols, with the test in systemd's place: readiness,
/// reload and stop notifications on `$NOTIFY_SOCKET`, and structured log entries on the
/// journal's native socket when `$JOURNAL_STREAM` names the daemon's stderr.
@Suite(.serialized) struct SystemdTests {
    /// A unix datagram socket bound at a path, read with a timeout.
    final class DatagramSocket {
        let fd: Int32
        let path: String

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else { throw TestFailure("bind \(path): \(errno)") }
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// The next datagram, or nil after 200 ms without one.
        func receive() -> [UInt8]? {
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? Array(buffer[0..<n]) : nil
        }

        /// Datagrams received until `condition` holds for the ones so far, or `timeout`.
        func collect(timeout: Duration, until condition: ([[UInt8]]) -> Bool) -> [[UInt8]] {
            var received: [[UInt8]] = []
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline, !condition(received) {
                if let datagram = receive() { received.append(datagram) }
            }
            return received
        }
    }

    /// The fields of a native journal datagram (both the `KEY=value` and the binary form).
    static func fields(_ datagram: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        var index = 0
        while index < datagram.count {
            guard let newline = datagram[index...].firstIndex(of: 10) else { break }
            let line = datagram[index..<newline]
            if let equals = line.firstIndex(of: UInt8(ascii: "=")) {
                fields[String(decoding: datagram[index..<equals], as: UTF8.self)] = String(decoding: datagram[(equals + 1)..<newline], as: UTF8.self)
                index = newline + 1
            } else {
                let key = String(decoding: line, as: UTF8.self)
                var length: UInt64 = 0
                for (shift, byte) in datagram[(newline + 1)..<(newline + 9)].enumerated() { length |= UInt64(byte) << (8 * UInt64(shift)) }
                let start = newline + 9
                fields[key] = String(decoding: datagram[start..<(start + Int(length))], as: UTF8.self)
                index = start + Int(length) + 1
            }
        }
        return fields
    }

    static func config(_ directory: TemporaryDirectory, simulator: Simulator) throws -> String {
        let path = directory.file("edgebuf.toml")
        try simulator.iotdaUplinkSection.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// READY=1 once the engines run, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a
    /// SIGHUP, STOPPING=1 at SIGTERM; nothing without $NOTIFY_SOCKET is tested by every other
    /// daemon test (they run without it).
    @Test func readinessReloadAndStopAreNotified() throws {
        let simulator = try Simulator()
        let directory = TemporaryDirectory("edgebuf-systemd")
        let notify = try DatagramSocket(path: directory.file("notify.sock"))
        let config = try Self.config(directory, simulator: simulator)
        let daemon = try ChildProcess(edgebufBinary, ["--db", directory.file("edgebuf.db"), "--config", config, "run"],
                                      stdout: directory.file("out"), stderr: directory.file("err"),
                                      environment: ["NOTIFY_SOCKET": notify.path])
        defer { daemon.kill9() }
        func text(_ datagrams: [[UInt8]]) -> [String] { datagrams.map { String(decoding: $0, as: UTF8.self) } }

        let ready = text(notify.collect(timeout: .seconds(15)) { text($0).contains { $0.hasPrefix("READY=1") } })
        #expect(ready.contains { $0.hasPrefix("READY=1") && $0.contains("STATUS=running: uplink") }, "\(ready) \(daemon.stderrText)")

        daemon.send(SIGHUP)
        let reload = text(notify.collect(timeout: .seconds(10)) { text($0).contains { $0.hasPrefix("READY=1") } })
        #expect(reload.first?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true, "\(reload)")
        #expect(reload.last?.hasPrefix("READY=1") == true, "\(reload)")

        daemon.send(SIGTERM)
        let stop = text(notify.collect(timeout: .seconds(10)) { text($0).contains("STOPPING=1") })
        #expect(stop.contains("STOPPING=1"), "\(stop)")
        #expect(daemon.wait(timeout: .seconds(10)) == 0, "\(daemon.stderrText)")
    }

    /// With $JOURNAL_STREAM naming its stderr, the daemon writes journal entries with
    /// PRIORITY, SYSLOG_IDENTIFIER, CODE_* and one field per metadata key, and nothing on
    /// stderr. With $JOURNAL_STREAM naming some other file (a child inheriting the
    /// variable), it logs to stderr as text.
    @Test func underTheJournalLogLinesAreStructuredEntries() throws {
        let simulator = try Simulator()
        let directory = TemporaryDirectory("edgebuf-journal")
        let journal = try DatagramSocket(path: directory.file("journal.sock"))
        let config = try Self.config(directory, simulator: simulator)
        let stderrPath = directory.file("err")
        // Create stderr's file first to learn its device and inode: the daemon opens the same file.
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        var info = stat()
        #expect(stat(stderrPath, &info) == 0)
        // ChildProcess opens stderr with O_TRUNC, which keeps the inode.
        let daemon = try ChildProcess(edgebufBinary, ["--db", directory.file("edgebuf.db"), "--config", config, "--log-level", "info", "run"],
                                      stdout: directory.file("out"), stderr: stderrPath,
                                      environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)",
                                                    "EDGEBUF_JOURNAL_SOCKET": journal.path])
        defer { daemon.kill9() }
        let entries = journal.collect(timeout: .seconds(15)) { received in
            received.contains { Self.fields($0)["MESSAGE"] == "uplink started" }
        }.map(Self.fields)
        let started = entries.first { $0["MESSAGE"] == "uplink started" }
        #expect(started?["PRIORITY"] == "6", "\(entries)")
        #expect(started?["SYSLOG_IDENTIFIER"] == "edgebuf")
        #expect(started?["EDGEBUF_UPLINK_PLATFORM"] == "iotda")
        #expect(started?["CODE_FILE"]?.hasSuffix("SyncEngine.swift") == true)
        #expect(started?["CODE_LINE"].flatMap { Int($0) } != nil)
        daemon.send(SIGTERM)
        #expect(daemon.wait(timeout: .seconds(10)) == 0)
        #expect(daemon.stderrText.isEmpty, "logged to stderr as well: \(daemon.stderrText)")

        // The same variable naming another file: plain text on stderr, nothing in the journal.
        let other = try ChildProcess(edgebufBinary, ["--db", directory.file("edgebuf.db"), "--config", config, "--log-level", "info", "run"],
                                     stdout: directory.file("out2"), stderr: directory.file("err2"),
                                     environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)",
                                                   "EDGEBUF_JOURNAL_SOCKET": journal.path])
        defer { other.kill9() }
        #expect(poll(timeout: .seconds(15)) { other.stderrText.contains("uplink started") }, "\(other.stderrText)")
        #expect(journal.collect(timeout: .milliseconds(500)) { _ in false }.isEmpty)
        other.send(SIGTERM)
        #expect(other.wait(timeout: .seconds(10)) == 0)
    }

    /// The encoder's two forms, decoded back: a value with a newline goes length-prefixed,
    /// byte for byte; metadata keys become valid field names.
    @Test func fieldsSurviveTheNativeProtocol() {
        let datagram = JournalLogHandler.encode([("MESSAGE", "two\nlines"), ("PRIORITY", "3"), ("EMPTY", "")])
        let fields = Self.fields(datagram)
        #expect(fields == ["MESSAGE": "two\nlines", "PRIORITY": "3", "EMPTY": ""])
        #expect(JournalLogHandler.fieldName("edgebuf.uplink.platform") == "EDGEBUF_UPLINK_PLATFORM")
        #expect(JournalLogHandler.fieldName("_private") == "PRIVATE")
        #expect(JournalLogHandler.fieldName("9lives") == "LIVES")
        #expect(JournalLogHandler.fieldName("..") == nil)
        #expect(JournalLogHandler.fieldName(String(repeating: "a", count: 100))?.count == 64)
        #expect(JournalLogHandler.priority(.critical) == 2 && JournalLogHandler.priority(.trace) == 7)
    }
}
