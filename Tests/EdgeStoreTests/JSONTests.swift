@testable import EdgeStore
import Foundation
import Testing

@Suite struct JSONTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func minifiesAndKeepsNumbersExactly() throws {
        let input = #" { "a" : [ 1 , 2.50 , -0 , 1e400 , 12345678901234567890123 ] , "b" : "x y" } "#
        let result = try JSON.minify(bytes(input))
        #expect(result.type == .object)
        #expect(String(decoding: result.raw, as: UTF8.self) == #"{"a":[1,2.50,-0,1e400,12345678901234567890123],"b":"x y"}"#)
    }

    @Test(arguments: [
        "", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "01", "1.", "-", "1e", "tru", "nul", "\"abc",
        "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\u{01}b\"", "\"\\u0000\"", "[1] 2", "{'a':1}", "NaN",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSON.SyntaxError.self) { try JSON.minify(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8AndNulBytes() {
        #expect(throws: JSON.SyntaxError.self) { try JSON.minify([0x22, 0xff, 0x22]) }
        #expect(throws: JSON.SyntaxError.self) { try JSON.minify([0x22, 0xc0, 0xaf, 0x22]) }  // overlong
        #expect(throws: JSON.SyntaxError.self) { try JSON.minify([0x22, 0xed, 0xa0, 0x80, 0x22]) }  // surrogate
        #expect(throws: JSON.SyntaxError.self) { try JSON.minify([0x22, 0x61, 0x00, 0x22]) }
        #expect(throws: Never.self) { try JSON.minify(Array("\"héllo ✓ 😀\"".utf8)) }
    }

    @Test func boundsNesting() throws {
        let ok = String(repeating: "[", count: JSON.maximumDepth) + String(repeating: "]", count: JSON.maximumDepth)
        _ = try JSON.minify(bytes(ok))
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSON.SyntaxError.self) { try JSON.minify(bytes(deep)) }
    }

    @Test func membersDecodeStringsAndRefuseDuplicates() throws {
        let members = try JSON.members(of: bytes(#"{"k":"a\"b\u00e9\ud83d\ude00","n":1,"o":{"x":[true,null]}}"#))
        #expect(members.map(\.key) == ["k", "n", "o"])
        #expect(members[0].string == "a\"bé😀")
        #expect(members[1].type == .number)
        #expect(String(decoding: members[2].raw, as: UTF8.self) == #"{"x":[true,null]}"#)
        #expect(throws: JSON.SyntaxError.self) { try JSON.members(of: bytes(#"{"a":1,"a":2}"#)) }
        #expect(throws: JSON.SyntaxError.self) { try JSON.members(of: bytes("[1]")) }
    }

    @Test func escapedStringsRoundTripThroughFoundation() throws {
        let tricky = "quote\" backslash\\ newline\n tab\t bell\u{07} é 😀"
        let literal = JSON.quoted(tricky)
        let decoded = try JSONSerialization.jsonObject(with: Data(literal.utf8), options: [.fragmentsAllowed]) as? String
        #expect(decoded == tricky)
    }

    /// Strings take a fast path while they are printable ASCII without escapes and fall back
    /// to byte-by-byte decoding at the first byte that is not: the text before that byte
    /// must be kept, and errors must name the same offsets as before.
    @Test func stringsDecodePastAnAsciiPrefix() throws {
        let members = try JSON.members(of: bytes(#"{"plain":"device-1","esc":"abc\ndef","utf":"abcé✓","tail":"abc\u0041"}"#))
        #expect(members.map(\.string) == ["device-1", "abc\ndef", "abcé✓", "abcA"])
        #expect(String(decoding: members[1].raw, as: UTF8.self) == #""abc\ndef""#, "raw keeps the escape as written")
        #expect(String(decoding: members[0].raw, as: UTF8.self) == #""device-1""#)
        #expect(String(decoding: members[2].raw, as: UTF8.self) == #""abcé✓""#)
        #expect(String(decoding: members[3].raw, as: UTF8.self) == #""abc\u0041""#)
        do {
            _ = try JSON.members(of: bytes(#"{"a":"abc"#))
            Issue.record("an unterminated string was accepted")
        } catch {
            #expect(error.offset == 9, "at the end of input, as the byte-by-byte scan reported it")
        }
        #expect(throws: JSON.SyntaxError.self) { try JSON.members(of: bytes("{\"a\":\"abc\u{01}\"}")) }
        #expect(throws: JSON.SyntaxError.self) { try JSON.members(of: [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0x61, 0xff, 0x22, 0x7d]) }
    }

    /// A member's value without whitespace is copied whole; with whitespace it is scanned
    /// again and minified. Both must give the same bytes.
    @Test func memberValuesAreMinifiedWithOrWithoutWhitespace() throws {
        let compact = try JSON.members(of: bytes(#"{"p":{"t":21.5,"a":[1,"x y",{"b":null}]}}"#))
        let spaced = try JSON.members(of: bytes(#"{ "p" : { "t" : 21.5 , "a" : [ 1 , "x y" , { "b" : null } ] } }"#))
        let expected = #"{"t":21.5,"a":[1,"x y",{"b":null}]}"#
        #expect(String(decoding: compact[0].raw, as: UTF8.self) == expected)
        #expect(String(decoding: spaced[0].raw, as: UTF8.self) == expected)
        // Whitespace before a member does not make the next compact value count as spaced.
        let mixed = try JSON.members(of: bytes(#"{"a": [1, 2], "b":[3,4]}"#))
        #expect(mixed.map { String(decoding: $0.raw, as: UTF8.self) } == ["[1,2]", "[3,4]"])
    }

    /// A line read as a slice of a larger buffer is parsed in place; offsets count from the
    /// line's first byte.
    @Test func aSliceIsParsedInPlaceWithOffsetsFromItsStart() throws {
        let buffer = bytes(#"{"a":1}"# + "\n" + #"{"b":"x"}"# + "\n" + #"{"c":}"#)
        let members = try JSON.members(of: buffer[8..<17])
        #expect(members.map(\.key) == ["b"])
        #expect(members[0].string == "x")
        do {
            _ = try JSON.members(of: buffer[18...])
            Issue.record("invalid JSON was accepted")
        } catch {
            #expect(error.offset == 5)
        }
    }
}
