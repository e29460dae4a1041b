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
}
