extension IdleProbe {
    /// The `idle` line for what a probe saw, with the recommended `[downlink]
    /// network_idle_limit`. A silent drop shorter than the downlink's configured limit fails
    /// (its long polls would die unnoticed); anywhere else a drop is a warning.
    static func verdict(_ observation: Observation, endpoint: DoctorEndpoint, periods: [Duration]) -> CheckResult {
        let longest = observation.survived.last
        var details: [CheckResult.Detail] = [
            .init("mode", .string(observation.mode.rawValue)),
            .init("periods_s", .strings(periods.map { Format.setting($0) })),
            .init("survived_s", .strings(observation.survived.map { Format.setting($0) })),
            .init("longest_survived_s", longest.map { .number(Format.secondsValue($0)) } ?? .null),
        ]
        let how = observation.mode == .keepAlive
            ? "a kept-alive connection, a request after each idle period"
            : "Bayeux long polls the server held idle"
        var evidence = ["probed with \(how); TCP keepalive off"]
        evidence += periods.map { period in
            let mark = observation.survived.contains(period) ? "survived" : (isEnding(period, observation.ending) ? "FAILED" : "not tried")
            return "idle \(Format.seconds(period)): \(mark)"
        }
        let governsLongPolls = endpoint.role == .downlink || endpoint.kind == .bayeux

        switch observation.ending {
        case .survivedAll:
            details.append(.init("failure", .null))
            details.append(.init("recommended_network_idle_limit", longest.map { .string(Format.setting($0)) } ?? .null))
            let upTo = longest.map { Format.seconds($0) } ?? "-"
            return CheckResult(.idle, .ok, "an idle connection survived every period up to \(upTo) (the longest probed; --max-idle)",
                               evidence: evidence, details: details)

        case .serverHoldLimit(let asked, let held):
            details.append(.init("failure", .string("server_hold_limit")))
            details.append(.init("server_hold_s", .number(Format.secondsValue(held))))
            let upTo = longest.map { "survived up to \(Format.seconds($0)); " } ?? ""
            return CheckResult(.idle, .ok,
                               "\(upTo)asked to hold a poll \(Format.seconds(asked)), the server answered after \(Format.seconds(held)): it does not hold longer, so longer idle periods were not probed",
                               evidence: evidence, details: details)

        case .notRun(let reason):
            details.append(.init("failure", .string("not_run")))
            return CheckResult(.idle, .warn, "the idle probe could not run: \(reason)", evidence: evidence,
                               cause: "See the reason; the lines above may show why.", fix: "Fix what the other lines report, then run with --idle-probe again.",
                               details: details)

        case .silentDrop(let after), .closed(let after, _):
            let silent: Bool
            if case .silentDrop = observation.ending { silent = true } else { silent = false }
            let recommended = longest ?? max(after / 2, .seconds(2))
            details.append(.init("failure", .string(silent ? "silent_drop" : "closed")))
            details.append(.init("failed_after_s", .number(Format.secondsValue(after))))
            details.append(.init("recommended_network_idle_limit", .string(Format.setting(recommended))))
            let survivedText = longest.map { "the longest idle period that survived: \(Format.seconds($0))" } ?? "no idle period survived"
            let summary: String
            let cause: String
            if silent {
                let waited = observation.mode == .keepAlive
                    ? "a request on it got no answer within \(Format.seconds(observation.deadline))"
                    : "the poll's answer did not come within \(Format.seconds(observation.deadline)) after the hold"
                summary = "silent drop: after \(Format.seconds(after)) idle the connection was dead without a FIN or RST (\(waited)); \(survivedText)"
                cause = "A firewall or NAT box forgets idle connections after between \(longest.map(Format.seconds) ?? "0 s") and \(Format.seconds(after)) and tells neither side; a long poll held longer waits on a dead connection."
            } else {
                let how: String
                if case .closed(_, let text) = observation.ending { how = text } else { how = "" }
                summary = "closed after \(Format.seconds(after)) idle: \(how); \(survivedText)"
                cause = governsLongPolls
                    ? "A box on the way (or the server) closes connections idle that long; edgebuf notices and reconnects, but polls held longer are cut."
                    : "The server's keep-alive limit or a box on the way closes idle connections; edgebuf notices and reconnects."
            }
            let setting = "[downlink] network_idle_limit = \"\(Format.setting(recommended))\" (now \(Format.setting(endpoint.networkIdleLimit))): edgebuf then asks the server to answer long polls before that and keeps TCP keepalive below it."
            let fix: String
            if recommended < .seconds(2) {
                fix = "Idle connections die in less than 2 s, below the smallest [downlink] network_idle_limit (2s): long polls cannot work on this network; find the box that cuts them."
            } else if governsLongPolls {
                fix = "Set " + setting
            } else {
                fix = "If the downlink's long polls take this path too, set " + setting + " The uplink copes by itself (after a drop one request waits for its timeout, then it reconnects)."
            }
            let tooLong = endpoint.networkIdleLimit > recommended
            let verdict: Verdict = silent && governsLongPolls && tooLong ? .fail : .warn
            return CheckResult(.idle, verdict, summary, evidence: evidence, cause: cause, fix: fix, details: details)
        }
    }

    private static func isEnding(_ period: Duration, _ ending: Ending) -> Bool {
        switch ending {
        case .silentDrop(let after), .closed(let after, _): return after == period
        case .serverHoldLimit(let asked, _): return asked == period
        default: return false
        }
    }
}
