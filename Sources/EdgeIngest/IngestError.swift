import EdgeStore

/// Why a request was refused: the HTTP status, the field (as the platform's body names it,
/// e.g. `services[1].properties`), why and what to do. Nothing of the request was stored.
public struct IngestError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let field: String
    public let reason: String
    public let hint: String

    public init(status: Int = 400, field: String, reason: String, hint: String) {
        self.status = status
        self.field = field
        self.reason = reason
        self.hint = hint
    }

    /// A validation error of the record built from `prefix` (e.g. `services[0]`).
    init(_ error: ValidationError, at prefix: String) {
        self.init(field: prefix.isEmpty ? error.field : "\(prefix).\(error.field)", reason: error.reason, hint: error.hint)
    }

    public var description: String { "\(field): \(reason). \(hint)" }
}
