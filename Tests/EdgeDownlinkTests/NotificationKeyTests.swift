import TestSupport
import EdgeDownlink
import Foundation
import Testing

@Suite struct NotificationKeyTests {
    func key(_ json: String) -> NotificationKey { key("/operations/1", json) }

    func key(_ channel: String, _ json: String) -> NotificationKey {
        NotificationKey.make(channel: channel, data: try! JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed))
    }

    func parsedKeys(_ body: String) throws -> [NotificationKey] {
        try BayeuxMessage.parseAnswer(bytes(body)).flatMap(\.notifications).map(\.key)
    }

    @Test func theBayeuxMessageIdIsNotPartOfTheKey() throws {
        let first = try parsedKeys(Reply.operation("42", bayeuxID: "79"))
        let again = try parsedKeys(Reply.operation("42", bayeuxID: "3"))  // redelivered in a new session
        #expect(first == again)
    }

    @Test func duplicatesWithinOneAnswerShareTheKey() throws {
        let keys = try parsedKeys("[" + Reply.operation("42", bayeuxID: "1") + "," + Reply.operation("42", bayeuxID: "2") + "]")
        #expect(keys.count == 2 && keys[0] == keys[1])
    }

    @Test func theKeyIsChannelIdActionAndVersion() {
        let created = key(#"{"realtimeAction":"CREATE","data":{"id":"42","status":"PENDING","creationTime":"2024-01-01T00:00:00Z"}}"#)
        #expect(created.channel == "/operations/1" && created.dataID == "42" && created.action == "CREATE")
        #expect(created.version.hasPrefix("sha256:") && created.version.count == 7 + 64)
        #expect(created.value.hasPrefix(#"["/operations/1","42","CREATE","sha256:"#))
        // An update of the same operation (PENDING → EXECUTING) is a new version.
        let executing = key(#"{"realtimeAction":"UPDATE","data":{"id":"42","status":"EXECUTING","creationTime":"2024-01-01T00:00:00Z"}}"#)
        #expect(executing != created)
        let executingAgain = key(#"{"data":{"creationTime":"2024-01-01T00:00:00Z","status":"EXECUTING","id":"42"},"realtimeAction":"UPDATE"}"#)
        #expect(executingAgain == executing)  // key order does not matter
        // An alarm whose count goes 2 → 3 (same status, no lastUpdated) is a new version too.
        #expect(key("/alarms/1", #"{"realtimeAction":"UPDATE","data":{"id":"327","count":2,"status":"ACTIVE"}}"#)
            != key("/alarms/1", #"{"realtimeAction":"UPDATE","data":{"id":"327","count":3,"status":"ACTIVE"}}"#))
        // The same object on another channel is another notification.
        #expect(key("/operations/2", #"{"realtimeAction":"CREATE","data":{"id":"42","status":"PENDING","creationTime":"2024-01-01T00:00:00Z"}}"#) != created)
    }

    @Test func lastUpdatedIsTheVersionWhenPresent() {
        let a = key("/managedobjects/1", #"{"realtimeAction":"UPDATE","data":{"id":"1","lastUpdated":"2024-05-01T10:00:00.000Z","self":"https://node-a/x"}}"#)
        let b = key("/managedobjects/1", #"{"realtimeAction":"UPDATE","data":{"id":"1","lastUpdated":"2024-05-01T10:00:00.000Z","self":"https://node-b/x"}}"#)
        #expect(a == b && a.version == "lastUpdated:2024-05-01T10:00:00.000Z")
        let c = key("/managedobjects/1", #"{"realtimeAction":"UPDATE","data":{"id":"1","lastUpdated":"2024-05-01T10:00:01.000Z"}}"#)
        #expect(c != a)
    }

    @Test func deleteCarriesOnlyTheId() {
        let deleted = key(#"{"realtimeAction":"DELETE","data":"42"}"#)
        #expect(deleted.dataID == "42" && deleted.action == "DELETE" && deleted.version == "")
        #expect(key(#"{"realtimeAction":"DELETE","data":42}"#) == deleted)
        #expect(deleted != key(#"{"realtimeAction":"CREATE","data":{"id":"42"}}"#))
    }

    @Test func withoutAnIdTheKeyIsAContentHash() {
        let a = key("/x", #"{"temperature":21.5,"unit":"C"}"#)
        #expect(a.dataID == nil && a.version.hasPrefix("sha256:"))
        #expect(key("/x", #"{"unit":"C","temperature":21.5}"#) == a)
        #expect(key("/x", #"{"unit":"C","temperature":21.6}"#) != a)
        // A bare object with its own id (a plain Bayeux publisher).
        #expect(key("/x", #"{"id":7,"v":1}"#).dataID == "7")
    }

    @Test func valuesCannotForgeASeparator() {
        // A naive "channel|id|action|version" join would make these two equal.
        let a = key("/a", #"{"realtimeAction":"DELETE","data":"b|c"}"#)
        let b = key("/a|b", #"{"realtimeAction":"DELETE","data":"c"}"#)
        #expect(a.version == "" && b.version == "")
        #expect(a != b)
        #expect(a.value == #"["/a","b|c","DELETE",""]"#)
    }
}
