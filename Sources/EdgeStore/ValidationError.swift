/// Why a record was refused: which field, why, and what to do. Nothing is stored.
public struct ValidationError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The field as named in JSON lines (snake_case), or `record` for the whole record.
    public let field: String
    /// What is wrong with it.
    public let reason: String
    /// What to do instead.
    public let hint: String

    public init(field: String, reason: String, hint: String) {
        self.field = field
        self.reason = reason
        self.hint = hint
    }

    public var description: String { "\(field): \(reason). \(hint)" }
}
