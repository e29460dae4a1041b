import ArgumentParser
import EdgeBuffer
import EdgeStore
import EdgeUplink
import Foundation
import Logging
import Synchronization

struct FlushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush",
        abstract: "Drain the outbox now; exit 0 when it is empty, 69 with the reason when it could not be.",
        discussion: "Shows a progress bar on a terminal (records, bytes, rate, ETA), plain progress lines otherwise."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Give up after this many seconds.")
    var timeout: Double = 300

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let logger: Logger
        let engine: SyncEngine
        let startRecords: Int64
        do {
            logger = try global.bootstrapLogging()
            engine = try makeEngine(global: global, logger: logger)
            startRecords = try OutboxStore(try global.openConnection()).total().records
        } catch {
            throw fail(error)
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        let finished = DoneSignal()
        let drain = Task {
            defer { finished.set() }
            return try await engine.drain()
        }
        let display = FlushProgress(total: startRecords, terminal: FileOutput.standardError.isTerminal)
        var emptied = false
        var cancelledAt: ContinuousClock.Instant?
        // Poll a flag rather than await the drain: awaiting it cannot be interrupted, and the
        // timeout must hold when the platform never answers.
        while true {
            try? await Task.sleep(for: .milliseconds(100))
            if finished.isSet {
                emptied = (try? await drain.value) == true
                break
            }
            display.show(await engine.progress())
            if cancelledAt == nil, ContinuousClock.now >= deadline {
                drain.cancel()
                cancelledAt = .now
            }
            // A drain that ignores cancellation for 5 s is left behind; the process exits anyway.
            if let cancelledAt, ContinuousClock.now - cancelledAt > .seconds(5) { break }
        }
        let progress = await engine.progress()
        display.finish(progress)
        let remaining = (try? OutboxStore(try global.openConnection()).total().records) ?? -1
        if json {
            var out = JSONObject()
            out.add("emptied", emptied)
            out.add("delivered_records", progress.deliveredRecords)
            out.add("delivered_bytes", progress.deliveredBytes)
            out.add("remaining_records", remaining)
            out.add("last_error", progress.lastError)
            print(out.json)
        }
        guard emptied else {
            throw fail(CLIFailure(status: .unavailable, message: "the outbox was not drained within \(Int(timeout)) s: \(remaining) records remain (uplink \(progress.phase); last error: \(progress.lastError ?? "none")). They stay in the outbox and are sent when the platform can be reached."))
        }
    }
}

/// Flush progress: a bar on a terminal, a line every few seconds otherwise.
final class FlushProgress {
    let total: Int64
    let terminal: Bool
    let started = Date()
    var lastLine = Date.distantPast

    init(total: Int64, terminal: Bool) {
        self.total = total
        self.terminal = terminal
    }

    func show(_ progress: SyncEngine.Progress) {
        let elapsed = max(Date().timeIntervalSince(started), 0.001)
        let rate = Double(progress.deliveredRecords) / elapsed
        let left = max(total - progress.deliveredRecords, 0)
        let eta = rate > 0 ? String(format: "%.0f s", Double(left) / rate) : "?"
        let bytes = StatusReport.size(progress.deliveredBytes)
        if terminal {
            let width = 30
            let done = total > 0 ? min(Int(Double(progress.deliveredRecords) / Double(total) * Double(width)), width) : width
            let bar = String(repeating: "#", count: done) + String(repeating: "-", count: width - done)
            FileOutput.standardError.write("\r[\(bar)] \(progress.deliveredRecords)/\(total) records, \(bytes), \(Int(rate))/s, ETA \(eta), \(progress.phase)   ")
        } else if Date().timeIntervalSince(lastLine) >= 2 {
            lastLine = Date()
            FileOutput.standardError.write("flush: \(progress.deliveredRecords)/\(total) records, \(bytes), \(Int(rate))/s, ETA \(eta), uplink \(progress.phase)\n")
        }
    }

    func finish(_ progress: SyncEngine.Progress) {
        if terminal { FileOutput.standardError.write("\n") }
        FileOutput.standardError.write("flush: delivered \(progress.deliveredRecords) records (\(StatusReport.size(progress.deliveredBytes))) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s\n")
    }
}

/// A one-way flag shared between tasks.
final class DoneSignal: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
