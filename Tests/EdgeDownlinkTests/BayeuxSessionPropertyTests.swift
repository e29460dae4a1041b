import TestSupport
import EdgeDownlink
import Testing

/// Random event sequences over many seeds; after every step the session's invariants hold:
/// at most one connect and one handshake outstanding and never both, nothing sent while a
/// store is uncommitted, nothing sent after `.stopped`, no wait that does not wait, and the
/// session's idea of what is outstanding matches the engine's.
@Suite struct BayeuxSessionPropertyTests {
    struct Model {
        var outstanding: [BayeuxRequestID: BayeuxRequest] = [:]
        var finished: [BayeuxRequest] = []
        var storePending = false
        var stopped = false
        var wake: TestInstant?
        var sends = 0
        var stores = 0
        var gaps = 0
        var connected = false
    }

    static func randomReply(_ request: BayeuxRequest, _ rng: inout SplitMix64, clientNumber: Int) -> [UInt8] {
        let roll = rng.next() % 100
        let events = rng.next() % 3 == 0 ? [Reply.operation(String(rng.next() % 5), bayeuxID: String(rng.next() % 1000))] : []
        let advice: String? = [nil, nil, #"{"reconnect":"retry","interval":0,"timeout":60000}"#,
                               #"{"reconnect":"retry","interval":2000}"#, #"{"timeout":0}"#][Int(rng.next() % 5)]
        switch roll {
        case 0..<55:
            return Reply.array(events, Reply.meta(request, clientID: request.kind == .handshake ? "c\(clientNumber)" : nil, advice: advice))
        case 55..<63:
            return Reply.array(Reply.meta(request, successful: false, error: "402::Unknown client"), events)
        case 63..<68:
            return Reply.array(Reply.meta(request, successful: false, error: "401:x:Unknown client", advice: #"{"reconnect":"handshake"}"#))
        case 68..<73:
            return Reply.array(Reply.meta(request, successful: false, error: "403::Handshake denied"))
        case 73..<80:
            return Reply.array(Reply.meta(request, successful: false))
        case 80..<86:
            return bytes(["", "   ", "<html>", #"[{"channel":"/meta/co"#, "[]"][Int(rng.next() % 5)])
        case 86..<89:
            return Reply.array(events, Reply.meta(request, id: "stale-\(rng.next() % 10)"))
        case 89 where rng.next() % 6 == 0:
            return Reply.array(Reply.meta(request, successful: false, advice: #"{"reconnect":"none"}"#))
        case 90 where rng.next() % 6 == 0:
            return Reply.array(Reply.meta(request, advice: #"{"interval":-1}"#))
        default:
            return Reply.array(events)
        }
    }

    @Test func invariantsHoldOnRandomEventSequences() {
        var failures = 0
        var totalSends = 0
        var totalStores = 0
        var stoppedRuns = 0
        var totalGaps = 0
        var connectedRuns = 0
        for seed in UInt64(1)...300 where failures < 5 {
            var rng = SplitMix64(seed: seed)
            let channelCount = Int(rng.next() % 3)
            var h = Harness(channels: (0..<channelCount).map { "/operations/\($0)" }, random: SplitMix64(seed: seed &* 7919))
            h.session.start(now: h.now)
            var model = Model()
            var clientNumber = 0

            for step in 0..<250 {
                if let violation = drain(&h, &model) {
                    Issue.record("seed \(seed), step \(step): \(violation)")
                    failures += 1
                    break
                }
                if model.stopped { break }
                let roll = rng.next() % 100
                if model.storePending && roll < 30 {
                    model.storePending = false
                    if rng.next() % 8 == 0 { h.session.storeFailed(now: h.now) } else { h.session.storeCommitted(now: h.now) }
                } else if !model.outstanding.isEmpty && roll < 75 {
                    let ids = model.outstanding.keys.sorted()
                    let request = model.outstanding.removeValue(forKey: ids[Int(rng.next() % UInt64(ids.count))])!
                    model.finished.append(request)
                    clientNumber += 1
                    switch rng.next() % 10 {
                    case 0: h.session.requestFailed(requestID: request.id, failure: .transport("connection_closed"), now: h.now)
                    case 1: h.session.requestFailed(requestID: request.id, failure: .httpStatus([401, 429, 500, 502][Int(rng.next() % 4)]), now: h.now)
                    case 2: h.session.requestFailed(requestID: request.id, failure: .deadlineExceeded, now: h.now)
                    default: h.session.answerReceived(requestID: request.id, body: Self.randomReply(request, &rng, clientNumber: clientNumber), now: h.now)
                    }
                } else if !model.finished.isEmpty && roll < 82 {
                    // A stale answer (or a late failure report) for a request already done or cancelled.
                    let old = model.finished[Int(rng.next() % UInt64(model.finished.count))]
                    if rng.next() % 2 == 0 {
                        h.session.answerReceived(requestID: old.id, body: Self.randomReply(old, &rng, clientNumber: clientNumber), now: h.now)
                    } else {
                        h.session.requestFailed(requestID: old.id, failure: .deadlineExceeded, now: h.now)
                    }
                } else if roll == 82 && rng.next() % 6 == 0 {
                    h.session.stop(now: h.now)
                } else if roll == 83 {
                    h.session.setChannels((0..<Int(rng.next() % 4)).map { "/operations/\($0)" }, now: h.now)
                } else {
                    // Time passes: to the next wake-up, or a random stretch (which may kill polls).
                    if let wake = model.wake, rng.next() % 2 == 0 {
                        h.now = max(h.now, wake)
                    } else {
                        h.advance(.milliseconds(Int64(rng.next() % 400_000)))
                    }
                }
            }
            if model.stopped {
                stoppedRuns += 1
                // Nothing is ever sent again.
                for _ in 0..<5 {
                    h.advance(.seconds(3600))
                    if case .send = h.session.nextAction(now: h.now) { Issue.record("seed \(seed): a send after stopped") }
                }
            }
            totalGaps += model.gaps
            if model.connected { connectedRuns += 1 }
            totalSends += model.sends
            totalStores += model.stores
        }
        // The walk reached the interesting places (the test would prove nothing otherwise).
        #expect(totalSends > 5_000 && totalStores > 3_000 && totalGaps > 500)
        #expect(connectedRuns > 150 && stoppedRuns > 20 && stoppedRuns < 250)
        print("property walk: \(totalSends) sends, \(totalStores) stores, \(totalGaps) gaps, \(connectedRuns) runs connected, \(stoppedRuns) runs stopped")
    }

    /// Pulls actions until the session waits, checking the invariants after each; returns the
    /// first violation.
    func drain(_ h: inout Harness, _ model: inout Model) -> String? {
        model.wake = nil
        for _ in 0..<100 {
            let action = h.session.nextAction(now: h.now)
            switch action {
            case .send(let request, let deadline):
                if model.storePending { return "\(request) sent before the store was committed" }
                if model.stopped { return "\(request) sent after stopped" }
                if deadline <= h.now { return "\(request) has a deadline that is not in the future" }
                model.outstanding[request.id] = request
                model.sends += 1
            case .cancel(let id):
                guard let request = model.outstanding.removeValue(forKey: id) else { return "cancel of \(id), not outstanding" }
                model.finished.append(request)
            case .store(_, let gap):
                if model.storePending { return "a second store before the first was committed" }
                if gap != nil { model.gaps += 1 }
                model.storePending = true
                model.stores += 1
            case .report(let report):
                if report.phase == .connected { model.connected = true }
            case .wait(let until):
                if until <= h.now { return "a wait that does not wait" }
                model.wake = until
            case .idle:
                if !model.storePending { return "idle with nothing to wait for" }
            case .stopped:
                model.stopped = true
            }
            let kinds = model.outstanding.values.map(\.kind)
            let connects = kinds.filter { $0 == .connect }.count
            let handshakes = kinds.filter { $0 == .handshake }.count
            if connects > 1 { return "two connects outstanding" }
            if handshakes > 1 { return "two handshakes outstanding" }
            if connects + handshakes > 1 { return "a connect beside a handshake" }
            if kinds.count - connects > 1 { return "two requests on the control connection" }
            switch action {
            case .wait, .idle, .stopped:
                // At rest (every cancel delivered), the session and the engine agree.
                if Set(h.session.outstandingRequests.map(\.id)) != Set(model.outstanding.keys) { return "outstanding requests differ" }
                return nil
            default:
                continue
            }
        }
        return "no wait after 100 actions"
    }
}
