import EdgeBuffer
import EdgeStore
import EdgeUplink
import Foundation
import Synchronization

/// Enqueue-to-delivered latency when online: an engine running as it does under `edgebuf run`
/// (woken by the outbox's commit hook), records enqueued one at a time at a modest pace.
///
/// Two clocks of delivery, both from the moment `enqueue` returned (the record is durable):
/// - nginx: the access log's `$msec` of the request that carried the record (written once
///   nginx has read the whole body). Requests are matched to records through the engine's
///   audit rows, in order, and each pair must agree on the body size. ms resolution.
/// - gone: the first poll of the outbox (its own connection, every ~1 ms) that no longer
///   finds the record: delivered, and the delete committed.
enum DrainLatency {
    struct Result: Sendable {
        var records = 0
        var seconds = 0.0
        var requests = 0
        /// Per record, ms; empty when the log and the audit could not be matched.
        var toNginx: [Double] = []
        var gone: [Double] = []
        /// CPU time the process used per second while the engine sat idle with an empty outbox.
        var idleCPUMillisecondsPerSecond = 0.0
        var problems: [String] = []
        /// CSV, one line per record: id, ms after the run's start, to nginx (ms), gone (ms).
        var csv = "id,enqueued_at_ms,to_nginx_ms,gone_ms\n"
    }

    static func measure(path: String, sink: NginxSink, count: Int, interval: Duration, now: Int64) async throws -> Result {
        let wake = WakeSignal()
        let outbox = try Outbox(path: DrainWorkload.fresh(path), onCommit: { wake.signal() })
        let engine = try SyncEngine(configuration: DrainWorkload.uplink(url: sink.url), databasePath: path,
                                    databaseOptions: DatabaseOptions(), wake: wake, logger: DrainWorkload.logger)
        let running = Task { try await engine.run() }
        do {
            let result = try await measure(path: path, outbox: outbox, sink: sink, count: count, interval: interval, now: now)
            running.cancel()
            _ = await running.result
            outbox.close()
            return result
        } catch {
            running.cancel()
            _ = await running.result
            outbox.close()
            throw error
        }
    }

    private static func measure(path: String, outbox: Outbox, sink: NginxSink, count: Int, interval: Duration, now: Int64) async throws -> Result {
        let monitor = try Database.openPrepared(path: path)
        // Warm-up, not measured: authentication and the connection.
        _ = try await outbox.enqueue([DrainWorkload.record(count, now: now)])
        try await waitUntilEmpty(monitor, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(50))
        let logMark = try sink.requests().count
        let auditMark = try monitor.scalarInt("SELECT coalesce(max(seq), 0) FROM audit")

        let poller = OutboxPoller()
        try poller.start(path: path)
        var enqueued: [(id: Int64, monotonic: UInt64, wall: Int64)] = []
        enqueued.reserveCapacity(count)
        let clock = ContinuousClock()
        let start = clock.now
        for n in 0..<count {
            try await clock.sleep(until: start + interval * n)
            let record = DrainWorkload.record(n, now: now)
            let ids = try await outbox.enqueue([record])
            enqueued.append((ids[0], monotonicNanoseconds(), wallMicroseconds()))
        }
        let span = clock.now - start
        let seconds = Double(span.components.seconds) + Double(span.components.attoseconds) / 1e18
        try await waitUntilEmpty(monitor, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(50))
        let samples = try poller.stop()

        var result = Result(records: count, seconds: seconds)
        let gone = goneLatencies(enqueued.map { ($0.id, $0.monotonic) }, samples, problems: &result.problems)
        result.gone = gone.compactMap { $0 }

        // Idle: nothing to send, nothing enqueued for a second.
        let before = cpuMilliseconds()
        try await Task.sleep(for: .seconds(1))
        result.idleCPUMillisecondsPerSecond = cpuMilliseconds() - before

        let requests = try auditedRequests(monitor, after: auditMark)
        result.requests = requests.count
        let lines = try sink.requests().dropFirst(logMark).filter(\.isReport)
        if lines.count != requests.count {
            result.problems.append("nginx logged \(lines.count) report POSTs, the audit has \(requests.count) requests")
        } else if let bad = zip(lines, requests).first(where: { $0.0.contentLength != $0.1.bodyBytes || $0.0.status != 200 }) {
            result.problems.append("nginx line (\(bad.0.contentLength) bytes, status \(bad.0.status)) does not match audit request (\(bad.1.bodyBytes) bytes)")
        } else {
            var arrival: [Int64: Int64] = [:]  // record id -> nginx ms
            for (line, request) in zip(lines, requests) {
                for id in request.firstID...request.lastID { arrival[id] = line.milliseconds }
            }
            for record in enqueued {
                guard let ms = arrival[record.id] else {
                    result.problems.append("record \(record.id) is in no audited request")
                    continue
                }
                result.toNginx.append(Double(ms * 1000 - record.wall) / 1000)
            }
        }
        let first = enqueued.first?.wall ?? 0
        for (index, record) in enqueued.enumerated() {
            let nginx = result.toNginx.count == enqueued.count ? String(result.toNginx[index]) : ""
            result.csv += "\(record.id),\(Double(record.wall - first) / 1000),\(nginx),\(gone[index].map { String($0) } ?? "")\n"
        }
        return result
    }

    private static func waitUntilEmpty(_ db: Connection, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while try db.scalarInt("SELECT count(*) FROM outbox") > 0 {
            guard ContinuousClock.now < deadline else { throw BenchError("the engine did not deliver the records within \(timeout)") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// For each (id, enqueue time): ms until the first poll that started after the enqueue
    /// and found no record with that id or lower (records leave in id order).
    static func goneLatencies(_ records: [(id: Int64, monotonic: UInt64)], _ samples: [OutboxPoller.Sample], problems: inout [String]) -> [Double?] {
        var latencies: [Double?] = []
        var first = 0
        for record in records {
            while first < samples.count && samples[first].monotonic <= record.monotonic { first += 1 }
            guard let sample = samples[first...].first(where: { $0.minimumID > record.id }) else {
                problems.append("no poll saw record \(record.id) gone")
                latencies.append(nil)
                continue
            }
            latencies.append(Double(sample.monotonic - record.monotonic) / 1e6)
        }
        return latencies
    }

    struct AuditedRequest {
        let firstID: Int64
        let lastID: Int64
        let bodyBytes: Int
    }

    /// The engine's `request` audit rows after `seq`, oldest first.
    static func auditedRequests(_ db: Connection, after seq: Int64) throws -> [AuditedRequest] {
        let stmt = try db.prepare("SELECT detail FROM audit WHERE seq > ? AND event = 'request' ORDER BY seq")
        try stmt.bind(seq, at: 1)
        var requests: [AuditedRequest] = []
        while try stmt.step() {
            guard let detail = try JSONSerialization.jsonObject(with: Data(stmt.text(0).utf8)) as? [String: Any],
                  let first = (detail["first_id"] as? NSNumber)?.int64Value, let last = (detail["last_id"] as? NSNumber)?.int64Value,
                  let bytes = (detail["body_bytes"] as? NSNumber)?.intValue, detail["outcome"] as? String == "delivered" else {
                throw BenchError("unexpected audit request row: \(stmt.text(0))")
            }
            requests.append(AuditedRequest(firstID: first, lastID: last, bodyBytes: bytes))
        }
        return requests
    }

    static func cpuMilliseconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func ms(_ t: timeval) -> Double { Double(t.tv_sec) * 1000 + Double(t.tv_usec) / 1000 }
        return ms(usage.ru_utime) + ms(usage.ru_stime)
    }
}

/// Polls the lowest id in the outbox about every millisecond from a connection and thread of
/// its own, recording when each poll started.
final class OutboxPoller: Sendable {
    struct Sample: Sendable {
        let monotonic: UInt64
        /// `Int64.max` when the outbox was empty.
        let minimumID: Int64
    }

    private struct State {
        var stopping = false
        var samples: [Sample] = []
        var error: String?
    }

    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)

    func start(path: String) throws {
        let thread = Thread { [self] in
            defer { finished.signal() }
            do {
                let db = try Database.openPrepared(path: path)
                let stmt = try db.prepare("SELECT min(id) FROM outbox")
                while !state.withLock({ $0.stopping }) {
                    let started = monotonicNanoseconds()
                    stmt.reset()
                    _ = try stmt.step()
                    let sample = Sample(monotonic: started, minimumID: stmt.optionalInt64(0) ?? .max)
                    stmt.reset()
                    state.withLock { $0.samples.append(sample) }
                    usleep(1000)
                }
            } catch {
                state.withLock { $0.error = "\(error)" }
            }
        }
        thread.name = "edgebuf-bench-poller"
        thread.start()
    }

    /// Stops polling and returns the samples, oldest first.
    func stop() throws -> [Sample] {
        state.withLock { $0.stopping = true }
        finished.wait()
        return try state.withLock { state in
            if let error = state.error { throw BenchError("outbox poller: \(error)") }
            return state.samples
        }
    }
}
