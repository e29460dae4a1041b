import EdgeBuffer
import EdgeDownlink
import EdgeStore
import EdgeTransport
import EdgeUplink
import Foundation
import Logging

extension InboxExec {
    /// `inbox exec --operations` (see `OperationRunner`).
    func runOperations(logger: Logger) async throws {
        let document = try global.document()
        let outboxConfiguration = try OutboxConfiguration(document: document)
        let uplink = try UplinkConfiguration(document: document)
        let downlink = try DownlinkSettings(document: document)
        try readOtherSections(document)
        try document.finish()
        guard uplink.isConfigured, uplink.platform == .cumulocity else {
            throw ConfigurationError(file: global.config ?? "(no --config)", key: "uplink.platform",
                                     reason: "inbox exec --operations reports operation statuses to Cumulocity and reads operations over its REST API: set [uplink] platform = \"cumulocity\" with url, username and password")
        }
        let channelDevices = downlink.session.channels.compactMap { channel -> String? in
            guard channel.hasPrefix("/operations/"), !channel.contains("*") else { return nil }
            return String(channel.dropFirst("/operations/".count))
        }
        guard let deviceID = device ?? (channelDevices.count == 1 ? channelDevices[0] : nil) else {
            throw CLIFailure(status: .usage, message: "--operations needs the device's id: give --device ID, or subscribe [downlink] channels to exactly one /operations/ID")
        }
        let cursor = try InboxCursor(global: global, options: options)
        let client = try HTTPClient(configuration: uplink.transport, logger: logger)
        do {
            try await handleOperations(cursor: cursor, client: client, deviceID: deviceID, outbox: outboxConfiguration,
                                       uplink: uplink, downlink: downlink)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    private func handleOperations(cursor: InboxCursor, client: HTTPClient, deviceID: String, outbox outboxConfiguration: OutboxConfiguration,
                                  uplink: UplinkConfiguration, downlink: DownlinkSettings) async throws {
        let runner = OperationRunner(db: cursor.db, consumer: options.consumer, deviceID: deviceID, outbox: outboxConfiguration,
                                     uplink: uplink, secrets: [uplink.password?.value, downlink.session.password?.value].compactMap { $0 },
                                     client: client, pageSize: recoveryPageSize)
        // At start: what was created while nothing listened (before the first run, or while
        // this device was off). A platform out of reach does not stop the consumer: the
        // downlink's gap marker at its next handshake brings the recovery again.
        do {
            try await runner.recover(trigger: "at start", gapID: nil)
        } catch {
            FileOutput.standardError.write("edgebuf: inbox exec: \(error); going on, the next gap marker retries it\n")
        }
        let attempts = maxAttempts > 0 ? maxAttempts : 1
        _ = try await cursor.run(once: options.once, confirmEach: true) { entry in
            if entry.kind == .gap {
                // The gap's promise: what may have been missed is fetched before moving on.
                var delay = retryInitial
                while true {
                    do {
                        try await runner.recover(trigger: "after gap marker \(entry.id)", gapID: entry.id)
                        return true
                    } catch {
                        FileOutput.standardError.write("edgebuf: inbox exec: \(error); retrying in \(String(format: "%.1f", delay)) s\n")
                        try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                        delay = min(delay * 2, retryMax)
                    }
                }
            }
            guard let notice = OperationRunner.notice(entry) else { return true }
            let run = try OperationStore(cursor.db).run(of: notice.operationID)
            switch OperationRunner.step(notice, run: run, consumer: options.consumer) {
            case .passOver:
                return true
            case .interrupted(let reason):
                try runner.finish(notice, entry: entry, final: OperationRunner.Final(status: .failed, failureReason: OperationRunner.bounded(reason)),
                                  event: "operation_interrupted", attempts: nil)
                return true
            case .run:
                try runner.start(notice, entry: entry)
                var delay = retryInitial
                var attempt = 0
                while true {
                    attempt += 1
                    let outcome = Self.execute(command, entry: entry, timeout: timeout, capture: true,
                                               environment: ["EDGEBUF_OPERATION_ID": notice.operationID])
                    if outcome.succeeded || attempt >= attempts {
                        let final = runner.final(of: outcome, attempts: attempt, timeout: timeout)
                        // The handler has run: its outcome waits for room (a full outbox under
                        // reject-new, a full disk) rather than being lost to "interrupted".
                        var wait = retryInitial
                        while true {
                            do {
                                try runner.finish(notice, entry: entry, final: final, event: "operation_finished", attempts: attempt)
                                return true
                            } catch let error where error is OutboxFullError || (error as? DatabaseError)?.isDiskFull == true {
                                FileOutput.standardError.write("edgebuf: inbox exec: operation \(notice.operationID): its \(final.status.rawValue) cannot be stored yet (\(error)); retrying in \(String(format: "%.1f", wait)) s\n")
                                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
                                wait = min(wait * 2, retryMax)
                            }
                        }
                    }
                    var detail = JSONObject()
                    detail.add("consumer", options.consumer)
                    detail.add("inbox_id", entry.id)
                    detail.add("operation_id", notice.operationID)
                    detail.add("result", outcome.description)
                    detail.add("attempt", attempt)
                    detail.add("retry_in_ms", Int64(delay * 1000))
                    try cursor.db.transaction { _ = try AuditLog(cursor.db).append("inbox_exec_failed", detail) }
                    FileOutput.standardError.write("edgebuf: inbox exec: operation \(notice.operationID): \(outcome.description) (attempt \(attempt) of \(attempts)); retrying in \(String(format: "%.1f", delay)) s\n")
                    try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                    delay = min(delay * 2, retryMax)
                }
            }
        }
    }
}
