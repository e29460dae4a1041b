import Foundation
import TestSupport
import Testing

/// A damaged page in a copy of a real database: `status`, `enqueue`, `run`, `init`, `flush`,
/// `outbox list` and `audit verify` refuse it with exit 74 and a message that says it is damaged
/// and how to recover, and the file is never rebuilt or repaired behind the user's back
/// (byte-identical afterwards).
@Suite struct CorruptedPageTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test(arguments: ["leaf", "internal", "header"])
    func aDamagedPageIsRefusedWithExit74AndLeftAsItIs(where damage: String) throws {
        let simulator = try Simulator()
        let device = Device(label: "edgebuf-corrupt")
        try device.useSimulator(simulator)
        // Enough records for an outbox b-tree with interior pages.
        try device.enqueue((1...3000).map { Records.property($0, pad: 60) })
        _ = try tool("sqlite3", [device.db, "PRAGMA wal_checkpoint(TRUNCATE);"])
        let pages = try tool("sqlite3", [device.db, "SELECT pageno FROM dbstat WHERE name = 'outbox' AND pagetype = '\(damage == "internal" ? "internal" : "leaf")' ORDER BY pageno;"])
            .split(separator: "\n").compactMap { Int($0) }
        let pageSize = Int(try tool("sqlite3", [device.db, "PRAGMA page_size;"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 4096
        try #require(!pages.isEmpty, "the outbox has \(damage) pages")

        // The damaged copy: one page of the outbox b-tree overwritten. "header" garbles the
        // page's b-tree header (its type byte and cell count); the others overwrite the last
        // quarter of the page, where the cells are (cell content grows from the page's end).
        let copy = Device(label: "edgebuf-corrupt-copy")
        copy.sections = device.sections
        try copy.writeConfig()
        var bytes = try #require(fileBytes(device.db))
        let page = pages[pages.count / 2]
        let start = (page - 1) * pageSize + (damage == "header" ? 0 : pageSize - pageSize / 4)
        for offset in 0..<(damage == "header" ? 12 : pageSize / 4) { bytes[start + offset] = UInt8(truncatingIfNeeded: offset &* 37 &+ 0xA5) }
        try Data(bytes).write(to: URL(fileURLWithPath: copy.db))
        let damaged = fileBytes(copy.db)

        let commands: [[String]] = [
            ["status"], ["status", "--json"], ["outbox", "list", "--json"], ["audit", "verify"], ["init"],
            ["enqueue", "property", "--device", "gw-1", "--service", "S", "--properties", #"{"seq":0}"#],
            ["enqueue", "--jsonl", "--ack"], ["flush", "--timeout", "10"], ["run"],
        ]
        for command in commands {
            let stdin = command.contains("--jsonl") ? Array((Records.property(0) + "\n").utf8) : []
            let result = try copy.eb(command, stdin: stdin, timeout: .seconds(30))
            let name = command.prefix(2).joined(separator: " ")
            #expect(result.exitCode == 74, "\(name) on a damaged file (\(damage) page \(page)): \(result.summary): \(result.stderrText.prefix(600))")
            #expect(result.stderrText.contains(copy.db) && result.stderrText.contains("damaged"), "\(name): \(result.stderrText.prefix(600))")
            #expect(result.stderrText.contains(".recover"), "\(name) says how to recover: \(result.stderrText.prefix(600))")
            #expect(result.stdout.isEmpty || !command.contains("--ack"), "\(name) acknowledged nothing")
            #expect(fileBytes(copy.db) == damaged, "\(name) changed the damaged file")
        }
        #expect(try simulator.requests().isEmpty, "nothing was sent from a damaged file")
        // The original is fine.
        #expect(try device.eb(["status"]).exitCode == 0)
    }
}
