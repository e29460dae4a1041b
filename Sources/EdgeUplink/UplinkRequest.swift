import EdgeStore

/// One platform request built from outbox records: where it goes, its exact body and which
/// records it carries. Build them with `Packer`.
///
/// The request keeps its body and, per record, everything but the payload: each payload is a
/// slice of the body (`records` rebuilds them on demand, for a split or a resend without some
/// records). A full request of small records so holds its bytes once, not once in the body
/// and again in an array per record.
public struct UplinkRequest: Sendable, Equatable, CustomStringConvertible {
    /// The platform, from the record kind.
    public let platform: Platform
    /// The kind of every record in the request.
    public let kind: RecordKind
    /// The class of the records (the packer is given one class at a time).
    public let recordClass: RecordClass
    /// The IoTDA device whose URL and token the request uses (the gateway for child
    /// properties); nil for Cumulocity, which takes Basic credentials.
    public let device: String?
    /// The HTTP path, e.g. `/v5/devices/d-001/sys/properties/report`.
    public let path: String
    /// The exact body bytes to send (POST; PUT for an operation status, see `method`).
    public let body: [UInt8]
    /// The records, in body order, without their payloads (see `records`).
    let entries: [Entry]
    /// The ids of `records`, in the same order.
    public let recordIDs: [Int64]
    /// The distinct child devices, in body order (child properties only; empty otherwise).
    public let children: [String]
    /// SHA-256 of `body`, lowercase hex (the request's audit row carries it). Computed as the
    /// request is built, which happens while the previous request is sent and committed.
    public let bodySHA256: String

    /// The HTTP method: PUT for an operation status, POST for everything else.
    public var method: String { kind == .operationStatus ? "PUT" : "POST" }

    /// The operation an operation-status request updates.
    public var operationID: String? { kind == .operationStatus ? entries.first?.target : nil }

    /// How many records the request carries.
    public var recordCount: Int { recordIDs.count }

    /// The oldest record id in the request (requests are sent oldest first).
    public let firstID: Int64

    /// A record as the request holds it: its payload is `body[payload]`.
    struct Entry: Sendable, Equatable {
        let id: Int64
        let kind: RecordKind
        let recordClass: RecordClass
        let target: String
        let child: String?
        let eventTime: Int64
        let enqueuedAt: Int64
        let payload: Range<Int>

        init(_ record: some PackableRecord, payload: Range<Int>) {
            id = record.id
            kind = record.kind
            recordClass = record.recordClass
            target = record.target
            child = record.child
            eventTime = record.eventTime
            enqueuedAt = record.enqueuedAt
            self.payload = payload
        }
    }

    /// The records, in body order: id order per device, and for child properties grouped by
    /// child (children in order of their oldest record). Rebuilt from the body on each call.
    public var records: [StoredRecord] {
        entries.map { entry in
            StoredRecord(id: entry.id, kind: entry.kind, recordClass: entry.recordClass, target: entry.target, child: entry.child,
                         eventTime: entry.eventTime, enqueuedAt: entry.enqueuedAt, payload: Array(body[entry.payload]))
        }
    }

    /// What deleting the records after a 2xx needs (ids, classes, payload sizes); only those
    /// in `ids` when given.
    public func delivered(only ids: Set<Int64>? = nil) -> [DeliveredRecord] {
        var out: [DeliveredRecord] = []
        out.reserveCapacity(entries.count)
        for entry in entries where ids?.contains(entry.id) ?? true {
            out.append(DeliveredRecord(id: entry.id, recordClass: entry.recordClass, bytes: entry.payload.count))
        }
        return out
    }

    /// A short, secret-free label for logs: kind, path, records, bytes.
    public var description: String {
        "\(kind.rawValue) \(path) records=\(recordCount) bytes=\(body.count)"
    }

    /// Builds the request carrying `records` (non-empty, all of one kind, class and device;
    /// for measurements any sources). Records of one child are grouped under one device
    /// entry; otherwise the given order is kept.
    init(records given: [StoredRecord]) {
        precondition(!given.isEmpty, "a request carries at least one record")
        let kind = given[0].kind
        precondition(!kind.goesAlone || given.count == 1, "a message or an operation status goes alone")
        var records = given
        var children: [String] = []
        if kind == .childProperty {
            (records, children) = Self.groupedByChild(given)
        }
        let (body, entries) = Self.body(kind: kind, records: records)
        self.init(kind: kind, recordClass: given[0].recordClass, target: given[0].target, body: body, entries: entries, children: children)
    }

    /// A request whose body was written as its records were packed (`Packer.OpenRequest`).
    init(kind: RecordKind, recordClass: RecordClass, target: String, body: [UInt8], entries: [Entry], children: [String]) {
        self.platform = Platform(for: kind)
        self.kind = kind
        self.recordClass = recordClass
        self.device = platform == .cumulocity ? nil : target
        self.path = Platform.path(for: kind, target: target)
        self.body = body
        self.entries = entries
        self.recordIDs = entries.map(\.id)
        self.firstID = recordIDs.min() ?? 0
        self.children = children
        self.bodySHA256 = Hex.sha256(body)
    }

    /// Stable grouping by child, children in order of first appearance.
    static func groupedByChild(_ records: [StoredRecord]) -> ([StoredRecord], [String]) {
        var order: [String] = []
        var groups: [String: [StoredRecord]] = [:]
        for record in records {
            let child = record.child ?? ""
            if groups[child] == nil { order.append(child) }
            groups[child, default: []].append(record)
        }
        return (order.flatMap { groups[$0]! }, order)
    }

    /// The body of `records` (already in body order) and where each payload sits in it. Its
    /// size is what `Packer` predicts.
    static func body(kind: RecordKind, records: [StoredRecord]) -> ([UInt8], [Entry]) {
        var out: [UInt8] = []
        out.reserveCapacity(records.reduce(64) { $0 + $1.payload.count + 1 })
        var entries: [Entry] = []
        entries.reserveCapacity(records.count)
        func append(_ record: StoredRecord) {
            let start = out.count
            out.append(contentsOf: record.payload)
            entries.append(Entry(record, payload: start..<out.count))
        }
        switch kind {
        case .message, .operationStatus:
            append(records[0])
        case .property, .measurement:
            out.append(contentsOf: kind == .property ? RecordKind.servicesPrefix : RecordKind.measurementsPrefix)
            for (index, record) in records.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                append(record)
            }
            out.append(contentsOf: RecordKind.arraySuffix)
        case .childProperty:
            out.append(contentsOf: RecordKind.devicesPrefix)
            var current: String? = nil
            for record in records {
                let child = record.child ?? ""
                if child != current {
                    if current != nil {
                        out.append(contentsOf: RecordKind.childFooter)
                        out.append(UInt8(ascii: ","))
                    }
                    out.append(contentsOf: RecordKind.childHeader(child))
                    current = child
                } else {
                    out.append(UInt8(ascii: ","))
                }
                append(record)
            }
            out.append(contentsOf: RecordKind.childFooter)
            out.append(contentsOf: RecordKind.arraySuffix)
        }
        return (out, entries)
    }

    /// The same request without the records whose ids are in `ids` (nil if none is left).
    public func removing(ids: Set<Int64>) -> UplinkRequest? {
        let kept = records.filter { !ids.contains($0.id) }
        return kept.isEmpty ? nil : UplinkRequest(records: kept)
    }

    /// The ids of the records of child device `child`, in body order.
    public func recordIDs(ofChild child: String) -> [Int64] {
        entries.filter { $0.child == child }.map(\.id)
    }
}
