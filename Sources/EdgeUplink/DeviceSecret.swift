import Foundation

/// An IoTDA device secret. It never prints: `description`, `debugDescription`, string
/// interpolation, `dump` and `Mirror` all show `<redacted>` or nothing, so a secret cannot
/// reach a log line, an error or the audit table by accident.
public struct DeviceSecret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The secret itself; only the HMAC computation reads it.
    let value: String

    public init(_ value: String) {
        self.value = value
    }

    /// Whether the secret is empty (a configuration mistake worth reporting, without the value).
    public var isEmpty: Bool { value.isEmpty }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "DeviceSecret(<redacted>)" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension DeviceSecret {
    /// `text` with every occurrence of the secret replaced by `<redacted>` (for text that
    /// leaves the process, such as a handler's failure reason).
    public func redacted(in text: String) -> String {
        value.isEmpty ? text : text.replacingOccurrences(of: value, with: "<redacted>")
    }
}
