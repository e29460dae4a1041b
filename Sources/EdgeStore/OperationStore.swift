/// One operation's status record waiting in the outbox.
public struct PendingOperationStatus: Sendable, Equatable {
    public var recordID: Int64
    public var status: OperationStatus

    public init(recordID: Int64, status: OperationStatus) {
        self.recordID = recordID
        self.status = status
    }
}

/// The final status the platform accepted for an operation.
public struct DeliveredFinalStatus: Sendable, Equatable {
    public var status: OperationStatus
    public var recordID: Int64

    public init(status: OperationStatus, recordID: Int64) {
        self.status = status
        self.recordID = recordID
    }
}

/// What `inbox exec --operations` did with an operation.
public struct OperationRun: Sendable, Equatable {
    public enum State: String, Sendable { case executing, final }
    public var operationID: String
    public var consumer: String
    public var inboxID: Int64
    public var state: State
    public var finalStatus: OperationStatus?
    public var startedAt: Int64

    public init(operationID: String, consumer: String, inboxID: Int64, state: State, finalStatus: OperationStatus?, startedAt: Int64) {
        self.operationID = operationID
        self.consumer = consumer
        self.inboxID = inboxID
        self.state = state
        self.finalStatus = finalStatus
        self.startedAt = startedAt
    }
}

/// The tables of Cumulocity device control (`operation_final`, `operation_runs`) and the
/// lookups of one operation's records in the outbox. Writes run in the caller's transaction.
/// Every statement is reset when its method returns: one left stepping would hold a read
/// snapshot, and the next write transaction on the connection, once another process has
/// committed, fails at once with SQLITE_BUSY (not after the busy timeout).
public final class OperationStore {
    let db: Connection

    public init(_ db: Connection) { self.db = db }

    /// The operation's status records in the outbox (through the `outbox_operations` index),
    /// oldest first.
    public func pendingStatuses(of operationID: String) throws -> [PendingOperationStatus] {
        let stmt = try db.cached("SELECT id, substr(payload, 1, 40) FROM outbox WHERE kind = 'operation_status' AND target = ? ORDER BY id")
        defer { stmt.reset() }
        try stmt.bind(operationID, at: 1)
        var out: [PendingOperationStatus] = []
        while try stmt.step() {
            if let status = OperationStatus(payload: stmt.blob(1)) {
                out.append(PendingOperationStatus(recordID: stmt.int64(0), status: status))
            }
        }
        return out
    }

    /// The final status the platform accepted, if any.
    public func deliveredFinal(of operationID: String) throws -> DeliveredFinalStatus? {
        let stmt = try db.cached("SELECT status, record_id FROM operation_final WHERE operation_id = ?")
        defer { stmt.reset() }
        try stmt.bind(operationID, at: 1)
        guard try stmt.step(), let status = OperationStatus(rawValue: stmt.text(0)) else { return nil }
        return DeliveredFinalStatus(status: status, recordID: stmt.int64(1))
    }

    /// Notes that the platform accepted `status` (final) for the operation; the first one stays.
    public func noteDelivered(operationID: String, status: OperationStatus, recordID: Int64, now: Int64) throws {
        guard status.isFinal else { return }
        let stmt = try db.cached("INSERT OR IGNORE INTO operation_final (operation_id, status, record_id, delivered_at) VALUES (?, ?, ?, ?)")
        defer { stmt.reset() }
        try stmt.bind(operationID, at: 1)
        try stmt.bind(status.rawValue, at: 2)
        try stmt.bind(recordID, at: 3)
        try stmt.bind(now, at: 4)
        try stmt.run()
    }

    // MARK: Runs

    /// The run of an operation, if `inbox exec --operations` took it on.
    public func run(of operationID: String) throws -> OperationRun? {
        let stmt = try db.cached("SELECT consumer, inbox_id, state, final_status, started_at FROM operation_runs WHERE operation_id = ?")
        defer { stmt.reset() }
        try stmt.bind(operationID, at: 1)
        guard try stmt.step() else { return nil }
        return OperationRun(operationID: operationID, consumer: stmt.text(0), inboxID: stmt.int64(1),
                            state: OperationRun.State(rawValue: stmt.text(2)) ?? .executing,
                            finalStatus: stmt.optionalText(3).flatMap(OperationStatus.init(rawValue:)),
                            startedAt: stmt.int64(4))
    }

    /// Notes that the operation's handler is about to start.
    public func start(operationID: String, consumer: String, inboxID: Int64, now: Int64) throws {
        let stmt = try db.cached("INSERT INTO operation_runs (operation_id, consumer, inbox_id, state, started_at) VALUES (?, ?, ?, 'executing', ?)")
        defer { stmt.reset() }
        try stmt.bind(operationID, at: 1)
        try stmt.bind(consumer, at: 2)
        try stmt.bind(inboxID, at: 3)
        try stmt.bind(now, at: 4)
        try stmt.run()
    }

    /// Notes the operation's final status (enqueued in the same transaction), with or without a
    /// run started before (a recovered operation found EXECUTING has none).
    public func finish(operationID: String, consumer: String, inboxID: Int64, status: OperationStatus, now: Int64) throws {
        let stmt = try db.cached("""
            INSERT INTO operation_runs (operation_id, consumer, inbox_id, state, final_status, started_at, finished_at)
            VALUES (?, ?, ?, 'final', ?, ?, ?)
            ON CONFLICT (operation_id) DO UPDATE SET state = 'final', final_status = excluded.final_status, finished_at = excluded.finished_at
            """)
        defer { stmt.reset() }
        try stmt.bind(operationID, at: 1)
        try stmt.bind(consumer, at: 2)
        try stmt.bind(inboxID, at: 3)
        try stmt.bind(status.rawValue, at: 4)
        try stmt.bind(now, at: 5)
        try stmt.bind(now, at: 6)
        try stmt.run()
    }

    /// The operation ids any run or inbox notification names (the recovery stores the others).
    public func knownOperationIDs(channel: String) throws -> Set<String> {
        var known = Set<String>()
        let runs = try db.prepare("SELECT operation_id FROM operation_runs")
        while try runs.step() { known.insert(runs.text(0)) }
        let inbox = try db.prepare("""
            SELECT coalesce(json_extract(data, '$.data.id'), json_extract(data, '$.id')) FROM inbox
            WHERE kind = 'notification' AND channel = ? AND json_valid(data)
            """)
        try inbox.bind(channel, at: 1)
        while try inbox.step() {
            if let id = inbox.optionalText(0) { known.insert(id) }
        }
        return known
    }
}
