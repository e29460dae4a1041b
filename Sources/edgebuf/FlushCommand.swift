import ArgumentParser
import EdgeBuffer
import EdgeStore
import EdgeUplink
import Foundation
import Logging

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
        let drain = Task { try await engine.drain() }
        let display = FlushProgress(total: startRecords, terminal: FileOutput.standardError.isTerminal)
        var emptied = false
        while true {
            let finished = await withTaskGroup(of: Bool.self) { group in
                group.addTask { (try? await drain.value) != nil }
                group.addTask { try? await Task.sleep(for: .milliseconds(500)); return false }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            let progress = await engine.progress()
            display.show(progress)
            if finished {
                emptied = (try? await drain.value) == true
                break
            }
            if ContinuousClock.now >= deadline {
                drain.cancel()
                _ = try? await drain.value
                break
            }
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
