import Foundation

/// How busy the machine was, so that a figure measured while other work ran says so: the
/// load average and the kernel's pressure stall counters (/proc/pressure: the share of time
/// at least one task waited for a CPU, or for IO).
struct MachineLoad {
    let loadAverage: Double
    /// Cumulative microseconds of "some" stall.
    let cpuStall: UInt64
    let ioStall: UInt64
    let monotonic: UInt64

    static func now() -> MachineLoad {
        MachineLoad(loadAverage: Double(firstField(of: "/proc/loadavg") ?? "") ?? .nan,
                    cpuStall: someTotal("/proc/pressure/cpu"), ioStall: someTotal("/proc/pressure/io"),
                    monotonic: monotonicNanoseconds())
    }

    /// Percent of the time since `earlier` that some task stalled on CPU, and on IO.
    func pressure(since earlier: MachineLoad) -> (cpu: Double, io: Double) {
        let span = Double(monotonic - earlier.monotonic) / 1000  // µs
        guard span > 0 else { return (.nan, .nan) }
        return (Double(cpuStall &- earlier.cpuStall) / span * 100, Double(ioStall &- earlier.ioStall) / span * 100)
    }

    private static func firstField(of path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: " ").first.map(String.init)
    }

    /// The `total=` of the `some` line; 0 where PSI is not available.
    private static func someTotal(_ path: String) -> UInt64 {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("some ") }),
              let total = line.split(separator: " ").first(where: { $0.hasPrefix("total=") }) else { return 0 }
        return UInt64(total.dropFirst("total=".count)) ?? 0
    }
}
