import EdgeStore

/// Packs outbox records into platform requests, computing each body's size exactly as it goes
/// so that no request exceeds the body limit or the child-device limit.
///
/// - Properties of one device merge into one `{"services":[...]}` body.
/// - Messages and operation statuses go one per request, the payload as the body.
/// - Child properties of one gateway merge into `{"devices":[{"device_id":c,"services":[...]},...]}`,
///   the records of one child under one device entry, at most `maxChildrenPerRequest` children.
/// - Measurements merge into `{"measurements":[...]}` whatever their source.
///
/// Order: each device's records go out in id order. Records of one group (kind and device,
/// or all measurements) fill one request at a time, in id order, so a later record of a device
/// never lands in an earlier request than an earlier record of it; requests are returned
/// oldest first (by their oldest record). The packer sees only the window it is given, so its
/// memory is bounded by the window, not by the backlog.
public struct Packer: Sendable {
    /// The limits a request must respect.
    public struct Limits: Sendable, Equatable {
        /// The largest body, in bytes. IoTDA: 1 MB, counted as 1,048,576 bytes.
        public var maxBodyBytes: Int
        /// The most distinct child devices in one gateway request. IoTDA HTTPS: 50.
        public var maxChildrenPerRequest: Int

        public init(maxBodyBytes: Int = 1_048_576, maxChildrenPerRequest: Int = 50) {
            self.maxBodyBytes = maxBodyBytes
            self.maxChildrenPerRequest = maxChildrenPerRequest
        }
    }

    /// What `pack` makes of a window of records.
    public struct Result: Sendable, Equatable {
        /// Requests in send order (oldest record first).
        public var requests: [UplinkRequest]
        /// Records whose request body would exceed the limit even alone (enqueue should have
        /// refused them): dead-letter them with `Packer.oversizeReason`.
        public var oversized: [StoredRecord]
    }

    public let limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Packs `records` (one class, in drain order: oldest first).
    public func pack(_ records: [StoredRecord]) -> Result {
        // Stable sort by id: the drain order is already this; this only guards the invariant.
        let ordered = records.enumerated().sorted { ($0.element.id, $0.offset) < ($1.element.id, $1.offset) }.map(\.element)
        var window = Window(limits: limits, budget: .unlimited)
        for record in ordered { _ = window.offer(record) }
        return window.finish()
    }

    /// A window that packs records as they are read (see `Window`), ending at `budget`.
    public func window(budget: Window.Budget) -> Window {
        Window(limits: limits, budget: budget)
    }

    /// Halves a request's records (first half first, in body order) and rebuilds both bodies.
    /// Nil for a request of one record. Each half is no larger than the original, in bytes
    /// and in children.
    public func split(_ request: UplinkRequest) -> (UplinkRequest, UplinkRequest)? {
        Self.split(request)
    }

    /// See `split(_:)`.
    public static func split(_ request: UplinkRequest) -> (UplinkRequest, UplinkRequest)? {
        guard request.records.count > 1 else { return nil }
        let middle = request.records.count / 2
        return (UplinkRequest(records: Array(request.records[..<middle])),
                UplinkRequest(records: Array(request.records[middle...])))
    }

    /// Why an oversized record is dead-lettered.
    public func oversizeReason(_ record: StoredRecord) -> RejectionReason {
        RejectionReason(reason: "too large: a request carrying this record alone would be \(record.singleRecordBodyBytes) bytes, over the limit of \(limits.maxBodyBytes) bytes")
    }
}

extension Packer {
    /// Records that may share a request.
    struct GroupKey: Hashable {
        let kind: RecordKind
        let recordClass: RecordClass
        let target: String

        init(_ record: some PackableRecord) {
            kind = record.kind
            recordClass = record.recordClass
            target = record.kind == .measurement ? "" : record.target
        }
    }

    /// A request being filled, with its exact body size so far.
    ///
    /// Properties and measurements are written into the body as they come (each payload
    /// once, no array per record kept); child properties are kept as records and written when
    /// built, grouped by child.
    struct OpenRequest {
        let kind: RecordKind
        /// Records taken.
        private(set) var count = 0
        /// The class and target of the first record (every record's, but for measurements'
        /// targets, which vary and are not in the path).
        private var recordClass = RecordClass.normal
        private var target = ""
        /// Child properties (and a message): the records, written when built.
        private var records: [StoredRecord] = []
        /// Properties and measurements: the body so far, closed (prefix, payloads, suffix), and
        /// where each payload sits in it.
        private var body: [UInt8] = []
        private var entries: [UplinkRequest.Entry] = []
        var bodyBytes: Int
        var children: Set<String> = []
        /// The body limit, reserved at once when a body grows past `smallBody`.
        private let maxBodyBytes: Int
        static let smallBody = 1 << 16

        init(kind: RecordKind, maxBodyBytes: Int) {
            self.kind = kind
            self.maxBodyBytes = maxBodyBytes
            switch kind {
            case .property: bodyBytes = RecordKind.servicesPrefix.count + RecordKind.arraySuffix.count
            case .measurement: bodyBytes = RecordKind.measurementsPrefix.count + RecordKind.arraySuffix.count
            case .childProperty: bodyBytes = RecordKind.devicesPrefix.count + RecordKind.arraySuffix.count
            case .message, .operationStatus: bodyBytes = 0
            }
        }

        /// The body size with `record` added, or nil if it would exceed the child limit.
        func adding(_ record: some PackableRecord, maxChildren: Int) -> Int? {
            switch kind {
            case .message, .operationStatus:
                return count == 0 ? record.payloadCount : nil
            case .property, .measurement:
                return bodyBytes + (count == 0 ? 0 : 1) + record.payloadCount
            case .childProperty:
                let child = record.child ?? ""
                if children.contains(child) {
                    return bodyBytes + 1 + record.payloadCount  // "," inside the child's services
                }
                guard children.count < maxChildren else { return nil }
                return bodyBytes + (children.isEmpty ? 0 : 1) + RecordKind.childHeader(child).count
                    + record.payloadCount + RecordKind.childFooter.count
            }
        }

        /// Adds `record` if the body stays within the limit and the children within
        /// `maxChildren`; false, with nothing changed, otherwise. Called in place
        /// (`open[i].addIfFits`), so that the open request is not copied for every record.
        mutating func addIfFits(_ record: some PackableRecord, maxChildren: Int) -> Bool {
            guard let size = adding(record, maxChildren: maxChildren), size <= maxBodyBytes else { return false }
            add(record, bodyBytes: size)
            return true
        }

        mutating func add(_ record: some PackableRecord) {
            add(record, bodyBytes: adding(record, maxChildren: .max)!)
        }

        private mutating func add(_ record: some PackableRecord, bodyBytes size: Int) {
            bodyBytes = size
            if count == 0 {
                recordClass = record.recordClass
                target = record.target
            }
            count += 1
            switch kind {
            case .property, .measurement:
                // The body stays closed, so that building it copies nothing.
                if body.isEmpty {
                    body.append(contentsOf: kind == .property ? RecordKind.servicesPrefix : RecordKind.measurementsPrefix)
                } else {
                    body.removeLast(RecordKind.arraySuffix.count)
                    body.append(UInt8(ascii: ","))
                }
                if body.count >= Self.smallBody && body.count + record.payloadCount + 3 > body.capacity {
                    // A request that outgrew a few records fills up, most likely to the limit:
                    // one allocation of the largest body then, instead of growing by doubling
                    // (each step a fresh, page-faulting allocation and a copy).
                    body.reserveCapacity(max(maxBodyBytes, body.count + record.payloadCount + 3))
                }
                let start = body.count
                record.appendPayload(to: &body)
                entries.append(UplinkRequest.Entry(record, payload: start..<body.count))
                body.append(contentsOf: RecordKind.arraySuffix)
            case .childProperty:
                records.append(record.stored())
                children.insert(record.child ?? "")
            case .message, .operationStatus:
                records.append(record.stored())
            }
        }

        func build() -> UplinkRequest {
            let request: UplinkRequest
            switch kind {
            case .property, .measurement:
                request = UplinkRequest(kind: kind, recordClass: recordClass, target: target, body: body, entries: entries, children: [])
            case .childProperty, .message, .operationStatus:
                request = UplinkRequest(records: records)
            }
            assert(request.body.count == bodyBytes, "packer size prediction \(bodyBytes) != body \(request.body.count)")
            return request
        }
    }
}
