/// The `error` field of a Bayeux answer, `code:args:message` (e.g. `402::Unknown client`,
/// `401:f3a9:Unknown client`, `403::Handshake denied`, `402:clientId:Missing required parameter`),
/// parsed leniently: free text without a code is kept as the message.
public struct BayeuxServerError: Sendable, Equatable, CustomStringConvertible {
    /// The three-digit code, nil when the text does not start with one.
    public var code: Int?
    /// The comma-separated arguments (Faye puts the clientId here: do not log them blindly).
    public var arguments: [String]
    /// The human-readable part.
    public var message: String

    public init(code: Int?, arguments: [String] = [], message: String) {
        self.code = code
        self.arguments = arguments
        self.message = message
    }

    /// Parses the text of an `error` field; nil for an empty or blank text (Cumulocity sends
    /// `"error": ""` on success).
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return nil }
        let parts = trimmed.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let head = parts[0].trimmingCharacters(in: .whitespaces)
        guard parts.count >= 2, head.count == 3, head.allSatisfy(\.isASCII), let code = Int(head) else {
            self.init(code: nil, message: trimmed)
            return
        }
        if parts.count == 2 {
            // `402:Unknown client`: a code and a message without arguments.
            self.init(code: code, message: parts[1].trimmingCharacters(in: .whitespaces))
        } else {
            let arguments = parts[1].isEmpty ? [] : parts[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            self.init(code: code, arguments: arguments, message: parts[2].trimmingCharacters(in: .whitespaces))
        }
    }

    /// The server no longer knows the session: re-handshake, even without advice. CometD says
    /// `402::Unknown client`, Faye `401:<clientId>:Unknown client`, others `403`. A code-less
    /// "unknown client" text counts too.
    public var isUnknownClient: Bool {
        guard code == nil || code == 401 || code == 402 || code == 403 else { return false }
        return message.lowercased().contains("unknown client")
    }

    /// The server refused the credentials (`403::Handshake denied`, or any 401/403 on a
    /// handshake that is not about an unknown client).
    public var isCredentialsRefusal: Bool {
        if isUnknownClient { return false }
        if code == 401 || code == 403 { return true }
        return message.lowercased().contains("handshake denied")
    }

    /// `code::message`, without the arguments (which may hold a clientId).
    public var description: String {
        guard let code else { return message }
        return "\(code)::\(message)"
    }
}
