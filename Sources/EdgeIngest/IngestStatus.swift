import EdgeStore
import Foundation

/// `/healthz` and `/metrics` from the database, on one read connection used from one serial
/// queue (never on the event loop: a query may wait for the writer's lock).
final class IngestStatus: @unchecked Sendable {
    let path: String
    let options: DatabaseOptions
    let queue = DispatchQueue(label: "edgebuf-ingest-status")
    /// Touched only on `queue`.
    private var connection: Connection?

    init(path: String, options: DatabaseOptions) {
        self.path = path
        var options = options
        options.checkOnOpen = false
        options.busyTimeoutMilliseconds = 2000
        self.options = options
    }

    private func db() throws -> Connection {
        if let connection { return connection }
        let opened = try Database.open(path: path, options: options)
        connection = opened
        return opened
    }

    /// Ready: the file opens and a write transaction can begin (then rolls back: nothing written).
    func health() -> IngestResponse {
        do {
            let db = try db()
            try db.execute("BEGIN IMMEDIATE")
            try db.execute("ROLLBACK")
            return IngestResponse(status: 200, contentType: "text/plain", body: Array("ok\n".utf8))
        } catch {
            connection = nil
            return IngestResponse(status: 503, contentType: "text/plain", body: Array("not ready: the database is not writable (\(error))\n".utf8))
        }
    }

    func metrics(counters: IngestCounters) -> IngestResponse {
        var out = ""
        do {
            let db = try db()
            try db.transaction(immediate: false) {
                let totals = try OutboxStore(db).totals()
                out += "# HELP edgebuf_outbox_records Records waiting in the outbox, by class.\n# TYPE edgebuf_outbox_records gauge\n"
                for cls in [RecordClass.critical, .normal, .bulk] {
                    out += "edgebuf_outbox_records{class=\"\(cls.name)\"} \(totals[cls]?.records ?? 0)\n"
                }
                out += "# HELP edgebuf_outbox_bytes Payload bytes waiting in the outbox, by class.\n# TYPE edgebuf_outbox_bytes gauge\n"
                for cls in [RecordClass.critical, .normal, .bulk] {
                    out += "edgebuf_outbox_bytes{class=\"\(cls.name)\"} \(totals[cls]?.bytes ?? 0)\n"
                }
                let dead = try DeadLetterStore(db).total()
                out += "# HELP edgebuf_dead_letters Records the platform refused for good.\n# TYPE edgebuf_dead_letters gauge\n"
                out += "edgebuf_dead_letters \(dead.records)\n"
                out += "# HELP edgebuf_inbox_records Notifications in the inbox.\n# TYPE edgebuf_inbox_records gauge\n"
                out += "edgebuf_inbox_records \(try InboxStore(db).totals().records)\n"
                // Uplink requests by result, over the audit rows retention keeps ([audit]).
                let results = try db.prepare("SELECT json_extract(detail, '$.outcome'), count(*) FROM audit WHERE event = 'request' GROUP BY 1 ORDER BY 1")
                out += "# HELP edgebuf_uplink_requests Uplink requests in the retained audit, by result.\n# TYPE edgebuf_uplink_requests gauge\n"
                while try results.step() {
                    out += "edgebuf_uplink_requests{result=\"\(Self.label(results.text(0)))\"} \(results.int64(1))\n"
                }
                for component in ["uplink", "downlink"] {
                    guard let saved = try RuntimeState.load(db, component: component),
                          let members = try? JSON.members(of: Array(saved.state.utf8)) else { continue }
                    if let phase = members.first(where: { $0.key == "phase" })?.string {
                        out += "# HELP edgebuf_\(component)_phase The \(component)'s phase (1 for the current one).\n# TYPE edgebuf_\(component)_phase gauge\n"
                        out += "edgebuf_\(component)_phase{phase=\"\(Self.label(phase))\"} 1\n"
                    }
                    if component == "uplink" {
                        if let last = members.first(where: { $0.key == "last_success" })?.string, let ms = Timestamp.parse(last) {
                            out += "# HELP edgebuf_uplink_last_success_seconds Unix time of the last delivery.\n# TYPE edgebuf_uplink_last_success_seconds gauge\n"
                            out += "edgebuf_uplink_last_success_seconds \(Double(ms) / 1000)\n"
                        }
                        if let delivered = members.first(where: { $0.key == "delivered_records" }), delivered.type == .number {
                            out += "# HELP edgebuf_uplink_delivered_records_total Records delivered since the daemon started.\n# TYPE edgebuf_uplink_delivered_records_total counter\n"
                            out += "edgebuf_uplink_delivered_records_total \(String(decoding: delivered.raw, as: UTF8.self))\n"
                        }
                    }
                }
            }
        } catch {
            connection = nil
            out += "# the database could not be read: \(Self.label("\(error)"))\n"
        }
        out += counters.prometheus()
        return IngestResponse(status: 200, contentType: "text/plain; version=0.0.4", body: Array(out.utf8))
    }

    /// A label value without quotes, backslashes or line breaks.
    static func label(_ text: String) -> String {
        String(text.prefix(80).map { $0 == "\"" || $0 == "\\" || $0.isNewline ? "_" : $0 })
    }
}
