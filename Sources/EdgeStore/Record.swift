/// What a record reports, and so which platform request carries it.
public enum RecordKind: String, Sendable, CaseIterable, Codable {
    /// IoTDA device properties of one service (`sys/properties/report`).
    case property
    /// An IoTDA device message (`sys/messages/up`), one per request.
    case message
    /// Properties of a gateway's child device (`sys/gateway/sub-devices/properties/report`).
    case childProperty = "child_property"
    /// A Cumulocity measurement (`/measurement/measurements`).
    case measurement
    /// The status of a Cumulocity operation (`PUT /devicecontrol/operations/{id}`), one per
    /// request. Its target is the operation id.
    case operationStatus = "operation_status"

    /// Whether each record of this kind is a request of its own (its payload is the body).
    public var goesAlone: Bool { self == .message || self == .operationStatus }

    /// The JSON bytes that wrap a single record of this kind into a request body: the smallest
    /// request that can carry it. The packer adds records between the same delimiters.
    public func singleRecordBodyBytes(payloadBytes: Int, child: String?) -> Int {
        switch self {
        case .property: return RecordKind.servicesPrefix.count + payloadBytes + RecordKind.arraySuffix.count
        case .message, .operationStatus: return payloadBytes
        case .measurement: return RecordKind.measurementsPrefix.count + payloadBytes + RecordKind.arraySuffix.count
        case .childProperty:
            return RecordKind.devicesPrefix.count + RecordKind.childHeaderBytes(child ?? "")
                + payloadBytes + RecordKind.childFooter.count + RecordKind.arraySuffix.count
        }
    }

    /// `{"services":[` … `]}`
    public static let servicesPrefix = Array(#"{"services":["#.utf8)
    /// `{"measurements":[` … `]}`
    public static let measurementsPrefix = Array(#"{"measurements":["#.utf8)
    /// `{"devices":[` {child header} … {child footer} `]}`
    public static let devicesPrefix = Array(#"{"devices":["#.utf8)
    /// Closes the top-level array and object.
    public static let arraySuffix = Array("]}".utf8)
    /// Closes one child device's services array and object.
    public static let childFooter = Array("]}".utf8)

    /// `{"device_id":"child","services":[`
    public static func childHeader(_ child: String) -> [UInt8] {
        var out = Array(#"{"device_id":"#.utf8)
        JSON.appendString(child, to: &out)
        out.append(contentsOf: Array(#","services":["#.utf8))
        return out
    }

    static func childHeaderBytes(_ child: String) -> Int { childHeader(child).count }
}

/// How urgently a record must leave the device. Critical drains before normal before bulk;
/// a full outbox under `drop-oldest` evicts bulk before normal before critical.
public enum RecordClass: Int, Sendable, CaseIterable, Comparable, Codable {
    case critical = 0
    case normal = 1
    case bulk = 2

    /// The name used in the CLI, the config and JSON: `critical`, `normal`, `bulk`.
    public var name: String {
        switch self {
        case .critical: return "critical"
        case .normal: return "normal"
        case .bulk: return "bulk"
        }
    }

    /// Parses `critical`, `normal` or `bulk`.
    public init?(name: String) {
        switch name {
        case "critical": self = .critical
        case "normal": self = .normal
        case "bulk": self = .bulk
        default: return nil
        }
    }

    public static func < (lhs: RecordClass, rhs: RecordClass) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A validated record, ready to be stored. Build one with `RecordInput.validated`.
public struct NewRecord: Sendable, Equatable {
    public let kind: RecordKind
    public let recordClass: RecordClass
    /// The device (property, message), gateway (child_property), source (measurement) or
    /// operation id (operation_status).
    public let target: String
    /// The child device of a gateway, for child_property.
    public let child: String?
    /// Time of measurement, ms since the epoch, UTC.
    public let eventTime: Int64
    /// The record's JSON exactly as it goes into a request body.
    public let payload: [UInt8]

    public init(kind: RecordKind, recordClass: RecordClass, target: String, child: String?, eventTime: Int64, payload: [UInt8]) {
        self.kind = kind
        self.recordClass = recordClass
        self.target = target
        self.child = child
        self.eventTime = eventTime
        self.payload = payload
    }
}

/// A record as stored in the outbox or the dead-letter table.
public struct StoredRecord: Sendable, Equatable {
    public let id: Int64
    public let kind: RecordKind
    public let recordClass: RecordClass
    public let target: String
    public let child: String?
    public let eventTime: Int64
    public let enqueuedAt: Int64
    public let payload: [UInt8]

    public init(id: Int64, kind: RecordKind, recordClass: RecordClass, target: String, child: String?,
                eventTime: Int64, enqueuedAt: Int64, payload: [UInt8]) {
        self.id = id
        self.kind = kind
        self.recordClass = recordClass
        self.target = target
        self.child = child
        self.eventTime = eventTime
        self.enqueuedAt = enqueuedAt
        self.payload = payload
    }

    /// The size of the smallest request body that carries this record alone.
    public var singleRecordBodyBytes: Int { kind.singleRecordBodyBytes(payloadBytes: payload.count, child: child) }
}

/// What removing a delivered record needs to know of it: its id, and its class and payload
/// size for the running totals.
public struct DeliveredRecord: Sendable, Equatable {
    public let id: Int64
    public let recordClass: RecordClass
    /// `payload.count`, as `OutboxStore.admit` stored it in `bytes`.
    public let bytes: Int

    public init(id: Int64, recordClass: RecordClass, bytes: Int) {
        self.id = id
        self.recordClass = recordClass
        self.bytes = bytes
    }
}

/// An outbox row as `OutboxStore.forEachRow` steps over it. `payload` points into SQLite's
/// row: it is valid only during the callback that received the row; copy what is kept
/// (`stored()` makes a `StoredRecord`).
package struct OutboxRow {
    package let id: Int64
    package let kind: RecordKind
    package let recordClass: RecordClass
    package let target: String
    package let child: String?
    package let eventTime: Int64
    package let enqueuedAt: Int64
    package let payload: UnsafeRawBufferPointer

    /// The row as a record of its own (copies the payload).
    package func stored() -> StoredRecord {
        StoredRecord(id: id, kind: kind, recordClass: recordClass, target: target, child: child,
                     eventTime: eventTime, enqueuedAt: enqueuedAt, payload: Array(payload))
    }
}
