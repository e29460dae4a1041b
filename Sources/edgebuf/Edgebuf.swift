import ArgumentParser
import EdgeBuffer
import EdgeDownlink
import EdgeIngest
import EdgeUplink

@main
struct Edgebuf: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgebuf",
        abstract: "A store-and-forward buffer for IoT devices that are only sometimes online.",
        discussion: """
            Applications hand edgebuf property, message and measurement reports; each is committed \
            to SQLite before it is acknowledged, and the uplink sends it to the platform when the \
            network allows. Exit codes are listed in the README.
            """,
        version: edgebufVersion,
        subcommands: [
            InitCommand.self, EnqueueCommand.self, RunCommand.self, FlushCommand.self, StatusCommand.self,
            OutboxCommand.self, InboxCommand.self, DeadLettersCommand.self, AuditCommand.self, DoctorCommand.self,
        ]
    )

    // Declared here too, so that `edgebuf --db PATH status` works as well as `edgebuf status --db PATH`.
    @OptionGroup var global: GlobalOptions
}

/// Reads the sections other modules own, so `finish()` can name unknown keys in them.
func readOtherSections(_ document: ConfigDocument) throws {
    _ = try UplinkConfiguration(document: document)
    _ = try DownlinkSettings(document: document)
    _ = try IngestConfiguration(document: document)
    _ = try document.section("log")
}
