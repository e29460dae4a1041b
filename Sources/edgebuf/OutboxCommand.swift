import ArgumentParser
import EdgeStore

struct OutboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Inspect the outbox.",
        subcommands: [OutboxList.self]
    )
}

struct OutboxList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List records in drain order (critical, normal, bulk; oldest first).")

    @OptionGroup var global: GlobalOptions

    @Option(help: "At most this many records.")
    var limit = 100

    @Flag(help: "One JSON object per line, with the payload.")
    var json = false

    func run() throws {
        do {
            _ = try global.bootstrapLogging()
            let db = try global.openConnection()
            for record in try OutboxStore(db).list(limit: max(limit, 0)) {
                print(json ? recordJSON(record) : recordLine(record))
            }
        } catch {
            throw fail(error)
        }
    }
}

/// A record as a JSON line: its metadata and its payload as JSON.
func recordJSON(_ record: StoredRecord, extra: (inout JSONObject) -> Void = { _ in }) -> String {
    var out = JSONObject()
    out.add("id", record.id)
    out.add("kind", record.kind.rawValue)
    out.add("class", record.recordClass.name)
    out.add("target", record.target)
    if let child = record.child { out.add("child", child) }
    out.add("event_time", Timestamp.format(milliseconds: record.eventTime))
    out.add("enqueued_at", Timestamp.format(milliseconds: record.enqueuedAt))
    out.add("bytes", record.payload.count)
    extra(&out)
    out.add("payload", rawJSON: record.payload)
    return out.json
}

/// A record as one line of text.
func recordLine(_ record: StoredRecord) -> String {
    let who = record.child.map { "\(record.target)/\($0)" } ?? record.target
    return "\(String(record.id).leftPadded(8))  \(record.kind.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)) \(record.recordClass.name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(Timestamp.format(milliseconds: record.eventTime))  \(who)  \(record.payload.count) B"
}
