/// A machine-readable fact behind a check (`--json` `details`).
public enum DetailValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case flag(Bool)
    case strings([String])
    case null
}

/// One line of the checklist: the verdict, the evidence, and for a warning or failure the
/// likely cause and the fix. Never holds a secret: no password, device secret, token or
/// Bayeux clientId goes into any field.
public struct CheckResult: Sendable, Equatable {
    public var check: Check
    public var verdict: Verdict
    /// One line: what was seen.
    public var summary: String
    /// Further lines of evidence (a certificate chain, the probed idle periods).
    public var evidence: [String]
    /// Why it is probably so (warn and fail).
    public var cause: String?
    /// What to do (warn and fail).
    public var fix: String?
    /// The facts as key/value pairs, in order.
    public var details: [Detail]

    /// One key/value pair of `details`.
    public struct Detail: Sendable, Equatable {
        public var key: String
        public var value: DetailValue
        public init(_ key: String, _ value: DetailValue) {
            self.key = key
            self.value = value
        }
    }

    public init(_ check: Check, _ verdict: Verdict, _ summary: String, evidence: [String] = [],
                cause: String? = nil, fix: String? = nil, details: [Detail] = []) {
        self.check = check
        self.verdict = verdict
        self.summary = summary
        self.evidence = evidence
        self.cause = cause
        self.fix = fix
        self.details = details
    }

    /// A check that did not run, and why.
    public static func skipped(_ check: Check, _ reason: String) -> CheckResult {
        CheckResult(check, .skipped, reason)
    }

    /// The value of detail `key`, if present.
    public func detail(_ key: String) -> DetailValue? {
        details.first { $0.key == key }?.value
    }
}
