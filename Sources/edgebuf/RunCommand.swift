import ArgumentParser
import EdgeBuffer
import EdgeStore
import EdgeUplink
import Logging
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: the uplink drains the outbox whenever the network allows.",
        discussion: "SIGTERM or SIGINT stops it gracefully: a request in flight is abandoned without deleting anything (it is sent again on the next start); exit 0."
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let logger: Logger
        let engine: SyncEngine
        do {
            logger = try global.bootstrapLogging()
            engine = try makeEngine(global: global, logger: logger)
        } catch {
            throw fail(error)
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [engine], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            throw fail(error)
        }
    }
}

/// The uplink engine from the configuration; fails clearly when no uplink is configured.
func makeEngine(global: GlobalOptions, logger: Logger) throws -> SyncEngine {
    let document = try global.document()
    let outbox = try OutboxConfiguration(document: document)
    let uplink = try UplinkConfiguration(document: document)
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
                          databaseOptions: outbox.database.options, logger: logger)
}
