@testable import edgebuf
import EdgeStore
import Foundation
import TestSupport
import Testing

/// `edgebuf enqueue operation-status` and `"kind": "operation_status"` lines through the built
/// binary, and the pure parts of `inbox exec --operations` (which rows are operations, the
/// crash rule, the failure reason's bounds).
@Suite struct OperationStatusCLITests {
    let dir = TemporaryDirectory()
    var db: String { dir.file("cli.db") }

    func eb(_ arguments: [String], stdin: String? = nil) throws -> CommandResult {
        try edgebuf(["--db", db] + arguments, stdin: stdin)
    }

    func outbox() throws -> [JSONDict] {
        try parseLines(try eb(["outbox", "list", "--json"]).stdout)
    }

    @Test func aStatusIsStoredCriticalAndBadOnesExit65NamingTheFieldAndStoreNothing() throws {
        let good = try eb(["enqueue", "operation-status", "--id", "10042", "--status", "SUCCESSFUL", "--fragments", #"{"c8y_Result": {"ok": true}}"#, "--json"])
        #expect(good.status == 0, "\(good.stderr)")
        let stored = try outbox()
        #expect(stored.count == 1)
        #expect(stored.first?.string("kind") == "operation_status" && stored.first?.string("class") == "critical" && stored.first?.string("target") == "10042")
        for (arguments, field) in [(["--id", "1", "--status", "DONE"], "status:"),
                                   (["--id", "1", "--status", "EXECUTING", "--failure-reason", "x"], "failure_reason:"),
                                   (["--id", "a b", "--status", "FAILED"], "operation_id:"),
                                   (["--id", "1", "--status", "SUCCESSFUL", "--fragments", "[]"], "fragments:")] {
            let bad = try eb(["enqueue", "operation-status"] + arguments)
            #expect(bad.status == 65, "\(arguments): \(bad.stderr)")
            #expect(bad.stderr.contains(field), "\(arguments): \(bad.stderr)")
        }
        #expect(try outbox().count == 1, "nothing of the refused ones was stored")
    }

    @Test func jsonLinesTakeTheKindAndReportABadLineByNumber() throws {
        let input = """
            {"kind": "operation_status", "operation_id": "7", "status": "EXECUTING"}
            {"kind": "operation_status", "operation_id": "7", "status": "FAILED", "failure_reason": "exit status 2: disk full"}
            {"kind": "operation_status", "operation_id": "7", "status": "SUCCESSFUL", "reason": "typo"}

            """
        let result = try eb(["enqueue", "--jsonl"], stdin: input)
        #expect(result.status == 65)
        #expect(result.stderr.contains("line 3") && result.stderr.contains("reason"), "\(result.stderr)")
        #expect(try outbox().map { $0.string("target") } == ["7", "7"])
    }

    func entry(_ data: String, action: String? = nil, recovered: Bool = false) -> InboxEntry {
        InboxEntry(id: 5, kind: .notification, channel: "/operations/42", realtimeAction: action, data: data, receivedAt: 0, recovered: recovered)
    }

    @Test func operationsAreReadFromWrappedAndBareData() {
        let wrapped = OperationRunner.notice(entry(#"{"realtimeAction":"CREATE","data":{"id":"10","status":"PENDING"}}"#, action: "CREATE"))
        #expect(wrapped == OperationRunner.Notice(operationID: "10", status: "PENDING", realtimeAction: "CREATE", recovered: false))
        let bare = OperationRunner.notice(entry(#"{"id":11,"status":"EXECUTING"}"#, recovered: true))
        #expect(bare == OperationRunner.Notice(operationID: "11", status: "EXECUTING", realtimeAction: nil, recovered: true))
        #expect(OperationRunner.notice(entry(#"{"n": 1}"#)) == nil)
        #expect(OperationRunner.notice(InboxEntry(id: 1, kind: .gap, channel: nil, realtimeAction: nil, data: "{}", receivedAt: 0)) == nil)
    }

    @Test func theCrashRuleEndsAStartedRunFailedInterruptedAndNeverRunsItAgain() {
        let pending = OperationRunner.Notice(operationID: "10", status: "PENDING", realtimeAction: "CREATE", recovered: false)
        #expect(OperationRunner.step(pending, run: nil, consumer: "ops") == .run)
        let started = OperationRun(operationID: "10", consumer: "ops", inboxID: 1, state: .executing, finalStatus: nil, startedAt: 0)
        guard case .interrupted(let reason) = OperationRunner.step(pending, run: started, consumer: "ops") else {
            Issue.record("a started run was not taken for interrupted"); return
        }
        #expect(reason.hasPrefix("interrupted"))
        let done = OperationRun(operationID: "10", consumer: "ops", inboxID: 1, state: .final, finalStatus: .successful, startedAt: 0)
        guard case .passOver = OperationRunner.step(pending, run: done, consumer: "ops") else { Issue.record("a handled operation ran again"); return }
        // The platform's echo of our own EXECUTING runs nothing; a recovered EXECUTING without a run is interrupted.
        let echo = OperationRunner.Notice(operationID: "11", status: "EXECUTING", realtimeAction: "UPDATE", recovered: false)
        guard case .passOver = OperationRunner.step(echo, run: nil, consumer: "ops") else { Issue.record("an UPDATE echo ran"); return }
        var recovered = echo
        recovered.recovered = true
        recovered.realtimeAction = nil
        guard case .interrupted = OperationRunner.step(recovered, run: nil, consumer: "ops") else { Issue.record("a recovered EXECUTING ran"); return }
        let deleted = OperationRunner.Notice(operationID: "12", status: "PENDING", realtimeAction: "DELETE", recovered: false)
        guard case .passOver = OperationRunner.step(deleted, run: nil, consumer: "ops") else { Issue.record("a DELETE ran"); return }
    }

    @Test func aFailureReasonIsOneLineOfAtMostOneKiB() {
        let long = String(repeating: "é", count: 2000) + "\u{1}\n"
        let bounded = OperationRunner.bounded("exit status 1: " + long)
        #expect(bounded.utf8.count <= OperationStatus.maxFailureReasonBytes)
        #expect(!bounded.unicodeScalars.contains { $0.value < 0x20 })
        #expect(OperationRunner.lastLine(Array("a\n{\"x\":1}\n  \n".utf8)) == #"{"x":1}"#)
        #expect(OperationRunner.lastLine(Array("".utf8)) == nil)
    }
}
