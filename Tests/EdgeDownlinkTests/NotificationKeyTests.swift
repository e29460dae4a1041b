import TestSupport
import EdgeDownlink
import Foundation
import Testing

@Suite struct NotificationKeyTests {
    func key(_ json: String) -> NotificationKey { key("/operations/1", json) }

    func key(_ channel: String, _ json: String) -> NotificationKey {
        NotificationKey.make(channel: channel, json: Array(json.utf8))
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

/// The key is read from the stored bytes without Foundation (`KeyJSON`): what makes two
/// deliveries the same notification is their JSON value, not how it was spelled.
@Suite struct NotificationKeyCanonicalFormTests {
    func key(_ json: String, channel: String = "/x") -> NotificationKey {
        NotificationKey.make(channel: channel, json: Array(json.utf8))
    }

    @Test func memberOrderWhitespaceAndEscapeSpellingDoNotMatterAtAnyDepth() {
        let a = key(#"{"realtimeAction":"UPDATE","data":{"id":"9","self":"https://h/x","c8y_Command":{"text":"A b","z":1,"a":[1,{"q":true,"p":null}]}}}"#)
        let b = key(#" { "data" : { "c8y_Command" : { "a" : [ 1 , { "p" : null , "q" : true } ] , "z" : 1 , "text" : "\u0041 b" } , "self" : "https:\/\/h\/x" , "id" : "9" } , "realtimeAction" : "UPDATE" } "#)
        #expect(a.version.hasPrefix("sha256:"))
        #expect(a == b)
        // A name spelled with an escape is the same name.
        #expect(key(#"{"realtimeAction":"UPDATE","data":{"id":"9","t\u0065xt":"x"}}"#) == key(#"{"realtimeAction":"UPDATE","data":{"id":"9","text":"x"}}"#))
    }

    @Test func anyChangeOfAValueIsANewVersion() {
        let base = key(#"{"realtimeAction":"UPDATE","data":{"id":"9","list":[1,2],"n":{"deep":"v"}}}"#)
        #expect(key(#"{"realtimeAction":"UPDATE","data":{"id":"9","list":[2,1],"n":{"deep":"v"}}}"#) != base)  // arrays keep their order
        #expect(key(#"{"realtimeAction":"UPDATE","data":{"id":"9","list":[1,2],"n":{"deep":"w"}}}"#) != base)
        #expect(key(#"{"realtimeAction":"UPDATE","data":{"id":"9","list":[1,2],"n":{"deep":"v"},"m":null}}"#) != base)
        // Numbers are compared digit for digit: no round trip through a Double merges these.
        #expect(key(#"{"v":12345678901234567890}"#) != key(#"{"v":12345678901234567891}"#))
        // A string is not the number it spells.
        #expect(key(#"{"v":"1"}"#) != key(#"{"v":1}"#))
    }

    @Test func idsComeAsStringsOrNumbers() {
        #expect(key(#"{"realtimeAction":"DELETE","data":42.0}"#).dataID == "42")
        #expect(key(#"{"realtimeAction":"DELETE","data":"4\u0032"}"#).dataID == "42")
        #expect(key(#"{"realtimeAction":"DELETE","data":true}"#).dataID == nil)
        #expect(key(#"{"realtimeAction":"CREATE","data":[{"id":7,"x":1}]}"#).dataID == "7")  // a one-element array is unwrapped
        #expect(key(#"{"realtimeAction":"CREATE","data":{"id":99999999999999999999999}}"#).dataID == "99999999999999999999999")
    }

    @Test func textThatIsNotJSONIsKeyedByItsBytesWithoutTrapping() {
        for text in ["", "{", #"{"a":}"#, #"{"a":"\u12"}"#, #"{"a":"\ud800"}"#, "[1,]", #""unterminated"#, "tru", "{\"a\":1}}"] {
            let k = key(text)
            #expect(k.dataID == nil && k.version.hasPrefix("sha256:"))
        }
        #expect(key("{") != key("["))
    }

    /// Random values, written twice with members shuffled, random whitespace and escapes
    /// spelled differently: the same key. One leaf changed: another key.
    @Test(arguments: [1, 2, 3, 4, 5])
    func randomValuesRespelledKeepTheirKeyAndChangedOnesDoNot(seed: UInt64) {
        var random = SplitMix(seed: seed)
        for _ in 0..<60 {
            let value = RandomJSON.value(depth: 0, using: &random)
            let first = RandomJSON.write(value, shuffle: false, fancy: false, using: &random)
            let second = RandomJSON.write(value, shuffle: true, fancy: true, using: &random)
            #expect(key(first) == key(second), "\(first) vs \(second)")
            var changed = value
            guard RandomJSON.changeOneLeaf(&changed, using: &random) else { continue }
            let third = RandomJSON.write(changed, shuffle: true, fancy: true, using: &random)
            #expect(key(first) != key(third), "\(first) vs \(third)")
        }
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

enum RandomJSON {
    indirect enum Value {
        case object([(String, Value)])
        case array([Value])
        case string(String)
        case number(String)
        case literal(String)
    }

    static let names = ["id", "a", "b", "text", "status", "x/y", "é", "c8y_Command", "q\"uote", "tab\t"]
    static let strings = ["", "PENDING", "https://h/x", "a\"b", "back\\slash", "ünï", "line\nfeed", "😀", "/"]

    static func value(depth: Int, using random: inout SplitMix) -> Value {
        switch Int.random(in: 0..<(depth > 3 ? 3 : 5), using: &random) {
        case 0: return .string(strings.randomElement(using: &random)!)
        case 1: return .number(["0", "-1", "21.5", "1e3", "12345678901234567890", "3.0"].randomElement(using: &random)!)
        case 2: return .literal(["true", "false", "null"].randomElement(using: &random)!)
        case 3:
            var used: Set<String> = []
            var members: [(String, Value)] = []
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                let name = names.randomElement(using: &random)!
                if used.insert(name).inserted { members.append((name, value(depth: depth + 1, using: &random))) }
            }
            return .object(members)
        default:
            return .array((0..<Int.random(in: 0...3, using: &random)).map { _ in value(depth: depth + 1, using: &random) })
        }
    }

    /// Changes one scalar (or adds a member / an element where there is none); false if the
    /// value has nowhere to change.
    static func changeOneLeaf(_ value: inout Value, using random: inout SplitMix) -> Bool {
        switch value {
        case .string(let s): value = .string(s + "!"); return true
        case .number(let n): value = .number(n == "0" ? "1" : "0"); return true
        case .literal(let l): value = .literal(l == "null" ? "true" : "null"); return true
        case .array(var items):
            if items.isEmpty { items.append(.literal("null")) } else {
                let i = Int.random(in: 0..<items.count, using: &random)
                guard changeOneLeaf(&items[i], using: &random) else { return false }
            }
            value = .array(items)
            return true
        case .object(var members):
            if members.isEmpty { members.append(("new", .literal("null"))) } else {
                let i = Int.random(in: 0..<members.count, using: &random)
                guard changeOneLeaf(&members[i].1, using: &random) else { return false }
            }
            value = .object(members)
            return true
        }
    }

    static func write(_ value: Value, shuffle: Bool, fancy: Bool, using random: inout SplitMix) -> String {
        func space() -> String { fancy ? [" ", "", "\n", "\t", "  "].randomElement(using: &random)! : "" }
        switch value {
        case .string(let s): return quote(s, fancy: fancy, using: &random)
        case .number(let n): return n
        case .literal(let l): return l
        case .array(let items):
            return "[" + space() + items.map { write($0, shuffle: shuffle, fancy: fancy, using: &random) }.joined(separator: space() + "," + space()) + space() + "]"
        case .object(let members):
            let ordered = shuffle ? members.shuffled(using: &random) : members
            return "{" + space() + ordered.map { quote($0.0, fancy: fancy, using: &random) + space() + ":" + space() + write($0.1, shuffle: shuffle, fancy: fancy, using: &random) }
                .joined(separator: space() + "," + space()) + space() + "}"
        }
    }

    /// A JSON string literal: plain, or (fancy) with some characters written as \uXXXX
    /// escapes (surrogate pairs above the BMP) and "/" as "\/".
    static func quote(_ s: String, fancy: Bool, using random: inout SplitMix) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += fancy && Bool.random(using: &random) ? "\\u000A" : "\\n"
            case "\t": out += fancy && Bool.random(using: &random) ? "\\u0009" : "\\t"
            case "/" where fancy && Bool.random(using: &random): out += "\\/"
            default:
                if fancy && Bool.random(using: &random) {
                    for unit in String(scalar).utf16 { out += String(format: "\\u%04x", unit) }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
