extension DoctorReport {
    /// The checklist for people: per endpoint one line per check (verdict, name, evidence),
    /// further evidence indented, and for warnings and failures the likely cause and the fix.
    public var text: String {
        var lines: [String] = ["edgebuf doctor (libcurl \(libcurlVersion))"]
        let width = Check.allCases.map(\.title.count).max() ?? 16
        for endpoint in endpoints {
            lines.append("")
            let via = endpoint.proxy.map { " via proxy \($0)" } ?? ""
            lines.append("\(endpoint.name) \(endpoint.url)\(via)")
            for result in endpoint.checks {
                let mark = Self.mark(result.verdict)
                let title = result.check.title.padding(toLength: width, withPad: " ", startingAt: 0)
                lines.append("  \(mark) \(title)  \(result.summary)")
                let indent = String(repeating: " ", count: 2 + 4 + 1 + width + 2)
                for line in result.evidence where result.verdict != .skipped {
                    lines.append(indent + line)
                }
                if result.verdict == .warn || result.verdict == .fail {
                    if let cause = result.cause { lines.append(indent + "cause: " + cause) }
                    if let fix = result.fix { lines.append(indent + "fix:   " + fix) }
                }
            }
        }
        lines.append("")
        let failed = failures
        let warned = warnings
        if !failed.isEmpty {
            lines.append("result: FAIL: \(failed.count) check\(failed.count == 1 ? "" : "s") block\(failed.count == 1 ? "s" : "") syncing (\(failed.joined(separator: "; ")))"
                         + (warned.isEmpty ? "" : "; \(warned.count) warning\(warned.count == 1 ? "" : "s")"))
        } else if !warned.isEmpty {
            lines.append("result: ok with \(warned.count) warning\(warned.count == 1 ? "" : "s") (\(warned.joined(separator: "; "))); nothing blocks syncing")
        } else {
            lines.append("result: ok: nothing blocks syncing")
        }
        return lines.joined(separator: "\n")
    }

    static func mark(_ verdict: Verdict) -> String {
        switch verdict {
        case .ok: return "ok  "
        case .warn: return "warn"
        case .fail: return "FAIL"
        case .skipped: return "skip"
        }
    }
}
