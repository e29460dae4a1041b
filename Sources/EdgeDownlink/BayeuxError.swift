/// Why an answer body could not be used: empty, not JSON, cut off, or JSON of the wrong shape.
///
/// A struct over a private code enum, so cases can be added without breaking callers. It
/// never holds the body: answers carry the clientId and the platform's data.
public struct BayeuxError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: Sendable, Equatable {
        case emptyAnswer
        case notJSON(looksLikeHTML: Bool)
        case malformedJSON
        case unexpectedShape(String)
        case missingReply(channel: String)
    }

    /// The category of a `BayeuxError`; compare with `==` against the static members.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        fileprivate let label: String
        fileprivate init(_ label: String) { self.label = label }
        public var description: String { label }

        /// An empty body, or only whitespace (heartbeats, then the connection ended).
        public static let emptyAnswer = Kind("empty_answer")
        /// The body does not start like JSON (an HTML error page from a proxy, plain text).
        public static let notJSON = Kind("not_json")
        /// The body starts like JSON but does not parse (truncated, reset mid-answer).
        public static let malformedJSON = Kind("malformed_json")
        /// Valid JSON, but not an array of message objects or a single message object.
        public static let unexpectedShape = Kind("unexpected_shape")
        /// The answer has no reply to the request it answers.
        public static let missingReply = Kind("missing_reply")
    }

    private let code: Code
    /// The body's size, for the description.
    public let bodyBytes: Int

    private init(_ code: Code, bodyBytes: Int) {
        self.code = code
        self.bodyBytes = bodyBytes
    }

    static func emptyAnswer(bodyBytes: Int) -> BayeuxError { BayeuxError(.emptyAnswer, bodyBytes: bodyBytes) }
    static func notJSON(looksLikeHTML: Bool, bodyBytes: Int) -> BayeuxError { BayeuxError(.notJSON(looksLikeHTML: looksLikeHTML), bodyBytes: bodyBytes) }
    static func malformedJSON(bodyBytes: Int) -> BayeuxError { BayeuxError(.malformedJSON, bodyBytes: bodyBytes) }
    static func unexpectedShape(_ what: String, bodyBytes: Int) -> BayeuxError { BayeuxError(.unexpectedShape(what), bodyBytes: bodyBytes) }
    static func missingReply(channel: String, bodyBytes: Int) -> BayeuxError { BayeuxError(.missingReply(channel: channel), bodyBytes: bodyBytes) }

    /// The category, for matching.
    public var kind: Kind {
        switch code {
        case .emptyAnswer: return .emptyAnswer
        case .notJSON: return .notJSON
        case .malformedJSON: return .malformedJSON
        case .unexpectedShape: return .unexpectedShape
        case .missingReply: return .missingReply
        }
    }

    /// A short, payload-free label for logs and metrics.
    public var label: String { kind.label }

    public var description: String {
        switch code {
        case .emptyAnswer:
            return "empty answer (\(bodyBytes) bytes, no JSON): the server or a proxy ended the poll without a reply"
        case .notJSON(let html):
            return html
                ? "answer is an HTML page, not Bayeux JSON (\(bodyBytes) bytes): a proxy or load balancer answered instead of the server"
                : "answer is not JSON (\(bodyBytes) bytes)"
        case .malformedJSON:
            return "answer is not valid JSON (\(bodyBytes) bytes): truncated or cut off mid-answer"
        case .unexpectedShape(let what):
            return "answer is JSON but not Bayeux messages (\(what))"
        case .missingReply(let channel):
            return "answer has no \(channel) reply to the request"
        }
    }
}
