import EdgeStore

/// What the packer reads of a record: a `StoredRecord`, or an `OutboxRow` seen in place while
/// the outbox is read (its payload goes straight into the request body, with no array of its
/// own). Generic code over it is specialized for each, so neither pays for the other.
protocol PackableRecord {
    var id: Int64 { get }
    var kind: RecordKind { get }
    var recordClass: RecordClass { get }
    var target: String { get }
    var child: String? { get }
    var eventTime: Int64 { get }
    var enqueuedAt: Int64 { get }
    var payloadCount: Int { get }
    func appendPayload(to body: inout [UInt8])
    /// The record with a payload of its own, to keep.
    func stored() -> StoredRecord
}

extension PackableRecord {
    /// The size of the smallest request body that carries this record alone.
    var singleRecordBodyBytes: Int { kind.singleRecordBodyBytes(payloadBytes: payloadCount, child: child) }
}

extension StoredRecord: PackableRecord {
    var payloadCount: Int { payload.count }
    func appendPayload(to body: inout [UInt8]) { body.append(contentsOf: payload) }
    func stored() -> StoredRecord { self }
}

extension OutboxRow: PackableRecord {
    var payloadCount: Int { payload.count }
    func appendPayload(to body: inout [UInt8]) { body.append(contentsOf: payload) }
}
