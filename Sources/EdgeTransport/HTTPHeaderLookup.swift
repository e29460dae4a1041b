/// Case-insensitive lookups in ordered header lists, shared by request and response.
enum HTTPHeaderLookup {
    /// The first value of `name`, compared ASCII case-insensitively.
    static func first(_ name: String, in headers: [(name: String, value: String)]) -> String? {
        headers.first { equalsIgnoringCase($0.name, name) }?.value
    }

    /// Every value of `name`, in order.
    static func all(_ name: String, in headers: [(name: String, value: String)]) -> [String] {
        headers.filter { equalsIgnoringCase($0.name, name) }.map(\.value)
    }

    /// ASCII case-insensitive comparison (header names are ASCII tokens; no locale rules).
    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && zip(a.utf8, b.utf8).allSatisfy { lower($0) == lower($1) }
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        (65...90).contains(byte) ? byte + 32 : byte
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
