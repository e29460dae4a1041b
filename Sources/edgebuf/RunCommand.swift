import ArgumentParser
import EdgeBuffer
import EdgeDownlink
import EdgeIngest
import EdgeStore
import EdgeUplink
import Logging
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: the uplink drains the outbox whenever the network allows; the downlink receives notifications into the inbox.",
        discussion: "Runs the uplink if [uplink] is configured, the downlink if [downlink] is, and the local ingest server if [ingest] is. SIGTERM or SIGINT stops it gracefully: an uplink request in flight is abandoned without deleting anything (it is sent again on the next start), the downlink disconnects; exit 0."
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let logger: Logger
        var services: [any Service] = []
        do {
            logger = try global.bootstrapLogging()
            let engines = try makeEngines(global: global, logger: logger)
            if let uplink = engines.uplink { services.append(uplink) }
            if let downlink = engines.downlink { services.append(downlink) }
            if let ingest = engines.ingest { services.append(ingest) }
            services.append(engines.auditRetention)
            services.append(try DatabaseFileGuard(path: global.databasePath))
        } catch {
            throw fail(error)
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            throw fail(error)
        }
    }
}

/// The engines the configuration asks for, and the audit's retention; fails clearly when
/// neither engine is configured.
func makeEngines(global: GlobalOptions, logger: Logger) throws -> (uplink: SyncEngine?, downlink: DownlinkEngine?, ingest: IngestService?, auditRetention: AuditRetentionService) {
    let document = try global.document()
    let outbox = try OutboxConfiguration(document: document)
    let uplink = try UplinkConfiguration(document: document)
    let downlink = try DownlinkSettings(document: document)
    let ingest = try IngestConfiguration(document: document)
    _ = try document.section("log")
    try document.finish()
    guard uplink.isConfigured || downlink.isConfigured || ingest.isConfigured else {
        throw CLIFailure(status: .configError, message: "nothing to run: give --config with an [uplink] section (platform, url and credentials), a [downlink] section (url and channels) and/or an [ingest] section; see the README")
    }
    // Open (create, check, migrate) before the engines start, so a bad file fails here.
    _ = try Database.open(path: global.databasePath, options: outbox.database.options)
    let checked = checkedOnce(outbox.database.options)
    var limits = uplink
    limits.limits.maxBodyBytes = outbox.maxBodyBytes
    // The ingest server's commits wake the uplink at once (the outbox's commit hook).
    let wake = WakeSignal()
    let sync = uplink.isConfigured
        ? try SyncEngine(configuration: limits, databasePath: global.databasePath, databaseOptions: checked, wake: wake, logger: logger)
        : nil
    var ingestOutbox = outbox
    ingestOutbox.database.checkOnOpen = false  // checked above
    let serve = ingest.isConfigured
        ? IngestService(configuration: ingest, recordLimit: outbox.maxBodyBytes,
                        outbox: try Outbox(path: global.databasePath, configuration: ingestOutbox, onCommit: { wake.signal() }),
                        databasePath: global.databasePath, databaseOptions: checked, logger: logger)
        : nil
    let receive = downlink.isConfigured
        ? try DownlinkEngine(settings: downlink, databasePath: global.databasePath, databaseOptions: checked, logger: logger)
        : nil
    let retention = AuditRetentionService(path: global.databasePath, options: checked,
                                          retention: outbox.database.auditRetention, logger: logger)
    return (sync, receive, serve, retention)
}

/// The uplink engine from the configuration; fails clearly when no uplink is configured.
func makeEngine(global: GlobalOptions, logger: Logger) throws -> SyncEngine {
    let document = try global.document()
    let outbox = try OutboxConfiguration(document: document)
    let uplink = try UplinkConfiguration(document: document)
    _ = try DownlinkSettings(document: document)
    _ = try IngestConfiguration(document: document)
    _ = try document.section("log")
    try document.finish()
    guard uplink.isConfigured else {
        throw CLIFailure(status: .configError, message: "no uplink is configured: give --config with an [uplink] section (platform, url and credentials; see the README)")
    }
    // Open (create, check, migrate) before the engine starts, so a bad file fails here.
    _ = try Database.open(path: global.databasePath, options: outbox.database.options)
    var limits = uplink
    limits.limits.maxBodyBytes = outbox.maxBodyBytes
    return try SyncEngine(configuration: limits, databasePath: global.databasePath,
                          databaseOptions: checkedOnce(outbox.database.options), logger: logger)
}

/// The options an engine opens the file with after `Database.open` above checked it: the
/// ownership and schema are still checked when the engine opens, but `quick_check` (a read of
/// every page: seconds on a large backlog) is not run a second time.
private func checkedOnce(_ options: DatabaseOptions) -> DatabaseOptions {
    var options = options
    options.checkOnOpen = false
    return options
}
