import EdgeBuffer
import EdgeStore
import Testing

@Suite struct ConfigDocumentTests {
    func load(_ text: String) throws -> OutboxConfiguration {
        let document = try ConfigDocument(file: "test.toml", text: text)
        let configuration = try OutboxConfiguration(document: document)
        _ = try document.section("log")
        try document.finish()
        return configuration
    }

    @Test func readsTheDatabaseSection() throws {
        let c = try load("""
            [database]
            synchronous = "normal"
            busy_timeout = "2s"
            max_bytes = "64MB"
            max_records = 1000
            max_age = "7d"
            when_full = "drop-oldest"
            max_file_bytes = "1GB"
            [uplink]
            max_body_bytes = 524288
            """)
        #expect(c.database.synchronous == .normal)
        #expect(c.database.busyTimeoutSeconds == 2)
        #expect(c.database.capacity.maxBytes == 64 << 20)
        #expect(c.database.capacity.maxRecords == 1000)
        #expect(c.database.capacity.maxAgeMilliseconds == Int64(604_800_000))
        #expect(c.database.capacity.whenFull == .dropOldest)
        #expect(c.database.maxFileBytes == 1 << 30)
        #expect(c.maxBodyBytes == 524_288)
    }

    @Test func defaultsAreSafe() throws {
        let c = try load("")
        #expect(c.database.synchronous == .full)
        #expect(c.database.capacity.whenFull == .rejectNew)
        #expect(c.maxBodyBytes == 1_048_576)
    }

    @Test(arguments: [
        ("[database]\nmax_recrods = 5", "database.max_recrods", "unknown key"),
        ("[databse]\nmax_records = 5", "databse", "unknown section"),
        ("[database]\nsynchronous = \"off\"", "database.synchronous", "full"),
        ("[database]\nmax_records = \"many\"", "database.max_records", "whole number"),
        ("[database]\nwhen_full = \"panic\"", "database.when_full", "drop-oldest"),
        ("[database]\nmax_age = \"soon\"", "database.max_age", "duration"),
        ("[database\n", "", "not valid TOML"),
    ])
    func mistakesNameTheKey(_ text: String, _ key: String, _ phrase: String) {
        do {
            _ = try load(text)
            Issue.record("accepted \(text)")
        } catch let error as ConfigurationError {
            #expect(error.key == key)
            #expect(error.description.contains(phrase))
            #expect(error.description.contains("test.toml"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func secretsRedactThemselves() {
        let secret = Secret("hunter2")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
    }
}
