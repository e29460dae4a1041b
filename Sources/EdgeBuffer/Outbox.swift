import EdgeStore
import Foundation
import Synchronization

/// The durable outbox: the front door for applications.
///
/// `enqueue` returns only after the record is committed to SQLite. Concurrent callers are
/// coalesced by one writer thread into shared transactions (group commit): while one commit
/// is being synced, every record that arrives waits for the next one, so N waiting producers
/// share one fsync instead of paying N.
public final class Outbox: Sendable {
    /// The database file.
    public let path: String
    public let configuration: OutboxConfiguration

    private struct Pending: Sendable {
        let records: [NewRecord]
        let completion: @Sendable (Result<[Int64], any Error>) -> Void
    }

    private struct State {
        var queue: [Pending] = []
        var closed = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let onCommit: (@Sendable () -> Void)?

    /// Opens (creating and migrating if needed) the database at `path` and starts the writer.
    /// `onCommit` runs on the writer thread after every commit that stored records (the uplink
    /// uses it to wake up at once).
    public init(path: String, configuration: OutboxConfiguration = OutboxConfiguration(),
                onCommit: (@Sendable () -> Void)? = nil) throws {
        self.path = path
        self.configuration = configuration
        self.onCommit = onCommit
        let opened = DispatchSemaphore(value: 0)
        let openError = Mutex<(any Error)?>(nil)
        let thread = Thread { [self] in
            let connection: Connection
            do {
                connection = try Database.open(path: path, options: configuration.database.options)
            } catch {
                openError.withLock { $0 = error }
                opened.signal()
                finished.signal()
                return
            }
            opened.signal()
            writerLoop(connection)
            finished.signal()
        }
        thread.name = "edgebuf-outbox-writer"
        thread.start()
        opened.wait()
        if let error = openError.withLock({ $0 }) { throw error }
    }

    deinit {
        close()
    }

    /// Validates and stores one record; returns its id once it is durable.
    @discardableResult
    public func enqueue(_ input: RecordInput) async throws -> Int64 {
        let record = try input.validated(now: Timestamp.nowMilliseconds(), maxBodyBytes: configuration.maxBodyBytes)
        return try await enqueue([record])[0]
    }

    /// Stores validated records, all or nothing; returns their ids once they are durable.
    public func enqueue(_ records: [NewRecord]) async throws -> [Int64] {
        try await withCheckedThrowingContinuation { continuation in
            submit(records) { continuation.resume(with: $0) }
        }
    }

    /// Stores records all or nothing and blocks the calling thread until they are durable.
    /// For callers outside Swift concurrency; never call it on the cooperative pool.
    public func enqueueBlocking(_ records: [NewRecord]) throws -> [Int64] {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<[Int64], any Error>?>(nil)
        submit(records) { outcome in
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0! }.get()
    }

    /// Queues records for the next commit; `completion` runs on the writer thread after the
    /// commit (with the ids) or the failure (nothing of `records` stored).
    public func submit(_ records: [NewRecord], completion: @escaping @Sendable (Result<[Int64], any Error>) -> Void) {
        guard !records.isEmpty else { return completion(.success([])) }
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.queue.append(Pending(records: records, completion: completion))
            return true
        }
        guard accepted else { return completion(.failure(OutboxClosedError())) }
        wake.signal()
    }

    /// Commits what is queued, then stops the writer. Later enqueues fail.
    public func close() {
        let first = state.withLock { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        guard first else { return }
        wake.signal()
        finished.wait()
    }

    // MARK: The writer thread

    private func writerLoop(_ connection: Connection) {
        let store = OutboxStore(connection)
        var lastExpiry: Int64 = 0
        while true {
            wake.wait()
            let (batch, closed) = state.withLock { state in
                defer { state.queue.removeAll(keepingCapacity: true) }
                return (state.queue, state.closed)
            }
            if batch.isEmpty {
                if closed { return }
                continue
            }
            let now = Timestamp.nowMilliseconds()
            var results: [Result<[Int64], any Error>] = []
            results.reserveCapacity(batch.count)
            do {
                try connection.transaction {
                    if let maxAge = configuration.database.capacity.maxAgeMilliseconds, now - lastExpiry >= 1000 {
                        try store.expire(maxAgeMilliseconds: maxAge, now: now)
                        lastExpiry = now
                    }
                    let admitted = try store.admit(batches: batch.map(\.records), policy: configuration.database.capacity, now: now)
                    results = admitted.map { $0.mapError { $0 as any Error } }
                }
            } catch {
                // The transaction rolled back: nothing of this group was stored.
                results = Array(repeating: .failure(error), count: batch.count)
            }
            if results.contains(where: { if case .success = $0 { return true }; return false }) { onCommit?() }
            for (pending, result) in zip(batch, results) { pending.completion(result) }
            if closed && state.withLock({ $0.queue.isEmpty }) { return }
        }
    }
}

/// The outbox was closed; the record was NOT stored.
public struct OutboxClosedError: Error, Sendable, CustomStringConvertible {
    public var description: String { "the outbox is closed; the record was NOT stored" }
}
