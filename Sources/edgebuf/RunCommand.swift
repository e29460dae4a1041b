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
        discussion: "Runs the uplink if [uplink] is configured, the downlink if [downlink] is, and the local ingest server if [ingest] is. SIGTERM or SIGINT stops it gracefully: an uplink request in flight is abandoned without deleting anything (it is sent again on the next start), the downlink disconnects; exit 0. SIGHUP reads the configuration file again: each engine whose settings changed restarts with them, the others keep running; a file that cannot be used is refused with a log line and the running configuration stays. Under systemd (Type=notify) it reports readiness, reloads and stopping, and logs to the journal with structured fields."
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let logger: Logger
        var services: [any Service] = []
        do {
            logger = try global.bootstrapLogging()
            // One wake signal for the daemon's life: the ingest server's commits wake the
            // uplink at once (the outbox's commit hook), whichever of them a reload restarted.
            let wake = WakeSignal()
            let slots = try engineSlots(global: global, logger: logger, wake: wake, checkFile: true)
            let global = self.global
            services.append(EngineSupervisor(
                slots: slots,
                reload: { try engineSlots(global: global, logger: logger, wake: wake, checkFile: false) },
                logger: logger, notifier: SystemdNotifier()))
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

/// The engines the configuration asks for (uplink, downlink, ingest, the audit's retention),
/// each with the settings it is built from; fails clearly when none is configured.
/// `checkFile` opens (creates, checks, migrates) the database first, so a bad file fails
/// before any engine starts; a reload skips that.
func engineSlots(global: GlobalOptions, logger: Logger, wake: WakeSignal, checkFile: Bool) throws -> [EngineSlot] {
    let document = try global.document()
    let outbox = try OutboxConfiguration(document: document)
    var uplinkSettings = try UplinkConfiguration(document: document)
    let downlink = try DownlinkSettings(document: document)
    let ingest = try IngestConfiguration(document: document)
    _ = try document.section("log")
    try document.finish()
    guard uplinkSettings.isConfigured || downlink.isConfigured || ingest.isConfigured else {
        throw CLIFailure(status: .configError, message: "nothing to run: give --config with an [uplink] section (platform, url and credentials), a [downlink] section (url and channels) and/or an [ingest] section; see the README")
    }
    if checkFile {
        _ = try Database.open(path: global.databasePath, options: outbox.database.options)
    }
    let path = global.databasePath
    let checked = checkedOnce(outbox.database.options)
    uplinkSettings.limits.maxBodyBytes = outbox.maxBodyBytes
    let uplink = uplinkSettings
    var slots: [EngineSlot] = []
    if uplink.isConfigured {
        slots.append(EngineSlot(name: "uplink", settings: UplinkSlotSettings(uplink: uplink, database: checked)) {
            try SyncEngine(configuration: uplink, databasePath: path, databaseOptions: checked, wake: wake, logger: logger)
        })
    }
    if ingest.isConfigured {
        var unchecked = outbox
        unchecked.database.checkOnOpen = false  // checked at start
        let ingestOutbox = unchecked
        slots.append(EngineSlot(name: "ingest", settings: IngestSlotSettings(ingest: ingest, outbox: ingestOutbox)) {
            IngestService(configuration: ingest, recordLimit: outbox.maxBodyBytes,
                          outbox: try Outbox(path: path, configuration: ingestOutbox, onCommit: { wake.signal() }),
                          databasePath: path, databaseOptions: checked, logger: logger)
        })
    }
    if downlink.isConfigured {
        slots.append(EngineSlot(name: "downlink", settings: DownlinkSlotSettings(downlink: downlink, database: checked)) {
            try DownlinkEngine(settings: downlink, databasePath: path, databaseOptions: checked, logger: logger)
        })
    }
    slots.append(EngineSlot(name: "audit retention", settings: AuditSlotSettings(retention: outbox.database.auditRetention, database: checked)) {
        AuditRetentionService(path: path, options: checked, retention: outbox.database.auditRetention, logger: logger)
    })
    return slots
}

/// What the uplink engine is built from.
private struct UplinkSlotSettings: Equatable, Sendable {
    var uplink: UplinkConfiguration
    var database: DatabaseOptions
}

/// What the downlink engine is built from.
private struct DownlinkSlotSettings: Equatable, Sendable {
    var downlink: DownlinkSettings
    var database: DatabaseOptions
}

/// What the ingest server is built from (its outbox's capacity policy included).
private struct IngestSlotSettings: Equatable, Sendable {
    var ingest: IngestConfiguration
    var outbox: OutboxConfiguration
}

/// What the audit's retention is built from.
private struct AuditSlotSettings: Equatable, Sendable {
    var retention: AuditRetention
    var database: DatabaseOptions
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
