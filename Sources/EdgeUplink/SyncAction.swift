import EdgeStore

/// What the engine must do, or should know, after an event of `SyncStateMachine`.
///
/// Only three actions touch the store: `delete`, `deadLetter` and `deadLetterChild`. The
/// others describe a decision the state machine has already taken (it owns the queue of
/// requests): log them, count them, show them in `status`; `nextStep` yields what follows.
public enum SyncAction: Sendable, Equatable {
    /// Delivered: delete these records and write the request's audit row in ONE transaction.
    case delete(ids: [Int64])
    /// Refused for good: move these records to the dead-letter table with the reason.
    case deadLetter(ids: [Int64], reason: RejectionReason)
    /// IOTDA.021104: move this child's records of the request to the dead-letter table; the
    /// rest of the request is already queued to go again.
    case deadLetterChild(child: String, ids: [Int64], reason: RejectionReason)
    /// Transient failure or rate limit: the same request goes again after `delay`.
    case retryAfter(Duration)
    /// Too large or too many children: the request was halved; these go next, in order.
    case split(UplinkRequest, UplinkRequest)
    /// Invalid input: the request was halved to isolate the bad record; these go next.
    case bisect(UplinkRequest, UplinkRequest)
    /// The token was refused: the device authenticates again (once), then the request goes again.
    case reauthenticate(deviceID: String)
    /// Rate limited: the request rate was lowered to this many per second.
    case slowDown(requestsPerSecond: Double)
    /// Credentials refused: nothing is sent for this long (then authentication is tried again).
    /// Tell the operator: this needs a fix of the device id or secret.
    case unauthorized(retryIn: Duration)
}

/// The state machine's answer to a finished request.
public struct SyncDecision: Sendable, Equatable {
    /// The request's audit row (write it with the store action, in the same transaction).
    public var outcome: RequestOutcome
    /// What to do, in order.
    public var actions: [SyncAction]

    public init(outcome: RequestOutcome, actions: [SyncAction]) {
        self.outcome = outcome
        self.actions = actions
    }
}
