import Foundation
import TestSupport
import Testing

/// Random and broken configuration files against `edgebuf status --config F` and
/// `edgebuf init --config F`: a wrong file exits 78 with a message that names the file and the
/// key (or says it is not valid TOML), never crashes or hangs, and leaves the database as it
/// was: byte-identical, or not created at all.
@Suite struct ConfigFuzzTests {
    static let baseSeed: UInt64 = {
        if let text = ProcessInfo.processInfo.environment["EDGEBUF_FUZZ_SEED"], let seed = UInt64(text) { return seed }
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()

    /// `status` against an existing database (which must stay byte-identical).
    @Test(arguments: 0..<3) func aBrokenConfigurationExits78AndLeavesTheDatabaseAlone(round: Int) throws {
        try fuzz(seed: Self.baseSeed &+ UInt64(round), cases: 45, existingDatabase: true)
    }

    /// `init` and `status` where there is no database yet (it must not be created).
    @Test(arguments: 0..<2) func aBrokenConfigurationCreatesNoDatabase(round: Int) throws {
        try fuzz(seed: Self.baseSeed &+ 500 &+ UInt64(round), cases: 35, existingDatabase: false)
    }

    /// Files the fuzzer found that crashed edgebuf or were half ignored, kept as fixed cases.
    static let foundByFuzzing: [(name: String, text: String, mustName: String)] = [
        ("size overflowing Int64 after its unit", "[database]\nmax_bytes = \"1e300KB\"\n", "database.max_bytes"),
        ("infinite size", "[database]\nmax_file_bytes = \"infGB\"\n", "database.max_file_bytes"),
        ("20-digit byte count", "[database]\nmax_bytes = \"99999999999999999999B\"\n", "database.max_bytes"),
        ("huge uplink rate", "[uplink]\nmax_bytes_per_second = \"1e30GB\"\n", "uplink.max_bytes_per_second"),
        ("empty key in a table header", "[,database]\n", "not valid TOML"),
        ("table header name on the next line", "[database]\nmax_records = 5\n[\nuplink]\n", "table header at line 3"),
        ("NUL byte, then an unknown section", "[database]\nmax_records = 5\n\u{0}\n[bogus]\nx = 1\n", "edgebuf: config"),
    ]

    @Test(arguments: 0..<foundByFuzzing.count)
    func aCaseFoundByFuzzingExits78(index: Int) throws {
        let item = Self.foundByFuzzing[index]
        let directory = TemporaryDirectory("edgebuf-config-case")
        let config = directory.file("edgebuf.toml"), db = directory.file("edgebuf.db")
        try Data(item.text.utf8).write(to: URL(fileURLWithPath: config))
        let result = try edgebufBounded(["--db", db, "--config", config, "status"], timeout: .seconds(30))
        #expect(result.signal == nil, "\(item.name): \(result.summary): \(result.stderrText.prefix(400))")
        #expect(result.exitCode == 78, "\(item.name): \(result.summary): \(result.stderrText.prefix(400))")
        #expect(result.stderrText.contains(item.mustName), "\(item.name): \(result.stderrText.prefix(400))")
        #expect(!FileManager.default.fileExists(atPath: db), "\(item.name): the database was created")
    }

    func fuzz(seed: UInt64, cases count: Int, existingDatabase: Bool) throws {
        print("config fuzz: seed \(seed) (EDGEBUF_FUZZ_SEED=\(seed)), \(count) files, existing database \(existingDatabase)")
        var fuzzer = ConfigFuzzer(seed: seed)
        let directory = TemporaryDirectory("edgebuf-config-fuzz")
        let db = directory.file("data/edgebuf.db")
        if existingDatabase {
            let made = try edgebufBounded(["--db", db, "enqueue", "property", "--device", "d", "--service", "S", "--properties", #"{"n":1}"#])
            #expect(made.exitCode == 0, "\(made.stderrText)")
        }
        let config = directory.file("edgebuf.toml")
        for index in 0..<count {
            let item = fuzzer.next()
            let tag = "seed \(seed), file \(index) (\(item.label))"
            try Data(item.bytes).write(to: URL(fileURLWithPath: config))
            let before = Snapshot(db)
            let command = existingDatabase || index % 2 == 0 ? "status" : "init"
            let result = try edgebufBounded(["--db", db, "--config", config, command], timeout: .seconds(30))
            #expect(!result.timedOut, "\(tag): \(command) hung")
            #expect(result.signal == nil, "\(tag): \(command) \(result.summary): \(result.stderrText.prefix(1500)); file: \(Self.show(item.bytes))")
            guard let exitCode = result.exitCode else { continue }
            let message = result.stderrText
            if let names = item.mustName {
                #expect(exitCode == 78, "\(tag): \(command) exit \(exitCode), not 78: \(message.prefix(500)); file: \(Self.show(item.bytes))")
                #expect(message.contains("edgebuf: config \(config): "), "\(tag): the message does not name the file: \(message.prefix(500))")
                #expect(names.contains { message.contains($0) }, "\(tag): the message names none of \(names): \(message.prefix(500))")
            } else {
                #expect(exitCode == 0 || exitCode == 78, "\(tag): \(command) exit \(exitCode): \(message.prefix(500)); file: \(Self.show(item.bytes))")
                if exitCode == 78 {
                    #expect(message.hasPrefix("edgebuf: config \(config): "), "\(tag): \(message.prefix(500))")
                }
            }
            if exitCode == 78 {
                #expect(Snapshot(db) == before, "\(tag): a refused configuration changed the database files")
                if !existingDatabase {
                    #expect(!FileManager.default.fileExists(atPath: directory.file("data")), "\(tag): a refused configuration created the database directory")
                }
                #expect(!message.contains("Fatal error"), "\(tag)")
            } else if !existingDatabase {
                // A valid configuration may create the database: start the next case without it.
                try? FileManager.default.removeItem(atPath: directory.file("data"))
            }
        }
    }

    /// The database, its -wal and its -shm: existence and bytes.
    struct Snapshot: Equatable {
        let files: [[UInt8]?]
        init(_ db: String) { files = [db, db + "-wal", db + "-shm"].map(fileBytes) }
    }

    static func show(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription
        return bytes.count > 300 ? text + "… (\(bytes.count) bytes)" : text
    }
}
