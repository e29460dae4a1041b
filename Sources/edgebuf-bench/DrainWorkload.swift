import EdgeBuffer
import EdgeStore
import EdgeUplink
import Foundation
import Logging

/// What every drain measurement shares: the records, how a backlog is built, and the engine's
/// configuration against the loopback sink.
enum DrainWorkload {
    /// One device for every record: the engine holds credentials for its configured device
    /// only, and a real backlog of one gateway looks like this (IoTDA merges one device's
    /// properties into one request).
    static let device = "bench-device"
    static let secretText = "bench-secret-not-a-real-one"
    static let secret = DeviceSecret(secretText)

    /// A representative ~200-byte property record (the enqueue benchmark's shape). A fixed
    /// `now` makes the rows of two backlogs byte-identical.
    static func record(_ n: Int, now: Int64) -> NewRecord {
        var input = RecordInput(kind: .property)
        input.deviceID = device
        input.serviceID = "Environment"
        input.properties = Array(#"{"temperature":\#(20 + n % 10).5,"humidity":\#(40 + n % 20),"pressure":1013.\#(n % 10),"seq":\#(n),"note":"steady state reading"}"#.utf8)
        return try! input.validated(now: now, maxBodyBytes: RawDrain.maxBodyBytes)
    }

    /// A fresh database at `path` holding `count` records, enqueued through `Outbox` in
    /// batches of 10,000. Returns the seconds it took.
    static func buildBacklog(path: String, count: Int, now: Int64) async throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let outbox = try Outbox(path: path)
        var index = 0
        while index < count {
            let end = min(index + 10_000, count)
            _ = try await outbox.enqueue((index..<end).map { record($0, now: now) })
            index = end
        }
        outbox.close()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Removes a database and its -wal and -shm files; returns the path.
    static func fresh(_ path: String) -> String {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        return path
    }

    /// The `[uplink]` the benchmark runs the engine with: IoTDA at the sink, defaults otherwise.
    static func uplink(url: String) -> UplinkConfiguration {
        var configuration = UplinkConfiguration()
        configuration.platform = .iotda
        configuration.url = url
        configuration.deviceID = device
        configuration.secret = secret
        configuration.transport.allowPlainHTTP = true
        configuration.transport.proxy = ""  // the sink is local whatever the environment says
        return configuration
    }

    /// Warnings and errors to stderr, so the table on stdout stays clean.
    static var logger: Logger {
        var logger = Logger(label: "edgebuf-bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        return logger
    }

    /// Records left in the outbox (a separate connection).
    static func remaining(path: String) throws -> Int64 {
        try Database.openPrepared(path: path).scalarInt("SELECT count(*) FROM outbox")
    }
}

/// Runs blocking work (curl, wait4) on a thread of its own instead of the cooperative pool.
func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}

/// Nanoseconds of CLOCK_MONOTONIC.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Microseconds of CLOCK_REALTIME (what nginx's $msec is read from).
func wallMicroseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
}
