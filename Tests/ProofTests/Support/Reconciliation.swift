import Foundation
import TestSupport

/// The simulator's data endpoints (not device-auth).
let simulatorDataPaths = "/sys/(properties/report|messages/up|gateway/sub-devices/properties/report)$"

/// Where every acknowledged record went: accepted by the platform (how often), still in the
/// outbox, or dead-lettered. `lost` must be empty.
struct Reconciliation: CustomStringConvertible {
    let acked: Set<Int>
    let acceptedCounts: [Int: Int]
    let outbox: Set<Int>
    let deadLetters: Set<Int>

    init(acked: [Int], simulator: Simulator, device: Device) throws {
        self.acked = Set(acked)
        var counts: [Int: Int] = [:]
        for record in try simulator.accepted() {
            if let seq = Records.seq(record) { counts[seq, default: 0] += 1 }
        }
        acceptedCounts = counts
        outbox = Set(Records.seqs(ofStored: try device.outbox()))
        deadLetters = Set(Records.seqs(ofStored: try device.deadLetters()))
    }

    /// Acknowledged, but nowhere.
    var lost: [Int] {
        acked.subtracting(acceptedCounts.keys).subtracting(outbox).subtracting(deadLetters).sorted()
    }

    /// Stored (accepted, waiting or dead-lettered) but never acknowledged: a producer that
    /// resends what was not acknowledged would store these twice. Only `attempted` seqs count
    /// (a test may enqueue others on its own).
    func unacknowledged(attempted: ClosedRange<Int>) -> [Int] {
        Set(acceptedCounts.keys).union(outbox).union(deadLetters).filter { attempted.contains($0) }.subtracting(acked).sorted()
    }

    /// Accepted more than once (a request accepted whose answer was lost, or a delete that
    /// could not be committed).
    var duplicates: Int { acceptedCounts.values.reduce(0) { $0 + max($1 - 1, 0) } }

    var description: String {
        "acked \(acked.count), accepted \(acceptedCounts.count) (\(duplicates) duplicates), outbox \(outbox.count), dead letters \(deadLetters.count), lost \(lost.count)\(lost.isEmpty ? "" : ": \(lost.prefix(20))")"
    }
}

/// The database file's identity, to tell a replaced file from the same one.
func fileIdentity(_ path: String) -> (device: UInt64, inode: UInt64)? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return (UInt64(info.st_dev), UInt64(info.st_ino))
}

/// Runs a system tool that must succeed (chattr, chown, sqlite3, ...).
@discardableResult
func tool(_ name: String, _ arguments: [String]) throws -> String {
    let result = try runBounded(try which(name), arguments, timeout: .seconds(30))
    guard result.exitCode == 0 else {
        throw TestFailure("\(name) \(arguments.joined(separator: " ")): \(result.summary): \(result.stderrText)")
    }
    return result.stdoutText
}
