import EdgeStore

/// The ordering rule of operation statuses: what the uplink does with an `operation_status`
/// record it is about to send, given the other statuses of the same operation waiting in the
/// outbox and the final status the platform already accepted (if any). Pure: the engine reads
/// the facts, this decides.
///
/// An operation ends once: EXECUTING is never sent after SUCCESSFUL or FAILED of the same
/// operation, and no second, different final status is sent. Records are read by class, then
/// id, so a status of another class can come first; the rule does not hold records back (a
/// record held would block its class), it withholds those that would break the order, and the
/// engine dead-letters them with the reason (visible in `dead-letters list`, audited):
///
/// | the record | the platform already accepted a final F | no final accepted yet |
/// |---|---|---|
/// | EXECUTING | withheld | withheld if an older final status of the operation waits in the outbox (it supersedes EXECUTING; the platform takes PENDING -> final); else sent, ahead of any younger final status |
/// | final S | sent if S == F (a repeat, idempotent); withheld otherwise | withheld if the operation's first waiting final record is older and of another status (that one ends the operation); else sent |
public enum OperationStatusOrder {
    /// The verdict for one record.
    public enum Decision: Sendable, Equatable {
        case send
        /// Not to be sent: dead-letter it with this reason.
        case withhold(String)
    }

    /// Decides for record `recordID` of status `status`. `waiting` may include the record
    /// itself (it is ignored).
    public static func decide(recordID: Int64, status: OperationStatus, waiting: [PendingOperationStatus],
                              delivered: DeliveredFinalStatus?) -> Decision {
        if let delivered {
            if status == .executing {
                return .withhold("not sent: EXECUTING would follow the final status \(delivered.status.rawValue) the platform already accepted for this operation (record \(delivered.recordID))")
            }
            if status != delivered.status {
                return .withhold("not sent: the platform already accepted the final status \(delivered.status.rawValue) for this operation (record \(delivered.recordID)); an operation ends once")
            }
            return .send
        }
        let others = waiting.filter { $0.recordID != recordID }
        if status == .executing {
            // An older final status waiting means EXECUTING came too late: sent now it would
            // follow that one. A younger one goes after it (requests are sent one at a time,
            // oldest first; if it drains first, from a more urgent class, it is delivered by the
            // time EXECUTING comes up, and the check above withholds EXECUTING then).
            if let final = others.first(where: { $0.status.isFinal && $0.recordID < recordID }) {
                return .withhold("superseded: the final status \(final.status.rawValue) of this operation (record \(final.recordID)) was enqueued before it, and EXECUTING must not follow it")
            }
            return .send
        }
        // The operation's first final record ends it; a later one of another status does not go.
        if let first = others.filter({ $0.status.isFinal }).min(by: { $0.recordID < $1.recordID }),
           first.recordID < recordID, first.status != status {
            return .withhold("not sent: the earlier final status \(first.status.rawValue) of this operation (record \(first.recordID)) ends it; an operation ends once")
        }
        return .send
    }
}
