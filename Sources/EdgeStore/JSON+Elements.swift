extension JSON {
    /// One element of a top-level array.
    public struct Element: Sendable {
        /// The value's type.
        public let type: ValueType
        /// The value, minified.
        public let raw: [UInt8]
    }

    /// Parses `bytes` as one JSON array and returns its elements, minified, in order (the
    /// ingest endpoints read `services`, `devices` and `measurements` this way). Throws for
    /// anything else.
    public static func elements(of bytes: [UInt8]) throws(SyntaxError) -> [Element] {
        try scanning(bytes[...]) { scanner throws(SyntaxError) in
            scanner.skipWhitespace()
            guard !scanner.atEnd, scanner.bytes[scanner.index] == UInt8(ascii: "[") else {
                throw scanner.error(scanner.atEnd ? "empty input, expected a JSON array" : "expected a JSON array")
            }
            scanner.index += 1
            var elements: [Element] = []
            scanner.skipWhitespace()
            if !scanner.atEnd, scanner.bytes[scanner.index] == UInt8(ascii: "]") {
                scanner.index += 1
            } else {
                while true {
                    scanner.skipWhitespace()
                    var raw: [UInt8] = []
                    let type = try scanner.value(depth: 1, into: &raw)
                    elements.append(Element(type: type, raw: raw))
                    scanner.skipWhitespace()
                    guard !scanner.atEnd else { throw scanner.error("unterminated array") }
                    if scanner.bytes[scanner.index] == UInt8(ascii: ",") { scanner.index += 1; continue }
                    if scanner.bytes[scanner.index] == UInt8(ascii: "]") { scanner.index += 1; break }
                    throw scanner.error("expected ',' or ']' in an array")
                }
            }
            scanner.skipWhitespace()
            guard scanner.atEnd else { throw scanner.error("unexpected data after the JSON array") }
            return elements
        }
    }
}
