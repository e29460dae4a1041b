import EdgeDownlink
import Foundation
import TestSupport
import Testing


typealias Session = BayeuxSession<TestInstant>

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// The request body decoded by Foundation (tests only).
func messages(of request: BayeuxRequest) -> [[String: Any]] {
    (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [[String: Any]] ?? []
}

/// Answer bodies built from the request they answer.
enum Reply {
    /// One meta reply per message of `request`, as JSON object texts.
    static func meta(_ request: BayeuxRequest, successful: Bool = true, clientID: String? = nil, error: String? = nil,
                     advice: String? = nil, id: String? = nil) -> [String] {
        zip(request.messageIDs.indices, request.messageIDs).map { index, messageID in
            var fields = [#""channel":"\#(request.kind.channel)""#, #""successful":\#(successful)"#, #""id":"\#(id ?? messageID)""#]
            if let clientID { fields.append(#""clientId":"\#(clientID)""#) }
            if let error { fields.append(#""error":"\#(error)""#) }
            if let advice { fields.append(#""advice":\#(advice)"#) }
            if !request.subscriptions.isEmpty { fields.append(#""subscription":"\#(request.subscriptions[index])""#) }
            return "{" + fields.joined(separator: ",") + "}"
        }
    }

    /// A Cumulocity operation event on `/operations/1`.
    static func operation(_ id: String, status: String = "PENDING", action: String = "CREATE", bayeuxID: String = "77",
                          channel: String = "/operations/1") -> String {
        #"{"channel":"\#(channel)","id":"\#(bayeuxID)","data":{"realtimeAction":"\#(action)","data":{"id":"\#(id)","status":"\#(status)","deviceId":"1","c8y_Restart":{}}}}"#
    }

    static func array(_ parts: [String]...) -> [UInt8] {
        bytes("[" + parts.flatMap { $0 }.joined(separator: ",") + "]")
    }
}

/// Drives a session the way the engine does, with a hand-moved clock. `run()` returns the next
/// request to send; waits move time forward only while no request awaits an answer, so a test
/// answers what it got (or moves time on purpose to make a poll die).
struct Harness {
    var session: Session
    var now = TestInstant.zero
    var sent: [(request: BayeuxRequest, deadline: TestInstant, at: TestInstant)] = []
    var outstanding: [BayeuxRequestID: BayeuxRequest] = [:]
    var stores: [(notifications: [InboxNotification], gap: SessionGap?)] = []
    var reports: [BayeuxReport] = []
    var cancelled: [BayeuxRequestID] = []
    var waits: [Duration] = []
    var stopped: BayeuxStopReason?
    var autoCommit = true
    var storeInFlight = false

    static let channels = ["/operations/1"]

    init(channels: [String] = Harness.channels, configure: (inout DownlinkConfiguration) -> Void = { _ in },
         random: any RandomNumberGenerator & Sendable = FixedRandom(value: 0)) {
        var configuration = DownlinkConfiguration(url: "https://example.test/notification/realtime", channels: channels)
        configure(&configuration)
        session = Session(configuration: configuration, random: random)
    }

    /// Processes actions until a request is to be sent (returned), or the session waits for an
    /// answer, a commit, or has stopped (nil). `limit` bounds the simulated time of waits.
    @discardableResult
    mutating func run(maxSteps: Int = 200) -> BayeuxRequest? {
        for _ in 0..<maxSteps {
            switch session.nextAction(now: now) {
            case .send(let request, let deadline):
                #expect(deadline > now, "a deadline in the past")
                sent.append((request, deadline, now))
                outstanding[request.id] = request
                return request
            case .cancel(let id):
                cancelled.append(id)
                outstanding[id] = nil
            case .store(let notifications, let gap):
                stores.append((notifications, gap))
                storeInFlight = true
                if autoCommit {
                    storeInFlight = false
                    session.storeCommitted(now: now)
                }
            case .report(let report):
                reports.append(report)
            case .wait(let until):
                #expect(until > now, "a wait that does not wait")
                if !outstanding.isEmpty || storeInFlight { return nil }
                waits.append(now.duration(to: until))
                now = until
            case .idle:
                return nil
            case .stopped(let reason):
                stopped = reason
                return nil
            }
        }
        Issue.record("no request after \(maxSteps) steps")
        return nil
    }

    mutating func answer(_ request: BayeuxRequest, _ body: [UInt8]) {
        outstanding[request.id] = nil
        session.answerReceived(requestID: request.id, body: body, now: now)
    }

    mutating func answer(_ request: BayeuxRequest, _ parts: [String]...) {
        answer(request, bytes("[" + parts.flatMap { $0 }.joined(separator: ",") + "]"))
    }

    mutating func fail(_ request: BayeuxRequest, _ failure: BayeuxFailure) {
        outstanding[request.id] = nil
        session.requestFailed(requestID: request.id, failure: failure, now: now)
    }

    mutating func advance(_ duration: Duration) { now = now.advanced(by: duration) }

    mutating func commit() {
        storeInFlight = false
        session.storeCommitted(now: now)
    }

    /// Handshake, subscribe and the first connect answered successfully; returns the second
    /// connect (the first long poll), outstanding.
    mutating func connect(clientID: String = "client-1", handshakeAdvice: String? = nil, connectAdvice: String? = nil) -> BayeuxRequest {
        let handshake = expectKind(run(), .handshake)
        answer(handshake, Reply.meta(handshake, clientID: clientID, advice: handshakeAdvice))
        if !session.configuration.channels.isEmpty {
            let subscribe = expectKind(run(), .subscribe)
            answer(subscribe, Reply.meta(subscribe))
        }
        let first = expectKind(run(), .connect)
        answer(first, Reply.meta(first, advice: connectAdvice))
        return expectKind(run(), .connect)
    }

    var sentKinds: [BayeuxRequest.Kind] { sent.map(\.request.kind) }
    var gaps: [SessionGap] { stores.compactMap(\.gap) }
    var notifications: [InboxNotification] { stores.flatMap(\.notifications) }
}

/// Unwraps a request and checks its kind (the test fails if either is wrong).
@discardableResult
func expectKind(_ request: BayeuxRequest?, _ kind: BayeuxRequest.Kind, sourceLocation: SourceLocation = #_sourceLocation) -> BayeuxRequest {
    guard let request else {
        Issue.record("expected a \(kind.rawValue) request, got none", sourceLocation: sourceLocation)
        return BayeuxRequest.disconnect(id: BayeuxRequestID(0), messageID: "0", clientID: "")
    }
    #expect(request.kind == kind, sourceLocation: sourceLocation)
    return request
}
