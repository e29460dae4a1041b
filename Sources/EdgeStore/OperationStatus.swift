/// The status a device reports for a Cumulocity operation. The platform creates operations
/// `PENDING`; the device moves them to `EXECUTING` and then to one final status.
public enum OperationStatus: String, Sendable, CaseIterable, Equatable {
    case executing = "EXECUTING"
    case successful = "SUCCESSFUL"
    case failed = "FAILED"

    /// SUCCESSFUL and FAILED: nothing may follow them.
    public var isFinal: Bool { self != .executing }

    /// The longest failure reason, in UTF-8 bytes.
    public static let maxFailureReasonBytes = 1024

    /// The status an `operation_status` payload carries. Every such payload starts with
    /// `{"status":"` and the status (`RecordInput` writes it so), so this reads no more than
    /// that prefix.
    public init?(payload: some Collection<UInt8>) {
        let prefix = Self.payloadPrefix
        guard payload.count > prefix.count, payload.starts(with: prefix) else { return nil }
        let rest = payload.dropFirst(prefix.count)
        for status in Self.allCases where rest.starts(with: Array(status.rawValue.utf8) + [UInt8(ascii: "\"")]) {
            self = status
            return
        }
        return nil
    }

    /// `{"status":"`
    static let payloadPrefix = Array(#"{"status":""#.utf8)
}
