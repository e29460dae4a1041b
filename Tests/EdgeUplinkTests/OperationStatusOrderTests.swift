import EdgeStore
import EdgeUplink
import Foundation
import TestSupport
import Testing

/// The per-operation ordering rule (`OperationStatusOrder`) case by case, and against a model
/// of the drain (class, then id; lost answers; statuses enqueued while draining) and of the
/// platform's transition table.
@Suite struct OperationStatusOrderTests {
    typealias P = PendingOperationStatus

    @Test func executingAloneIsSent() {
        #expect(OperationStatusOrder.decide(recordID: 1, status: .executing, waiting: [P(recordID: 1, status: .executing)], delivered: nil) == .send)
    }

    @Test func executingIsWithheldBehindAnOlderWaitingFinalStatusAndSentAheadOfAYoungerOne() {
        for final in [P(recordID: 0, status: .failed), P(recordID: 0, status: .successful)] {
            let decision = OperationStatusOrder.decide(recordID: 1, status: .executing, waiting: [P(recordID: 1, status: .executing), final], delivered: nil)
            guard case .withhold(let reason) = decision else { Issue.record("\(final) did not withhold EXECUTING"); continue }
            #expect(reason.contains("superseded") && reason.contains(final.status.rawValue))
        }
        // The usual case offline: EXECUTING, then the outcome, both waiting: EXECUTING goes first.
        #expect(OperationStatusOrder.decide(recordID: 1, status: .executing, waiting: [P(recordID: 1, status: .executing), P(recordID: 2, status: .successful)], delivered: nil) == .send)
    }

    @Test func executingAfterADeliveredFinalIsWithheld() {
        let decision = OperationStatusOrder.decide(recordID: 9, status: .executing, waiting: [], delivered: DeliveredFinalStatus(status: .successful, recordID: 3))
        guard case .withhold(let reason) = decision else { Issue.record("EXECUTING after SUCCESSFUL was sent"); return }
        #expect(reason.contains("SUCCESSFUL") && reason.contains("record 3"))
    }

    @Test func aFinalStatusIsSentOverAWaitingExecuting() {
        #expect(OperationStatusOrder.decide(recordID: 2, status: .successful, waiting: [P(recordID: 1, status: .executing)], delivered: nil) == .send)
        #expect(OperationStatusOrder.decide(recordID: 1, status: .failed, waiting: [P(recordID: 3, status: .executing)], delivered: nil) == .send)
    }

    @Test func theEarliestFinalStatusEndsTheOperation() {
        let waiting = [P(recordID: 4, status: .failed), P(recordID: 7, status: .successful)]
        #expect(OperationStatusOrder.decide(recordID: 4, status: .failed, waiting: waiting, delivered: nil) == .send)
        guard case .withhold = OperationStatusOrder.decide(recordID: 7, status: .successful, waiting: waiting, delivered: nil) else {
            Issue.record("a later, different final status was sent while an earlier one waited"); return
        }
        // The same status again (a resend, or a second record) is a harmless repeat.
        #expect(OperationStatusOrder.decide(recordID: 8, status: .failed, waiting: waiting + [P(recordID: 8, status: .failed)], delivered: nil) == .send)
        #expect(OperationStatusOrder.decide(recordID: 8, status: .failed, waiting: [], delivered: DeliveredFinalStatus(status: .failed, recordID: 4)) == .send)
        guard case .withhold = OperationStatusOrder.decide(recordID: 8, status: .successful, waiting: [], delivered: DeliveredFinalStatus(status: .failed, recordID: 4)) else {
            Issue.record("a second, different final status was sent after the first was delivered"); return
        }
    }

    /// Random statuses of a few operations in random classes, enqueued before and during the
    /// drain, drained by class then id, some answers lost (the platform applied the status,
    /// the commit never happened: the record goes again): the platform (the simulator's
    /// transition table) never sees an illegal transition, every record ends delivered or
    /// withheld, and each operation ends in the status of its first final record.
    @Test func aModelOfTheDrainNeverBreaksTheTransitionTable() {
        let seed = UInt64(ProcessInfo.processInfo.environment["EDGEBUF_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        print("OperationStatusOrderTests seed \(seed) (EDGEBUF_FUZZ_SEED=\(seed) replays it)")
        var random = SplitMix64(seed: seed)
        for round in 0..<400 {
            var model = DrainModel()
            var toEnqueue: [(operation: String, status: OperationStatus, cls: RecordClass)] = []
            for operation in ["a", "b", "c"].prefix(Int.random(in: 1...3, using: &random)) {
                for _ in 0..<Int.random(in: 1...5, using: &random) {
                    let status = OperationStatus.allCases.randomElement(using: &random)!
                    toEnqueue.append((operation, status, RecordClass.allCases.randomElement(using: &random)!))
                }
            }
            toEnqueue.shuffle(using: &random)
            var firstFinal: [String: OperationStatus] = [:]
            var steps = 0
            while (!toEnqueue.isEmpty || !model.outbox.isEmpty) && steps < 1000 {
                steps += 1
                if !toEnqueue.isEmpty && (model.outbox.isEmpty || Bool.random(using: &random)) {
                    let next = toEnqueue.removeFirst()
                    if next.status.isFinal && firstFinal[next.operation] == nil { firstFinal[next.operation] = next.status }
                    model.enqueue(next.operation, next.status, next.cls)
                } else {
                    model.drainOne(loseAnswer: Int.random(in: 0..<5, using: &random) == 0)
                }
            }
            #expect(model.outbox.isEmpty, "round \(round): the drain did not end")
            #expect(model.refused.isEmpty, "round \(round) (seed \(seed)): the platform refused \(model.refused)")
            for (operation, status) in firstFinal {
                #expect(model.platform[operation] == status.rawValue, "round \(round) (seed \(seed)): \(operation) ended \(model.platform[operation] ?? "PENDING"), its first final record was \(status)")
            }
            if !model.refused.isEmpty { return }
        }
    }

    /// The outbox of operation statuses, the `operation_final` table and the platform.
    struct DrainModel {
        struct Row { let id: Int64; let operation: String; let status: OperationStatus; let cls: RecordClass }
        var outbox: [Row] = []
        var nextID: Int64 = 1
        var delivered: [String: DeliveredFinalStatus] = [:]
        var platform: [String: String] = [:]
        var refused: [String] = []

        mutating func enqueue(_ operation: String, _ status: OperationStatus, _ cls: RecordClass) {
            outbox.append(Row(id: nextID, operation: operation, status: status, cls: cls))
            nextID += 1
        }

        /// The simulator's table (tools/simulator_bayeux.py OPERATION_TRANSITIONS).
        static func allowed(_ from: String, _ to: String) -> Bool {
            switch from {
            case "PENDING", "EXECUTING": return ["EXECUTING", "SUCCESSFUL", "FAILED"].contains(to)
            default: return from == to
            }
        }

        mutating func drainOne(loseAnswer: Bool) {
            guard let row = outbox.min(by: { ($0.cls.rawValue, $0.id) < ($1.cls.rawValue, $1.id) }) else { return }
            let waiting = outbox.filter { $0.operation == row.operation }.map { P(recordID: $0.id, status: $0.status) }
            switch OperationStatusOrder.decide(recordID: row.id, status: row.status, waiting: waiting, delivered: delivered[row.operation]) {
            case .withhold:
                outbox.removeAll { $0.id == row.id }  // dead-lettered with the reason
            case .send:
                let current = platform[row.operation] ?? "PENDING"
                guard Self.allowed(current, row.status.rawValue) else {
                    refused.append("\(row.operation): \(current) -> \(row.status.rawValue) (record \(row.id))")
                    outbox.removeAll { $0.id == row.id }  // a 422: dead-lettered
                    return
                }
                platform[row.operation] = row.status.rawValue
                if loseAnswer { return }  // applied, but the delete never committed: sent again
                outbox.removeAll { $0.id == row.id }
                if row.status.isFinal && delivered[row.operation] == nil {
                    delivered[row.operation] = DeliveredFinalStatus(status: row.status, recordID: row.id)
                }
            }
        }
    }
}

@Suite struct OperationStatusPackingTests {
    static func status(_ id: Int64, operation: String, _ status: String, fragments: String? = nil) -> StoredRecord {
        var input = RecordInput(kind: .operationStatus)
        input.operationID = operation
        input.status = status
        input.fragments = fragments.map { Array($0.utf8) }
        return Fixture.stored(id, input)
    }

    @Test func eachStatusIsAPutOfItsOwnToTheOperation() {
        let records = [Self.status(1, operation: "501", "EXECUTING"), Fixture.measurement(2),
                       Self.status(3, operation: "501", "SUCCESSFUL", fragments: #"{"c8y_Result":{"ok":true}}"#), Fixture.measurement(4)]
        let requests = Packer().pack(records).requests
        #expect(requests.map(\.recordIDs) == [[1], [2, 4], [3]])
        let executing = requests[0], successful = requests[2]
        #expect(executing.platform == .cumulocity && executing.device == nil)
        #expect(executing.method == "PUT" && requests[1].method == "POST")
        #expect(executing.path == "/devicecontrol/operations/501")
        #expect(executing.operationID == "501")
        #expect(Fixture.text(successful.body) == #"{"status":"SUCCESSFUL","c8y_Result":{"ok":true}}"#)
        #expect(Packer.split(successful) == nil, "a single status cannot be split")
        let headers = Platform.cumulocity.headers(accessToken: nil, kind: .operationStatus)
        #expect(headers.first { $0.name == "Content-Type" }?.value == Platform.operationMediaType)
    }
}
