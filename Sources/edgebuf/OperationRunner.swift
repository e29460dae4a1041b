import EdgeBuffer
import EdgeDownlink
import EdgeStore
import EdgeTransport
import EdgeUplink
import Foundation

/// `inbox exec --operations`: Cumulocity device control on top of the inbox. For each
/// operation the handler runs once, between an EXECUTING and a final status, both enqueued in
/// the outbox in the transaction that also notes the operation's run (`operation_runs`), so a
/// crash at any moment leaves either no trace of a start, a start (then the crash rule below
/// applies), or the final status: never two.
///
/// - Which rows are operations: notifications whose data (bare, or in Cumulocity's
///   `{"realtimeAction", "data"}` wrapper) has an `id` and a `status`. PENDING ones are run;
///   UPDATE echoes of the device's own statuses, DELETEs and other rows are passed over.
/// - The crash rule: an operation whose run was started but never finished (the handler or
///   `inbox exec` was killed, the device lost power) is not run again; it ends FAILED with the
///   reason "interrupted". Its handler may have done part of its work or all of it: running a
///   restart or a firmware update a second time is worse than telling the operator, who can
///   create the operation again. The same holds for an operation the recovery finds EXECUTING
///   that this device has no run of.
/// - Recovery: at start and after every gap marker, the device's PENDING and EXECUTING
///   operations are read over REST and those neither in the inbox nor run here are stored as
///   notifications flagged `recovered`, after the gap: the cursor reaches them next.
final class OperationRunner {
    let db: Connection
    let consumer: String
    let channel: String
    let deviceID: String
    let outbox: OutboxConfiguration
    let query: OperationQuery
    let client: HTTPClient
    let secrets: [String]
    let deviceSecret: DeviceSecret?

    init(db: Connection, consumer: String, deviceID: String, outbox: OutboxConfiguration, uplink: UplinkConfiguration,
         secrets: [String], client: HTTPClient, pageSize: Int = 100) {
        self.db = db
        self.consumer = consumer
        self.deviceID = deviceID
        self.channel = "/operations/\(deviceID)"
        self.outbox = outbox
        self.query = OperationQuery(configuration: uplink, pageSize: pageSize)
        self.client = client
        self.secrets = secrets.filter { !$0.isEmpty }
        self.deviceSecret = uplink.secret
    }

    /// What an inbox row says about an operation.
    struct Notice: Equatable {
        var operationID: String
        var status: String
        var realtimeAction: String?
        var recovered: Bool
    }

    /// The operation in a notification, or nil for anything else.
    static func notice(_ entry: InboxEntry) -> Notice? {
        guard entry.kind == .notification,
              let object = try? JSONSerialization.jsonObject(with: Data(entry.data.utf8)) as? [String: Any] else { return nil }
        var operation = object
        var action = entry.realtimeAction
        if let inner = object["data"] as? [String: Any], object["realtimeAction"] != nil || object["id"] == nil {
            operation = inner
            action = action ?? (object["realtimeAction"] as? String)
        }
        let id: String
        if let text = operation["id"] as? String { id = text } else if let number = operation["id"] as? NSNumber { id = number.stringValue } else { return nil }
        guard let status = operation["status"] as? String else { return nil }
        return Notice(operationID: id, status: status, realtimeAction: action, recovered: entry.recovered)
    }

    /// What to do with an operation notice, given this device's run of it (pure).
    enum Step: Equatable {
        /// Not an operation to act on (a DELETE, an echo of our own status, a final one).
        case passOver(String)
        /// Run the handler: EXECUTING, then the outcome.
        case run
        /// The crash rule: FAILED "interrupted", the handler not run again.
        case interrupted(String)
    }

    static func step(_ notice: Notice, run: OperationRun?, consumer: String) -> Step {
        if notice.realtimeAction == "DELETE" { return .passOver("deleted on the platform") }
        if let run {
            if run.state == .final { return .passOver("handled already (\(run.finalStatus?.rawValue ?? "final"))") }
            if run.consumer != consumer { return .passOver("taken on by consumer \(run.consumer)") }
            return .interrupted("interrupted: edgebuf inbox exec stopped while the handler ran (started \(Timestamp.format(milliseconds: run.startedAt))); it is not run again, as what it did is unknown")
        }
        switch notice.status {
        case "PENDING": return .run
        case "EXECUTING" where notice.recovered:
            return .interrupted("interrupted: the platform shows the operation EXECUTING, and this device has no record of running it to the end")
        default: return .passOver("status \(notice.status)")
        }
    }

    // MARK: Statuses

    /// The outcome of a handler, as an operation's final status.
    struct Final {
        var status: OperationStatus
        var failureReason: String?
        var fragments: [UInt8]?
        var note: String?
    }

    /// An operation status record, validated like any other input.
    func record(_ operationID: String, _ status: OperationStatus, failureReason: String? = nil, fragments: [UInt8]? = nil) throws -> NewRecord {
        var input = RecordInput(kind: .operationStatus)
        input.operationID = operationID
        input.status = status.rawValue
        input.failureReason = failureReason
        input.fragments = fragments
        return try input.validated(now: Timestamp.nowMilliseconds(), maxBodyBytes: outbox.maxBodyBytes)
    }

    /// EXECUTING and the run's start, in one transaction, before the handler starts.
    func start(_ notice: Notice, entry: InboxEntry) throws {
        let record = try record(notice.operationID, .executing)
        let now = Timestamp.nowMilliseconds()
        try db.transaction {
            let id = try OutboxStore(db).admit([record], policy: outbox.database.capacity, now: now)[0]
            try OperationStore(db).start(operationID: notice.operationID, consumer: consumer, inboxID: entry.id, now: now)
            var detail = JSONObject()
            detail.add("consumer", consumer)
            detail.add("inbox_id", entry.id)
            detail.add("operation_id", notice.operationID)
            detail.add("status", "EXECUTING")
            detail.add("record_id", id)
            if notice.recovered { detail.add("recovered", true) }
            try AuditLog(db).append("operation_started", detail, at: now)
        }
    }

    /// The final status, the run's end and its audit row, in one transaction.
    func finish(_ notice: Notice, entry: InboxEntry, final: Final, event: String, attempts: Int?) throws {
        var final = final
        let record: NewRecord
        do {
            record = try self.record(notice.operationID, final.status, failureReason: final.failureReason, fragments: final.fragments)
        } catch let error as EdgeStore.ValidationError where final.fragments != nil {
            // Fragments the platform would refuse (or too large to send) must not cost the
            // status: it goes without them, and the audit says why.
            final.note = "the result fragments were left out: \(error.field) \(error.reason)"
            final.fragments = nil
            record = try self.record(notice.operationID, final.status, failureReason: final.failureReason)
        }
        let now = Timestamp.nowMilliseconds()
        try db.transaction {
            let id = try OutboxStore(db).admit([record], policy: outbox.database.capacity, now: now)[0]
            try OperationStore(db).finish(operationID: notice.operationID, consumer: consumer, inboxID: entry.id, status: final.status, now: now)
            var detail = JSONObject()
            detail.add("consumer", consumer)
            detail.add("inbox_id", entry.id)
            detail.add("operation_id", notice.operationID)
            detail.add("status", final.status.rawValue)
            detail.add("record_id", id)
            detail.add("attempts", attempts)
            detail.add("failure_reason", final.failureReason)
            detail.add("fragments", final.fragments != nil)
            detail.add("note", final.note)
            if notice.recovered { detail.add("recovered", true) }
            try AuditLog(db).append(event, detail, at: now)
        }
        let reason = final.failureReason.map { ": \($0)" } ?? ""
        FileOutput.standardError.write("edgebuf: inbox exec: operation \(notice.operationID) (inbox \(entry.id)): \(final.status.rawValue)\(reason)\n")
    }

    /// The final status of a handler's outcome: SUCCESSFUL with the last stdout line's JSON
    /// object as fragments on exit 0; FAILED with the exit status and the last stderr line
    /// otherwise (secrets redacted, control characters replaced, at most 1 KiB).
    func final(of outcome: InboxExec.Outcome, attempts: Int, timeout: Double) -> Final {
        if outcome.succeeded {
            guard let line = Self.lastLine(outcome.stdoutTail), !line.isEmpty else { return Final(status: .successful) }
            let bytes = Array(line.utf8)
            guard let parsed = try? JSON.minify(bytes), parsed.type == .object else {
                return Final(status: .successful, note: "the last stdout line is not a JSON object: no result fragments")
            }
            return Final(status: .successful, fragments: parsed.raw)
        }
        var reason = outcome.timedOut ? "killed after the --timeout of \(Self.seconds(timeout))" : outcome.description
        if attempts > 1 { reason += " (attempt \(attempts))" }
        if let line = Self.lastLine(outcome.stderrTail), !line.isEmpty { reason += ": " + line }
        return Final(status: .failed, failureReason: Self.bounded(redacted(reason)))
    }

    func redacted(_ text: String) -> String {
        var out = text
        for secret in secrets {
            out = out.replacingOccurrences(of: secret, with: "<redacted>")
            out = out.replacingOccurrences(of: Data(secret.utf8).base64EncodedString(), with: "<redacted>")
        }
        if let deviceSecret { out = deviceSecret.redacted(in: out) }
        return out
    }

    /// Control characters replaced by spaces, cut to at most 1 KiB at a character boundary.
    static func bounded(_ text: String) -> String {
        var out = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : $0 }))
        let limit = OperationStatus.maxFailureReasonBytes
        if out.utf8.count > limit {
            var cut = ""
            for character in out {
                if cut.utf8.count + character.utf8.count > limit - 3 { break }
                cut.append(character)
            }
            out = cut + "..."
        }
        return out
    }

    /// The last non-empty line of a tail of output.
    static func lastLine(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).last { !$0.allSatisfy(\.isWhitespace) }
            .map { String($0).trimmingCharacters(in: .whitespaces) }
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }

    // MARK: Recovery

    /// Reads the device's PENDING and EXECUTING operations over REST and stores the ones the
    /// inbox and the runs do not know, flagged `recovered`. Throws when the platform cannot be
    /// read (nothing is stored then).
    @discardableResult
    func recover(trigger: String, gapID: Int64?) async throws -> Int {
        let started = ContinuousClock.now
        let result: (operations: [OperationQuery.Operation], pages: Int)
        do {
            result = try await query.fetch(deviceID: deviceID, statuses: ["PENDING", "EXECUTING"], client: client)
        } catch {
            throw CLIFailure(status: .unavailable, message: "the recovery of operations \(trigger) failed: \(error.description)")
        }
        let now = Timestamp.nowMilliseconds()
        let stored: [Int64] = try db.transaction {
            let known = try OperationStore(db).knownOperationIDs(channel: channel)
            let missing = result.operations.filter { !known.contains($0.id) }
            var detail = JSONObject()
            detail.add("consumer", consumer)
            detail.add("trigger", trigger)
            detail.add("gap_id", gapID)
            detail.add("device_id", deviceID)
            detail.add("found", result.operations.count)
            detail.add("pages", result.pages)
            let took = ContinuousClock.now - started
            detail.add("duration_ms", took.components.seconds * 1000 + took.components.attoseconds / 1_000_000_000_000_000)
            return try InboxStore(db).insertRecovered(missing.map { ($0.id, $0.data) }, channel: channel, audit: detail, receivedAt: now)
        }
        if !stored.isEmpty {
            FileOutput.standardError.write("edgebuf: inbox exec: the recovery \(trigger) found \(stored.count) operation(s) the inbox did not hold (inbox \(stored.first!)...\(stored.last!))\n")
        }
        return stored.count
    }
}
