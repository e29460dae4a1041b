import ArgumentParser
import EdgeBuffer
import EdgeStore
import Foundation
import Logging

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The database file.", discussion: "Default: $EDGEBUF_DB, else /var/lib/edgebuf/edgebuf.db for root, else $XDG_DATA_HOME/edgebuf/edgebuf.db (~/.local/share/edgebuf/edgebuf.db).", valueName: "path"))
    var db: String?

    @Option(name: .long, help: ArgumentHelp("A TOML configuration file (see the README's configuration reference).", valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "warning"

    /// The database path after defaults.
    var databasePath: String {
        if let db { return db }
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["EDGEBUF_DB"], !path.isEmpty { return path }
        if geteuid() == 0 { return "/var/lib/edgebuf/edgebuf.db" }
        let base = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/share")
        return (base as NSString).appendingPathComponent("edgebuf/edgebuf.db")
    }

    /// The configuration document (empty without --config).
    func document() throws -> ConfigDocument {
        guard let config else { return ConfigDocument.empty() }
        return try ConfigDocument(path: config)
    }

    /// The outbox settings, with every other section checked for unknown keys.
    func outboxConfiguration() throws -> OutboxConfiguration {
        let document = try document()
        let configuration = try OutboxConfiguration(document: document)
        try readOtherSections(document)
        try document.finish()
        return configuration
    }

    /// Sets up logging to stderr at --log-level.
    func bootstrapLogging() throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw CLIFailure(status: .usage, message: "--log-level: \"\(logLevel)\" is not a level; use trace, debug, info, notice, warning, error or critical")
        }
        let environment = ProcessInfo.processInfo.environment
        if JournalLogHandler.stderrIsJournal(environment: environment) {
            // Started by systemd: structured fields straight into the journal.
            // EDGEBUF_JOURNAL_SOCKET only exists for the tests.
            let socket = environment["EDGEBUF_JOURNAL_SOCKET"] ?? "/run/systemd/journal/socket"
            LoggingSystem.bootstrap { label in
                var handler = JournalLogHandler(label: label, socketPath: socket)
                handler.logLevel = level
                return handler
            }
        } else {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: "edgebuf")
        logger.logLevel = level
        return logger
    }

    /// Opens the outbox with the configuration.
    func openOutbox() throws -> Outbox {
        try Outbox(path: databasePath, configuration: try outboxConfiguration())
    }

    /// Opens a plain connection (for reading commands), creating and migrating if needed.
    func openConnection() throws -> Connection {
        try Database.open(path: databasePath, options: try outboxConfiguration().database.options)
    }
}
