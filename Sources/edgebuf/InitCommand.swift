import ArgumentParser
import EdgeStore
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the database (mode 0600) or bring its schema up to date.",
        discussion: "Safe to run again: an existing database is checked and migrated, never emptied."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        do {
            _ = try global.bootstrapLogging()
            let path = global.databasePath
            let existed = FileManager.default.fileExists(atPath: path)
            let db = try global.openConnection()
            let version = try Migrator.version(of: db)
            if json {
                var out = JSONObject()
                out.add("database", path)
                out.add("created", !existed)
                out.add("schema_version", version)
                print(out.json)
            } else {
                print("\(existed ? "opened" : "created") \(path) (schema version \(version))")
            }
        } catch {
            throw fail(error)
        }
    }
}
