import ArgumentParser
import EdgeStore
import Foundation

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the outbox, dead letters, uplink and downlink state, the inbox, audit head and database.",
        discussion: "Never shows secrets or record contents."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        do {
            _ = try global.bootstrapLogging()
            let report = try StatusReport.collect(global: global)
            print(json ? report.json : report.text)
        } catch {
            throw fail(error)
        }
    }
}

/// What `status` reports, gathered in one read transaction so the numbers agree.
struct StatusReport {
    var path = ""
    var schemaVersion = 0
    var fileBytes: Int64 = 0
    var breakdown: [OutboxStore.Breakdown] = []
    var deadLetters = OutboxTotals()
    var auditHead: AuditEntry?
    var now: Int64 = 0
    /// The uplink's last reported state (a JSON object) and when, if a daemon ever ran.
    var uplink: (updatedAt: Int64, state: String)?
    /// The downlink's last reported state, if a daemon with a downlink ever ran.
    var downlink: (updatedAt: Int64, state: String)?
    var inbox = InboxStore.Totals(records: 0, gaps: 0, bytes: 0)
    var consumers: [InboxConsumer] = []

    static func collect(global: GlobalOptions) throws -> StatusReport {
        let db = try global.openConnection()
        var report = StatusReport()
        report.path = global.databasePath
        report.now = Timestamp.nowMilliseconds()
        try db.transaction(immediate: false) {
            report.schemaVersion = try Migrator.version(of: db)
            report.breakdown = try OutboxStore(db).breakdown()
            report.deadLetters = try DeadLetterStore(db).total()
            report.auditHead = try AuditLog(db).head()
            report.fileBytes = try db.scalarInt("PRAGMA page_count") * db.scalarInt("PRAGMA page_size")
            report.uplink = try RuntimeState.load(db, component: "uplink")
            report.downlink = try RuntimeState.load(db, component: "downlink")
            report.inbox = try InboxStore(db).totals()
            report.consumers = try InboxStore(db).consumers()
        }
        return report
    }

    var totalRecords: Int64 { breakdown.reduce(0) { $0 + $1.records } }
    var totalBytes: Int64 { breakdown.reduce(0) { $0 + $1.bytes } }
    var oldest: Int64? { breakdown.map(\.oldestEnqueuedAt).min() }

    var json: String {
        var out = JSONObject()
        out.add("database", path)
        out.add("schema_version", schemaVersion)
        out.add("file_bytes", fileBytes)
        var outbox = JSONObject()
        outbox.add("records", totalRecords)
        outbox.add("bytes", totalBytes)
        outbox.add("oldest_enqueued_at", oldest.map { Timestamp.format(milliseconds: $0) })
        outbox.add("oldest_age_seconds", oldest.map { Double(now - $0) / 1000 } ?? 0)
        var groups: [UInt8] = [UInt8(ascii: "[")]
        for (index, row) in breakdown.enumerated() {
            if index > 0 { groups.append(UInt8(ascii: ",")) }
            var item = JSONObject()
            item.add("kind", row.kind.rawValue)
            item.add("class", row.recordClass.name)
            item.add("records", row.records)
            item.add("bytes", row.bytes)
            item.add("oldest_enqueued_at", Timestamp.format(milliseconds: row.oldestEnqueuedAt))
            groups += Array(item.json.utf8)
        }
        groups.append(UInt8(ascii: "]"))
        outbox.add("by_kind_and_class", rawJSON: groups)
        out.add("outbox", rawJSON: Array(outbox.json.utf8))
        var dead = JSONObject()
        dead.add("records", deadLetters.records)
        dead.add("bytes", deadLetters.bytes)
        out.add("dead_letters", rawJSON: Array(dead.json.utf8))
        var audit = JSONObject()
        audit.add("seq", auditHead?.seq ?? 0)
        audit.add("hash", auditHead?.hashHex)
        out.add("audit_head", rawJSON: Array(audit.json.utf8))
        for (name, saved) in [("uplink", uplink), ("downlink", downlink)] {
            guard let saved else {
                out.add(name, nil as String?)
                continue
            }
            var state = JSONObject()
            state.add("updated_at", Timestamp.format(milliseconds: saved.updatedAt))
            state.add("state", rawJSON: Array(saved.state.utf8))
            out.add(name, rawJSON: Array(state.json.utf8))
        }
        var inboxJSON = JSONObject()
        inboxJSON.add("records", inbox.records)
        inboxJSON.add("gap_markers", inbox.gaps)
        inboxJSON.add("bytes", inbox.bytes)
        inboxJSON.add("newest_id", inbox.newestID)
        inboxJSON.add("oldest_received_at", inbox.oldestReceivedAt.map { Timestamp.format(milliseconds: $0) })
        var list: [UInt8] = [UInt8(ascii: "[")]
        for (index, consumer) in consumers.enumerated() {
            if index > 0 { list.append(UInt8(ascii: ",")) }
            var item = JSONObject()
            item.add("consumer", consumer.name)
            item.add("position", consumer.position)
            item.add("updated_at", Timestamp.format(milliseconds: consumer.updatedAt))
            list += Array(item.json.utf8)
        }
        list.append(UInt8(ascii: "]"))
        inboxJSON.add("consumers", rawJSON: list)
        out.add("inbox", rawJSON: Array(inboxJSON.json.utf8))
        return out.json
    }

    var text: String {
        var lines: [String] = []
        lines.append("database     \(path) (schema \(schemaVersion), \(Self.size(fileBytes)) on disk)")
        if let oldest {
            lines.append("outbox       \(totalRecords) records, \(Self.size(totalBytes)); oldest enqueued \(Self.age(now - oldest)) ago")
        } else {
            lines.append("outbox       empty")
        }
        for row in breakdown {
            let label = "\(row.kind.rawValue)/\(row.recordClass.name)"
            lines.append("  \(label.padding(toLength: 26, withPad: " ", startingAt: 0)) \(String(row.records).leftPadded(9)) records  \(Self.size(row.bytes).leftPadded(10))")
        }
        lines.append("dead letters \(deadLetters.records) records, \(Self.size(deadLetters.bytes))")
        if let uplink, let value = Self.reader(uplink.state) {
            var line = "uplink       \(value("phase") ?? "?") (\(value("platform") ?? "?"), reported \(Self.age(now - uplink.updatedAt)) ago)"
            if let success = value("last_success") { line += "; last success \(success)" }
            if let backoff = value("current_backoff_ms") { line += "; backoff \(backoff) ms" }
            lines.append(line)
            if let error = value("last_error") { lines.append("  last error: \(error)") }
        } else {
            lines.append("uplink       never ran on this database")
        }
        if let downlink, let value = Self.reader(downlink.state) {
            var line = "downlink     \(value("phase") ?? "?") (reported \(Self.age(now - downlink.updatedAt)) ago)"
            if let granted = value("granted_timeout_ms") { line += "; poll hold \(granted) ms" }
            if let last = value("last_notification_at") { line += "; last notification \(last)" }
            if let reconnects = value("reconnects") { line += "; reconnects \(reconnects)" }
            lines.append(line)
            if let reason = value("stop_reason") { lines.append("  stopped: \(reason)") }
            if let error = value("last_error") { lines.append("  last error: \(error)") }
        } else {
            lines.append("downlink     never ran on this database")
        }
        if let newest = inbox.newestID {
            lines.append("inbox        \(inbox.records) rows (\(inbox.gaps) gap markers), \(Self.size(inbox.bytes)); newest id \(newest)")
        } else {
            lines.append("inbox        empty")
        }
        for consumer in consumers {
            lines.append("  consumer \(consumer.name) at \(consumer.position)")
        }
        if let head = auditHead {
            lines.append("audit head   #\(head.seq) \(head.hashHex.prefix(16))… at \(Timestamp.format(milliseconds: head.at))")
        } else {
            lines.append("audit head   (empty)")
        }
        return lines.joined(separator: "\n")
    }

    /// Reads members of a saved state object as text (strings unquoted), nil when absent or null.
    static func reader(_ state: String) -> ((String) -> String?)? {
        guard let members = try? JSON.members(of: Array(state.utf8)) else { return nil }
        return { key in
            guard let member = members.first(where: { $0.key == key }), member.type != .null else { return nil }
            return member.string ?? String(decoding: member.raw, as: UTF8.self)
        }
    }

    static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func age(_ milliseconds: Int64) -> String {
        let seconds = max(milliseconds / 1000, 0)
        if seconds < 120 { return "\(seconds) s" }
        if seconds < 7200 { return "\(seconds / 60) min" }
        if seconds < 172_800 { return "\(seconds / 3600) h" }
        return "\(seconds / 86400) d"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
