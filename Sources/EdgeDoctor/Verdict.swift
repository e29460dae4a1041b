/// The outcome of one doctor check.
public enum Verdict: String, Sendable, Equatable, Comparable, CaseIterable {
    /// The check passed.
    case ok
    /// Something is off but does not stop syncing (a clock a few seconds off, a certificate
    /// that expires soon, a network that closes idle connections early).
    case warn
    /// Syncing is blocked until this is fixed.
    case fail
    /// Not checked: not configured, not applicable, or an earlier check failed.
    case skipped

    /// Severity order for summaries: skipped < ok < warn < fail.
    private var rank: Int {
        switch self {
        case .skipped: return 0
        case .ok: return 1
        case .warn: return 2
        case .fail: return 3
        }
    }

    public static func < (lhs: Verdict, rhs: Verdict) -> Bool { lhs.rank < rhs.rank }
}
