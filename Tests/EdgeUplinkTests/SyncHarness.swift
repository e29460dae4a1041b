import TestSupport
import EdgeStore
import EdgeUplink
import Testing

typealias Machine = SyncStateMachine<TestInstant>

/// Drives a state machine the way the engine does, with a hand-moved clock: authentications
/// succeed unless told otherwise, waits move time forward at once.
struct SyncHarness {
    var machine: Machine
    var now = TestInstant.zero
    var authentications: [TestInstant] = []
    var waits: [Duration] = []
    /// When each request was sent.
    var sendTimes: [TestInstant] = []
    var tokenLifetime: Duration = .seconds(3600)

    init(configuration: SyncConfiguration = SyncConfiguration(), random: any RandomNumberGenerator & Sendable = FixedRandom(value: .max)) {
        machine = Machine(configuration: configuration, random: random)
    }

    /// Runs steps until a request is to be sent (nil when the queue is empty).
    mutating func nextSend(maxSteps: Int = 100) -> (request: UplinkRequest, attempt: Int, token: AccessToken?)? {
        for _ in 0..<maxSteps {
            switch machine.nextStep(now: now) {
            case .send(let request, let attempt, let token):
                sendTimes.append(now)
                return (request, attempt, token)
            case .authenticate(let device):
                authentications.append(now)
                _ = machine.authenticated(deviceID: device, token: AccessToken("tok-\(authentications.count)", expiresIn: tokenLifetime), now: now)
            case .wait(let until):
                waits.append(now.duration(to: until))
                now = until
            case .needRecords:
                return nil
            case .busy:
                Issue.record("busy")
                return nil
            }
        }
        Issue.record("no send after \(maxSteps) steps")
        return nil
    }

    /// Sends everything queued to a simulated platform; returns what the store saw.
    mutating func drain(_ platform: (UplinkRequest) -> ExchangeResult) -> StoreLog {
        var log = StoreLog()
        while let (request, attempt, _) = nextSend() {
            let decision = machine.requestFinished(request, result: platform(request), attempt: attempt, now: now)!
            log.apply(decision)
        }
        return log
    }
}

/// What the engine would have done to the store.
struct StoreLog {
    var deleted: [Int64] = []
    var deadLettered: [Int64] = []
    var reasons: [RejectionReason] = []
    var outcomes: [RequestOutcome] = []
    var sends = 0

    mutating func apply(_ decision: SyncDecision) {
        sends += 1
        outcomes.append(decision.outcome)
        for action in decision.actions {
            switch action {
            case .delete(let ids): deleted += ids
            case .deadLetter(let ids, let reason), .deadLetterChild(_, let ids, let reason):
                deadLettered += ids
                reasons.append(reason)
            default: break
            }
        }
    }
}

/// A payload-free name for an action, to compare action lists.
func name(_ action: SyncAction) -> String {
    switch action {
    case .delete: return "delete"
    case .deadLetter: return "deadLetter"
    case .deadLetterChild: return "deadLetterChild"
    case .retryAfter: return "retryAfter"
    case .split: return "split"
    case .bisect: return "bisect"
    case .reauthenticate: return "reauthenticate"
    case .slowDown: return "slowDown"
    case .unauthorized: return "unauthorized"
    }
}
