import EdgeStore

/// One platform request built from outbox records: where it goes, its exact body and which
/// records it carries. Build them with `Packer`.
public struct UplinkRequest: Sendable, Equatable, CustomStringConvertible {
    /// The platform, from the record kind.
    public let platform: Platform
    /// The kind of every record in the request.
    public let kind: RecordKind
    /// The class of the records (the packer is given one class at a time).
    public let recordClass: RecordClass
    /// The IoTDA device whose URL and token the request uses (the gateway for child
    /// properties); nil for Cumulocity, where each measurement names its own source.
    public let device: String?
    /// The HTTP path, e.g. `/v5/devices/d-001/sys/properties/report`.
    public let path: String
    /// The exact body bytes to POST.
    public let body: [UInt8]
    /// The records, in body order: id order per device, and for child properties grouped by
    /// child (children in order of their oldest record).
    public let records: [StoredRecord]
    /// The ids of `records`, in the same order.
    public let recordIDs: [Int64]
    /// The distinct child devices, in body order (child properties only; empty otherwise).
    public let children: [String]

    /// How many records the request carries.
    public var recordCount: Int { recordIDs.count }

    /// The oldest record id in the request (requests are sent oldest first).
    public let firstID: Int64

    /// A short, secret-free label for logs: kind, path, records, bytes.
    public var description: String {
        "\(kind.rawValue) \(path) records=\(recordCount) bytes=\(body.count)"
    }

    /// Builds the request carrying `records` (non-empty, all of one kind, class and device;
    /// for measurements any sources). Records of one child are grouped under one device
    /// entry; otherwise the given order is kept.
    init(records given: [StoredRecord]) {
        precondition(!given.isEmpty, "a request carries at least one record")
        let first = given[0]
        let kind = first.kind
        precondition(kind != .message || given.count == 1, "a message goes alone")
        var records = given
        var children: [String] = []
        if kind == .childProperty {
            (records, children) = Self.groupedByChild(given)
        }
        self.platform = Platform(for: kind)
        self.kind = kind
        self.recordClass = first.recordClass
        self.device = kind == .measurement ? nil : first.target
        self.path = Platform.path(for: kind, target: first.target)
        self.records = records
        self.recordIDs = records.map(\.id)
        self.firstID = recordIDs.min() ?? 0
        self.children = children
        self.body = Self.body(kind: kind, records: records)
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

    /// The body of `records` (already in body order). Its size is what `Packer` predicts.
    static func body(kind: RecordKind, records: [StoredRecord]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(records.reduce(64) { $0 + $1.payload.count + 1 })
        switch kind {
        case .message:
            out.append(contentsOf: records[0].payload)
        case .property, .measurement:
            out.append(contentsOf: kind == .property ? RecordKind.servicesPrefix : RecordKind.measurementsPrefix)
            for (index, record) in records.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: record.payload)
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
                out.append(contentsOf: record.payload)
            }
            out.append(contentsOf: RecordKind.childFooter)
            out.append(contentsOf: RecordKind.arraySuffix)
        }
        return out
    }

    /// The same request without the records whose ids are in `ids` (nil if none is left).
    public func removing(ids: Set<Int64>) -> UplinkRequest? {
        let kept = records.filter { !ids.contains($0.id) }
        return kept.isEmpty ? nil : UplinkRequest(records: kept)
    }

    /// The ids of the records of child device `child`, in body order.
    public func recordIDs(ofChild child: String) -> [Int64] {
        records.filter { $0.child == child }.map(\.id)
    }
}
