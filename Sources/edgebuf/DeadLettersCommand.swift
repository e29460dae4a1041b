import ArgumentParser
import EdgeStore

struct DeadLettersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "Inspect, retry or purge records the platform refused for good.",
        subcommands: [DeadLettersList.self, DeadLettersRetry.self, DeadLettersPurge.self]
    )
}

struct DeadLettersList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List dead letters with the platform's reason.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "At most this many.") var limit = 100
    @Flag(help: "One JSON object per line.") var json = false

    func run() throws {
        do {
            _ = try global.bootstrapLogging()
            let db = try global.openConnection()
            for letter in try DeadLetterStore(db).list(limit: max(limit, 0)) {
                if json {
                    print(recordJSON(letter.record) { out in
                        out.add("failed_at", Timestamp.format(milliseconds: letter.failedAt))
                        out.add("reason", letter.reason)
                        out.add("http_status", letter.httpStatus)
                        out.add("error_code", letter.errorCode)
                        out.add("error_message", letter.errorMessage)
                    })
                } else {
                    let code = [letter.httpStatus.map { String($0) }, letter.errorCode].compactMap { $0 }.joined(separator: " ")
                    print("\(recordLine(letter.record))  \(code)  \(letter.reason)")
                }
            }
        } catch {
            throw fail(error)
        }
    }
}

/// Which dead letters a retry or purge applies to.
struct DeadLetterSelection: ParsableArguments {
    @Argument(help: "Record ids.") var ids: [Int64] = []
    @Flag(help: "All dead letters.") var all = false

    func validate() throws {
        if all == !ids.isEmpty {
            throw ValidationError("give record ids or --all (not both)")
        }
    }

    var selection: [Int64]? { all ? nil : ids }
}

struct DeadLettersRetry: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "Move dead letters back into the outbox, to be sent again under their original ids.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var which: DeadLetterSelection

    func run() throws {
        try changeDeadLetters(global: global, done: "moved %d dead letters back to the outbox") {
            try $0.retry(ids: which.selection, now: Timestamp.nowMilliseconds())
        }
    }
}

struct DeadLettersPurge: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "purge", abstract: "Delete dead letters for good (the purge is audited).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var which: DeadLetterSelection

    func run() throws {
        try changeDeadLetters(global: global, done: "purged %d dead letters") {
            try $0.purge(ids: which.selection, now: Timestamp.nowMilliseconds())
        }
    }
}

/// Runs one dead-letter change in a write transaction and reports how many it touched.
private func changeDeadLetters(global: GlobalOptions, done: String, _ change: (DeadLetterStore) throws -> Int) throws {
    do {
        _ = try global.bootstrapLogging()
        let db = try global.openConnection()
        let count = try db.transaction { try change(DeadLetterStore(db)) }
        print(done.replacingOccurrences(of: "%d", with: String(count)))
    } catch {
        throw fail(error)
    }
}
