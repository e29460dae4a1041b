@testable import EdgeStore
import Testing

/// The `operation_status` record kind: validation, the PUT body it stores, and the status read
/// back from a payload.
@Suite struct OperationStatusInputTests {
    let now: Int64 = 1_795_317_010_555

    func line(_ text: String) throws(ValidationError) -> NewRecord {
        try RecordInput.fromJSONLine(Array(text.utf8)).validated(now: now, maxBodyBytes: 1_048_576)
    }

    func refusal(_ text: String) -> ValidationError? {
        do {
            _ = try line(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func executingIsCriticalByDefaultAndTargetsTheOperation() throws {
        let record = try line(#"{"kind":"operation_status","operation_id":"10042","status":"EXECUTING"}"#)
        #expect(record.kind == .operationStatus)
        #expect(record.recordClass == .critical)
        #expect(record.target == "10042")
        #expect(String(decoding: record.payload, as: UTF8.self) == #"{"status":"EXECUTING"}"#)
        #expect(OperationStatus(payload: record.payload) == .executing)
    }

    @Test func failedCarriesItsReasonAndSuccessfulItsFragments() throws {
        let failed = try line(#"{"kind":"operation_status","operation_id":"7","status":"FAILED","failure_reason":"exit status 2: \"disk\" full","class":"bulk"}"#)
        #expect(failed.recordClass == .bulk)
        #expect(String(decoding: failed.payload, as: UTF8.self) == #"{"status":"FAILED","failureReason":"exit status 2: \"disk\" full"}"#)
        #expect(OperationStatus(payload: failed.payload) == .failed)
        let done = try line(#"{"kind":"operation_status","operation_id":"7","status":"SUCCESSFUL","fragments":{ "c8y_Result": {"uptime": 5} }}"#)
        #expect(String(decoding: done.payload, as: UTF8.self) == #"{"status":"SUCCESSFUL","c8y_Result":{"uptime":5}}"#)
        let empty = try line(#"{"kind":"operation_status","operation_id":"7","status":"SUCCESSFUL","fragments":{}}"#)
        #expect(String(decoding: empty.payload, as: UTF8.self) == #"{"status":"SUCCESSFUL"}"#)
    }

    @Test(arguments: [
        (#"{"kind":"operation_status","status":"EXECUTING"}"#, "operation_id", "is missing"),
        (#"{"kind":"operation_status","operation_id":"a/b","status":"EXECUTING"}"#, "operation_id", "not allowed"),
        (#"{"kind":"operation_status","operation_id":"1"}"#, "status", "is missing"),
        (#"{"kind":"operation_status","operation_id":"1","status":"PENDING"}"#, "status", "not an operation status"),
        (#"{"kind":"operation_status","operation_id":"1","status":"executing"}"#, "status", "not an operation status"),
        (#"{"kind":"operation_status","operation_id":"1","status":"SUCCESSFUL","failure_reason":"x"}"#, "failure_reason", "SUCCESSFUL"),
        (#"{"kind":"operation_status","operation_id":"1","status":"FAILED","failure_reason":"a\nb"}"#, "failure_reason", "control character"),
        (#"{"kind":"operation_status","operation_id":"1","status":"FAILED","failure_reason":""}"#, "failure_reason", "empty"),
        (#"{"kind":"operation_status","operation_id":"1","status":"SUCCESSFUL","fragments":[1]}"#, "fragments", "JSON object"),
        (#"{"kind":"operation_status","operation_id":"1","status":"SUCCESSFUL","fragments":{"status":"FAILED"}}"#, "fragments", "field of the operation"),
        (#"{"kind":"operation_status","operation_id":"1","status":"SUCCESSFUL","source":"x"}"#, "source", "not a field"),
        (#"{"kind":"operation_status","operation_id":"1","status":"SUCCESSFUL","class":"urgent"}"#, "class", "not a record class"),
        (#"{"kind":"operation_status","operation_id":1,"status":"SUCCESSFUL"}"#, "operation_id", "JSON string"),
    ])
    func badFieldsAreRefusedByName(text: String, field: String, reason: String) {
        let error = refusal(text)
        #expect(error?.field == field, "\(text)")
        #expect(error?.reason.contains(reason) == true, "\(String(describing: error?.reason)) for \(text)")
    }

    @Test func aFailureReasonIsAtMostOneKiB() throws {
        let fits = String(repeating: "é", count: 512)  // 1024 bytes
        _ = try line(#"{"kind":"operation_status","operation_id":"1","status":"FAILED","failure_reason":"\#(fits)"}"#)
        let error = refusal(#"{"kind":"operation_status","operation_id":"1","status":"FAILED","failure_reason":"\#(fits)x"}"#)
        #expect(error?.field == "failure_reason" && error?.reason.contains("1025 bytes") == true)
    }

    @Test func theStatusIsReadOnlyFromAWellFormedPrefix() {
        #expect(OperationStatus(payload: Array(#"{"status":"SUCCESSFUL","x":1}"#.utf8)) == .successful)
        #expect(OperationStatus(payload: Array(#"{"status":"SUCCESSFULLY"}"#.utf8)) == nil)
        #expect(OperationStatus(payload: Array(#"{"name":"x"}"#.utf8)) == nil)
        #expect(OperationStatus(payload: Array("".utf8)) == nil)
    }
}
