/// A change worth telling the operator: a phase change, or a loud event that keeps the phase
/// (credentials refused again, a subscription refused). Log it at `severity`; `status` shows
/// the same phase.
public struct BayeuxReport: Sendable, Equatable, CustomStringConvertible {
    /// The log level to use.
    public enum Severity: String, Sendable, Equatable, Comparable {
        case info, warning, error

        public static func < (lhs: Severity, rhs: Severity) -> Bool {
            let order: [Severity] = [.info, .warning, .error]
            return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
        }
    }

    /// The phase before (equal to `phase` for a loud event without a change).
    public var previous: BayeuxPhase
    /// The phase now.
    public var phase: BayeuxPhase
    /// What happened, secret-free (no clientId, no body).
    public var reason: String?
    public var severity: Severity

    public init(previous: BayeuxPhase, phase: BayeuxPhase, reason: String?, severity: Severity) {
        self.previous = previous
        self.phase = phase
        self.reason = reason
        self.severity = severity
    }

    public var description: String {
        let head = previous == phase ? phase.description : "\(previous.name) -> \(phase.description)"
        return reason.map { "\(head): \($0)" } ?? head
    }
}
