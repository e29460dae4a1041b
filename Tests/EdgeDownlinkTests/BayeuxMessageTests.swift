@testable import EdgeDownlink
import TestSupport
import Foundation
import Testing

@Suite struct BayeuxMessageTests {
    // MARK: Parsing

    @Test func parsesTheCumulocityConnectAnswerWithEventsBeforeTheMetaReply() throws {
        let body = bytes(#"""
        [ { "channel": "/alarms/208", "id": "79",
            "data": { "realtimeAction": "UPDATE", "data": { "severity": "MAJOR", "count": 2, "id": "327", "status": "ACTIVE" } } },
          { "advice": { "interval": 0, "timeout": 5400000, "reconnect": "retry" }, "channel": "/meta/connect", "successful": true } ]
        """#)
        let messages = try BayeuxMessage.parseAnswer(body)
        #expect(messages.count == 2)
        let event = messages[0]
        #expect(!event.isMeta && event.channel == "/alarms/208" && event.id == "79")
        #expect(event.notifications.count == 1)
        let note = event.notifications[0]
        #expect(text(note.data) == #"{"realtimeAction":"UPDATE","data":{"severity":"MAJOR","count":2,"id":"327","status":"ACTIVE"}}"#)
        #expect(note.realtimeAction == "UPDATE" && note.messageID == "79")
        let meta = messages[1]
        #expect(meta.isMeta && meta.successful == true && meta.id == nil)
        #expect(meta.advice == BayeuxAdvice(reconnect: .retry, intervalMilliseconds: 0, timeoutMilliseconds: 5_400_000))
        #expect(meta.notifications.isEmpty)
    }

    @Test func whitespaceHeartbeatsBeforeTheJSONAreSkipped() throws {
        let heartbeats = String(repeating: " ", count: 4000) + "\r\n\t "
        let messages = try BayeuxMessage.parseAnswer(bytes(heartbeats + #"[{"channel":"/meta/connect","successful":true}]"# + "  \n"))
        #expect(messages.map(\.channel) == ["/meta/connect"])
        // A byte-order mark too.
        #expect(try BayeuxMessage.parseAnswer([0xEF, 0xBB, 0xBF] + bytes(#" {"channel":"/meta/connect"}"#)).count == 1)
    }

    @Test func aSingleObjectInsteadOfAnArrayIsOneMessage() throws {
        let messages = try BayeuxMessage.parseAnswer(bytes(#"{"channel":"/operations/1","data":{"id":"5","x":1}}"#))
        #expect(messages.count == 1)
        #expect(text(messages[0].notifications[0].data) == #"{"id":"5","x":1}"#)
    }

    @Test func dataAsAOneElementArrayIsUnwrappedToTheObject() throws {
        // The 2013 docs: "data": [{...}].
        let body = bytes(#"[{"channel":"/events/12345","successful":true,"error":"","data":[ { "id" : "10", "type" : "door", "v" : 1.50 } ],"clientId":"c"}]"#)
        let note = try #require(try BayeuxMessage.parseAnswer(body).first?.notifications.first)
        #expect(text(note.data) == #"{"id":"10","type":"door","v":1.50}"#)
        let sameAsObject = try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/events/12345","data":{"id":"10","type":"door","v":1.50}}]"#))
        #expect(sameAsObject[0].notifications == [note].map { var n = $0; n.messageID = nil; return n })
    }

    @Test func cumulocityInnerDataAsAOneElementArrayHasTheSameKey() throws {
        let wrapped = try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/operations/1","data":{"realtimeAction":"CREATE","data":[{"id":"9","status":"PENDING"}]}}]"#))
        let bare = try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/operations/1","data":{"realtimeAction":"CREATE","data":{"id":"9","status":"PENDING"}}}]"#))
        #expect(wrapped[0].notifications[0].key == bare[0].notifications[0].key)
    }

    @Test func aMultiElementDataArrayIsOneNotificationPerElement() throws {
        let messages = try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/x","data":[{"id":"1"},{"id":"2","s":"a,]}"}]}]"#))
        #expect(messages[0].notifications.map { text($0.data) } == [#"{"id":"1"}"#, #"{"id":"2","s":"a,]}"}"#])
    }

    @Test func rawDataKeepsEveryDigitAndEscape() throws {
        let body = bytes(#"[{"channel":"/x","data":{"big":12345678901234567890123,"f":0.1000000000000000055511151231257827,"s":"\u00e9\n\"q\"","u":"é"}}]"#)
        let note = try #require(try BayeuxMessage.parseAnswer(body).first?.notifications.first)
        #expect(text(note.data) == #"{"big":12345678901234567890123,"f":0.1000000000000000055511151231257827,"s":"\u00e9\n\"q\"","u":"é"}"#)
    }

    @Test func duplicateKeysInsideDataAreKeptVerbatim() throws {
        let note = try #require(try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/x","data":{"b":1,"a":2,"b":1}}]"#)).first?.notifications.first)
        #expect(text(note.data) == #"{"b":1,"a":2,"b":1}"#)
    }

    @Test func aDuplicateKeyInTheMessageFallsBackToSortedReserialisation() throws {
        // EdgeStore's strict reader refuses a duplicate member of the message; Foundation keeps one.
        let note = try #require(try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/x","data":{"z":1, "a":[1,2]},"channel":"/x"}]"#)).first?.notifications.first)
        #expect(text(note.data) == #"{"a":[1,2],"z":1}"#)
    }

    @Test func metaMessagesAndMessagesWithoutDataAreNotEvents() throws {
        let messages = try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/meta/connect","data":{"id":"1"},"successful":true},{"channel":"/x","successful":true},{"channel":"/y","data":null},7,{"no":"channel"}]"#))
        #expect(messages.map(\.channel) == ["/meta/connect", "/x", "/y"])
        #expect(messages.allSatisfy { $0.notifications.isEmpty })
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        let label: String
        let body: String
        let kind: BayeuxError.Kind
        var testDescription: String { label }
    }

    static let bad: [Bad] = [
        Bad(label: "empty", body: "", kind: .emptyAnswer),
        Bad(label: "heartbeats then nothing", body: "      \n  ", kind: .emptyAnswer),
        Bad(label: "HTML error page with 200", body: "<html><body><h1>502 Bad Gateway</h1></body></html>", kind: .notJSON),
        Bad(label: "plain text", body: "Service Unavailable", kind: .notJSON),
        Bad(label: "truncated", body: #"   [{"channel":"/meta/connect","successful":tr"#, kind: .malformedJSON),
        Bad(label: "reset mid-answer", body: #"[{"channel":"/operations/1","data":{"id":"1"}},{"chan"#, kind: .malformedJSON),
        Bad(label: "garbage", body: "[\u{01}\u{02}garbage", kind: .malformedJSON),
        Bad(label: "array of numbers", body: "[1,2,3]", kind: .unexpectedShape),
        Bad(label: "not bayeux", body: #"{"status":"ok"}"#, kind: .unexpectedShape),
    ]

    @Test(arguments: bad)
    func badAnswersThrowATypedError(_ row: Bad) {
        #expect {
            _ = try BayeuxMessage.parseAnswer(bytes(row.body))
        } throws: { error in
            (error as? BayeuxError)?.kind == row.kind
        }
    }

    @Test func randomBytesNeverTrap() {
        var random = SplitMix64(seed: 7)
        let alphabet = bytes(#"[]{}",:0123456789.-+eEtrufalsn\ /abc"#) + [0x00, 0xFF, 0xC3, 0xA9, 0x0A]
        for length in 0..<400 {
            let body = (0..<length % 60).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            _ = try? BayeuxMessage.parseAnswer(body)
        }
    }

    @Test func anEmptyArrayHasNoMessages() throws {
        #expect(try BayeuxMessage.parseAnswer(bytes("[]")).isEmpty)
    }

    // MARK: error and advice

    @Test func serverErrorsParseLeniently() {
        #expect(BayeuxServerError("402::Unknown client") == BayeuxServerError(code: 402, message: "Unknown client"))
        let faye = BayeuxServerError("401:f3a9b2:Unknown client")
        #expect(faye?.code == 401 && faye?.arguments == ["f3a9b2"] && faye?.isUnknownClient == true)
        #expect(faye?.description == "401::Unknown client")  // the clientId argument is not shown
        #expect(BayeuxServerError("403::Handshake denied")?.isCredentialsRefusal == true)
        #expect(BayeuxServerError("403::Handshake denied")?.isUnknownClient == false)
        #expect(BayeuxServerError("403::unknown CLIENT")?.isUnknownClient == true)
        #expect(BayeuxServerError("402:clientId:Missing required parameter")?.arguments == ["clientId"])
        #expect(BayeuxServerError("402:clientId:Missing required parameter")?.isUnknownClient == false)
        #expect(BayeuxServerError("500:a,b:bad: really bad") == BayeuxServerError(code: 500, arguments: ["a", "b"], message: "bad: really bad"))
        #expect(BayeuxServerError("402:Unknown client") == BayeuxServerError(code: 402, message: "Unknown client"))
        #expect(BayeuxServerError("session unknown, unknown client") == BayeuxServerError(code: nil, message: "session unknown, unknown client"))
        #expect(BayeuxServerError("session unknown, unknown client")?.isUnknownClient == true)
        #expect(BayeuxServerError("abc:def:ghi")?.code == nil)
        #expect(BayeuxServerError("") == nil && BayeuxServerError("   ") == nil)
        #expect(BayeuxServerError("500::x")?.isUnknownClient == false)
    }

    @Test func adviceParsesLeniently() throws {
        let messages = try BayeuxMessage.parseAnswer(bytes(#"""
        [{"channel":"/meta/connect","advice":{"reconnect":"HANDSHAKE","interval":-1,"timeout":"60000"}},
         {"channel":"/meta/connect","advice":{"reconnect":"later","interval":2500.7,"timeout":true}},
         {"channel":"/meta/connect","advice":"nonsense"}]
        """#))
        #expect(messages[0].advice == BayeuxAdvice(reconnect: .handshake, intervalMilliseconds: -1, timeoutMilliseconds: 60_000))
        #expect(messages[0].advice?.interval == .milliseconds(-1))
        #expect(messages[1].advice == BayeuxAdvice(reconnect: nil, intervalMilliseconds: 2500, timeoutMilliseconds: nil))
        #expect(messages[2].advice == nil)
        #expect(BayeuxAdvice(timeoutMilliseconds: -5).timeout == nil)
    }

    @Test func idsAndSuccessfulComeInEitherType() throws {
        let messages = try BayeuxMessage.parseAnswer(bytes(#"[{"channel":"/meta/connect","id":12,"successful":"true"},{"channel":"/meta/connect","id":"12","successful":1}]"#))
        #expect(messages[0].id == "12" && messages[0].successful == true)
        #expect(messages[1].id == "12" && messages[1].successful == nil)  // 1 is not a boolean
    }

    // MARK: Encoding

    @Test func handshakeAsksForLongPollingAndTheHoldTimeWithoutClientId() throws {
        let request = BayeuxRequest.handshake(id: BayeuxRequestID(1), messageID: "1", timeout: .seconds(240),
                                              ext: bytes(#"{ "com.cumulocity.authn": { "token": "dXNlcjpwdw==" } }"#))
        #expect(text(request.body) == #"[{"advice":{"interval":0,"timeout":240000},"channel":"/meta/handshake","ext":{"com.cumulocity.authn":{"token":"dXNlcjpwdw=="}},"id":"1","supportedConnectionTypes":["long-polling"],"version":"1.0"}]"#)
        #expect(request.kind == .handshake && !request.kind.usesLongPollConnection)
        #expect(!request.description.contains("dXNlcjpwdw"))
        // An ext that is not a JSON object is left out rather than sent broken.
        let noExt = BayeuxRequest.handshake(id: BayeuxRequestID(1), messageID: "1", timeout: .seconds(1), ext: bytes("[oops"))
        #expect(!text(noExt.body).contains("ext"))
    }

    @Test func connectSubscribeUnsubscribeAndDisconnectCarryTheClientId() {
        let connect = BayeuxRequest.connect(id: BayeuxRequestID(2), messageID: "2", clientID: "c\"1", timeout: .zero)
        #expect(text(connect.body) == #"[{"advice":{"timeout":0},"channel":"/meta/connect","clientId":"c\"1","connectionType":"long-polling","id":"2"}]"#)
        #expect(connect.kind.usesLongPollConnection)
        let subscribe = BayeuxRequest.subscribe(id: BayeuxRequestID(3), messageIDs: ["3", "4"], clientID: "c", channels: ["/a", "/b"])
        #expect(text(subscribe.body) == #"[{"channel":"/meta/subscribe","clientId":"c","id":"3","subscription":"/a"},{"channel":"/meta/subscribe","clientId":"c","id":"4","subscription":"/b"}]"#)
        let unsubscribe = BayeuxRequest.unsubscribe(id: BayeuxRequestID(5), messageIDs: ["5"], clientID: "c", channels: ["/a"])
        #expect(text(unsubscribe.body) == #"[{"channel":"/meta/unsubscribe","clientId":"c","id":"5","subscription":"/a"}]"#)
        let disconnect = BayeuxRequest.disconnect(id: BayeuxRequestID(6), messageID: "6", clientID: "c")
        #expect(text(disconnect.body) == #"[{"channel":"/meta/disconnect","clientId":"c","id":"6"}]"#)
        #expect(!connect.description.contains("c\"1"))
    }

    @Test func derivedTimeouts() {
        let five = DownlinkConfiguration()
        #expect(five.networkIdleLimit == .seconds(300) && five.requestedTimeout == .seconds(240))
        #expect(five.tcpKeepaliveIdle == .seconds(60) && five.tcpKeepaliveInterval == .seconds(20))
        #expect(five.pollDeadlineMargin == .seconds(10))
        #expect(DownlinkConfiguration(networkIdleLimit: .seconds(600)).requestedTimeout == .seconds(540))
        let short = DownlinkConfiguration(networkIdleLimit: .seconds(60))
        #expect(short.requestedTimeout == .seconds(30) && short.tcpKeepaliveIdle == .seconds(15) && short.tcpKeepaliveInterval == .seconds(5))
        #expect(String(describing: DownlinkConfiguration(password: .init("hunter2")).password!) == "<redacted>")
    }
}
