import ArgumentParser
import EdgeBuffer
import EdgeStore

struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Store records in the outbox; each is durable when the command acknowledges it.",
        discussion: """
            One record: `edgebuf enqueue property|message|child-property|measurement|operation-status ...`.
            A stream: `edgebuf enqueue --jsonl [FILE]` reads one JSON object per line (stdin \
            without FILE), with "kind" and the fields in snake_case, e.g.
              {"kind": "property", "device_id": "d1", "service_id": "Battery", "properties": {"level": 87}}
            Lines are committed in groups as they arrive. A bad line is reported on stderr with \
            its number and not stored; the others are. Exit status 65 if any line was refused.
            """,
        subcommands: [EnqueueJSONLines.self, EnqueueProperty.self, EnqueueMessage.self, EnqueueChildProperty.self, EnqueueMeasurement.self, EnqueueOperationStatus.self],
        defaultSubcommand: EnqueueJSONLines.self
    )
}

/// `edgebuf enqueue --jsonl [FILE]`: a default subcommand, because a positional FILE on the
/// parent would swallow the record kinds.
struct EnqueueJSONLines: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jsonl",
        abstract: "Enqueue a stream of JSON lines (edgebuf enqueue --jsonl [FILE])."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Read JSON lines (from FILE, or stdin).")
    var jsonl = false

    @Argument(help: ArgumentHelp("A file of JSON lines (with --jsonl); stdin when absent.", valueName: "file"))
    var file: String?

    @Flag(help: "Stop at the first bad line (the lines before it stay stored).")
    var strict = false

    @Flag(help: "Print {\"line\": N, \"id\": ID} on stdout for each record once it is committed.")
    var ack = false

    @Flag(help: "Show progress on stderr even when it is not a terminal.")
    var progress = false

    func run() throws {
        // Not in validate(): ArgumentParser validates this parent for every subcommand too.
        guard jsonl else {
            throw fail(CLIFailure(status: .usage, message: "give a record kind (property, message, child-property, measurement, operation-status) or --jsonl; see edgebuf enqueue --help"))
        }
        do {
            _ = try global.bootstrapLogging()
            let outbox = try global.openOutbox()
            defer { outbox.close() }
            let reader = JSONLinesEnqueuer(outbox: outbox, strict: strict, ack: ack,
                                           showProgress: progress || FileOutput.standardError.isTerminal)
            let summary = try reader.run(path: file)
            if summary.rejected > 0 {
                throw CLIFailure(status: .invalidInput, message: "\(summary.rejected) of \(summary.lines) lines were refused and NOT stored (see the messages above); \(summary.stored) stored")
            }
        } catch {
            throw fail(error)
        }
    }
}

/// Options shared by the one-record subcommands.
struct RecordOptions: ParsableArguments {
    @Option(name: .customLong("class"), help: ArgumentHelp("critical, normal or bulk.", valueName: "class"))
    var recordClass: String?

    @Flag(help: "Print {\"id\": ID} instead of the bare id.")
    var json = false
}

/// Validates and stores one record, printing its id once durable.
func enqueueOne(_ input: RecordInput, global: GlobalOptions, options: RecordOptions) throws {
    do {
        _ = try global.bootstrapLogging()
        var input = input
        input.recordClass = options.recordClass
        let configuration = try global.outboxConfiguration()
        // Validate before opening anything: bad input changes nothing, not even the file system.
        let record = try input.validated(now: Timestamp.nowMilliseconds(), maxBodyBytes: configuration.maxBodyBytes)
        let outbox = try Outbox(path: global.databasePath, configuration: configuration)
        defer { outbox.close() }
        let id = try outbox.enqueueBlocking([record])[0]
        if options.json {
            var out = JSONObject()
            out.add("id", id)
            print(out.json)
        } else {
            print(id)
        }
    } catch {
        throw fail(error)
    }
}

/// Reads a JSON-valued option.
func jsonBytes(_ text: String?) -> [UInt8]? { text.map { Array($0.utf8) } }

struct EnqueueProperty: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "property", abstract: "Enqueue an IoTDA property report of one service.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("device"), help: "The device id.") var device: String
    @Option(name: .customLong("service"), help: "The service id of the product model.") var service: String
    @Option(help: ArgumentHelp("A JSON object, e.g. '{\"level\": 87}'.", valueName: "json")) var properties: String
    @Option(help: ArgumentHelp("Time of measurement, RFC 3339 (default: now).", valueName: "time")) var eventTime: String?
    @OptionGroup var options: RecordOptions

    func run() throws {
        var input = RecordInput(kind: .property)
        input.deviceID = device
        input.serviceID = service
        input.properties = jsonBytes(properties)
        input.eventTime = eventTime
        try enqueueOne(input, global: global, options: options)
    }
}

struct EnqueueMessage: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "message", abstract: "Enqueue an IoTDA device message.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("device"), help: "The device id.") var device: String
    @Option(help: "The message name.") var name: String
    @Option(help: ArgumentHelp("Any JSON value, e.g. '\"door open\"' or '{\"door\": \"open\"}'.", valueName: "json")) var content: String
    @Option(help: "The message id (default: a stable id derived from the record).") var id: String?
    @OptionGroup var options: RecordOptions

    func run() throws {
        var input = RecordInput(kind: .message)
        input.deviceID = device
        input.name = name
        input.content = jsonBytes(content)
        input.messageID = id
        try enqueueOne(input, global: global, options: options)
    }
}

struct EnqueueChildProperty: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "child-property", abstract: "Enqueue a property report of a gateway's child device.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("gateway"), help: "The gateway's device id.") var gateway: String
    @Option(name: .customLong("device"), help: "The child device id.") var device: String
    @Option(name: .customLong("service"), help: "The service id of the product model.") var service: String
    @Option(help: ArgumentHelp("A JSON object.", valueName: "json")) var properties: String
    @Option(help: ArgumentHelp("Time of measurement, RFC 3339 (default: now).", valueName: "time")) var eventTime: String?
    @OptionGroup var options: RecordOptions

    func run() throws {
        var input = RecordInput(kind: .childProperty)
        input.gatewayID = gateway
        input.deviceID = device
        input.serviceID = service
        input.properties = jsonBytes(properties)
        input.eventTime = eventTime
        try enqueueOne(input, global: global, options: options)
    }
}

struct EnqueueMeasurement: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "measurement", abstract: "Enqueue a Cumulocity measurement.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The source managed object id.") var source: String
    @Option(help: "The measurement type, e.g. c8y_TemperatureMeasurement.") var type: String
    @Option(help: ArgumentHelp("A JSON object of fragments, e.g. '{\"c8y_Temperature\": {\"T\": {\"value\": 21.5, \"unit\": \"C\"}}}'.", valueName: "json")) var fragments: String
    @Option(help: ArgumentHelp("Time of measurement, RFC 3339 (default: now).", valueName: "time")) var time: String?
    @OptionGroup var options: RecordOptions

    func run() throws {
        var input = RecordInput(kind: .measurement)
        input.source = source
        input.type = type
        input.fragments = jsonBytes(fragments)
        input.time = time
        try enqueueOne(input, global: global, options: options)
    }
}

struct EnqueueOperationStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operation-status",
        abstract: "Enqueue the status of a Cumulocity operation (sent with PUT /devicecontrol/operations/ID; class critical unless --class says otherwise).",
        discussion: "Statuses of one operation reach the platform in order: EXECUTING is never sent after SUCCESSFUL or FAILED of the same operation (one that would be is dead-lettered with the reason)."
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "The operation id.") var id: String
    @Option(help: "EXECUTING, SUCCESSFUL or FAILED.") var status: String
    @Option(help: ArgumentHelp("Why the operation failed (FAILED only; one line, at most 1 KiB).", valueName: "text")) var failureReason: String?
    @Option(help: ArgumentHelp("A JSON object of result fragments, e.g. '{\"c8y_Command\": {\"result\": \"ok\"}}'.", valueName: "json")) var fragments: String?
    @OptionGroup var options: RecordOptions

    func run() throws {
        var input = RecordInput(kind: .operationStatus)
        input.operationID = id
        input.status = status
        input.failureReason = failureReason
        input.fragments = jsonBytes(fragments)
        try enqueueOne(input, global: global, options: options)
    }
}
