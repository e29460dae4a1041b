import EdgeStore

/// Identifies one HTTP request of a session; the engine passes it back with the answer.
public struct BayeuxRequestID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Increasing per session object, from 1.
    public let rawValue: UInt64
    /// Sessions make their own; tests and engines only compare them.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: BayeuxRequestID, rhs: BayeuxRequestID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// One HTTP POST of the session: a JSON array of Bayeux messages.
///
/// POST `body` to the endpoint with `Content-Type: application/json` and **always**
/// `Accept: application/json` (Cumulocity answers an empty body without it), HTTP Basic on
/// every request, and the session's cookies.
public struct BayeuxRequest: Sendable, Equatable, CustomStringConvertible {
    /// What the request is for.
    public enum Kind: String, Sendable, Equatable {
        case handshake, connect, subscribe, unsubscribe, disconnect

        /// The `/meta/*` channel of its messages.
        public var channel: String { "/meta/" + rawValue }

        /// A connect is the long poll: it goes on a connection of its own, so that subscribe
        /// and other traffic never queue behind a poll held for minutes.
        public var usesLongPollConnection: Bool { self == .connect }
    }

    /// Pass it back with the answer or failure.
    public let id: BayeuxRequestID
    /// Handshake, connect, subscribe, unsubscribe or disconnect.
    public let kind: Kind
    /// The JSON body. Holds the clientId (and possibly a credential in the handshake `ext`):
    /// never log it.
    public let body: [UInt8]
    /// The Bayeux `id` of each message, in order.
    public let messageIDs: [String]
    /// The channels of a subscribe or unsubscribe, in the order of `messageIDs`.
    public let subscriptions: [String]

    /// `handshake #3`, `subscribe #4 (/operations/1)`: no clientId, no body.
    public var description: String {
        subscriptions.isEmpty ? "\(kind.rawValue) \(id)" : "\(kind.rawValue) \(id) (\(subscriptions.joined(separator: ", ")))"
    }

    // MARK: Encoding

    /// `/meta/handshake`: version 1.0, long polling only, and the hold time we ask for
    /// (`advice {timeout, interval: 0}`). No clientId.
    public static func handshake(id: BayeuxRequestID, messageID: String, timeout: Duration, ext: [UInt8]? = nil) -> BayeuxRequest {
        var message = Writer()
        message.field("advice", object: [("interval", .int(0)), ("timeout", .int(milliseconds(timeout)))])
        message.field("channel", .string(Kind.handshake.channel))
        if let ext, let (type, raw) = try? JSON.minify(ext), type == .object { message.field("ext", raw: raw) }
        message.field("id", .string(messageID))
        message.field("supportedConnectionTypes", raw: Array(#"["long-polling"]"#.utf8))
        message.field("version", .string("1.0"))
        return BayeuxRequest(id: id, kind: .handshake, body: array([message]), messageIDs: [messageID], subscriptions: [])
    }

    /// `/meta/connect` with `connectionType: long-polling` and `advice {timeout}`: 0 on the
    /// first connect after a handshake (so the server answers at once; Faye otherwise holds it
    /// for its full timeout), the requested hold time afterwards.
    public static func connect(id: BayeuxRequestID, messageID: String, clientID: String, timeout: Duration) -> BayeuxRequest {
        var message = Writer()
        message.field("advice", object: [("timeout", .int(milliseconds(timeout)))])
        message.field("channel", .string(Kind.connect.channel))
        message.field("clientId", .string(clientID))
        message.field("connectionType", .string("long-polling"))
        message.field("id", .string(messageID))
        return BayeuxRequest(id: id, kind: .connect, body: array([message]), messageIDs: [messageID], subscriptions: [])
    }

    /// `/meta/subscribe`, one message per channel, batched in one POST.
    public static func subscribe(id: BayeuxRequestID, messageIDs: [String], clientID: String, channels: [String]) -> BayeuxRequest {
        subscription(.subscribe, id: id, messageIDs: messageIDs, clientID: clientID, channels: channels)
    }

    /// `/meta/unsubscribe`, one message per channel, batched in one POST.
    public static func unsubscribe(id: BayeuxRequestID, messageIDs: [String], clientID: String, channels: [String]) -> BayeuxRequest {
        subscription(.unsubscribe, id: id, messageIDs: messageIDs, clientID: clientID, channels: channels)
    }

    /// `/meta/disconnect`.
    public static func disconnect(id: BayeuxRequestID, messageID: String, clientID: String) -> BayeuxRequest {
        var message = Writer()
        message.field("channel", .string(Kind.disconnect.channel))
        message.field("clientId", .string(clientID))
        message.field("id", .string(messageID))
        return BayeuxRequest(id: id, kind: .disconnect, body: array([message]), messageIDs: [messageID], subscriptions: [])
    }

    private static func subscription(_ kind: Kind, id: BayeuxRequestID, messageIDs: [String], clientID: String, channels: [String]) -> BayeuxRequest {
        precondition(messageIDs.count == channels.count, "one message id per channel")
        let messages = zip(messageIDs, channels).map { messageID, channel in
            var message = Writer()
            message.field("channel", .string(kind.channel))
            message.field("clientId", .string(clientID))
            message.field("id", .string(messageID))
            message.field("subscription", .string(channel))
            return message
        }
        return BayeuxRequest(id: id, kind: kind, body: array(messages), messageIDs: messageIDs, subscriptions: channels)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        return product &+ attoseconds / 1_000_000_000_000_000
    }

    private static func array(_ messages: [Writer]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (index, message) in messages.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: message.finished)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// A small JSON object writer: the requests hold only strings, integers and fixed
    /// fragments, so a hand-written encoder keeps bodies deterministic and cannot throw.
    private struct Writer {
        enum Value { case string(String), int(Int64) }
        private var out: [UInt8] = [UInt8(ascii: "{")]

        mutating func field(_ key: String, _ value: Value) {
            separator()
            JSON.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            append(value)
        }

        mutating func field(_ key: String, raw: [UInt8]) {
            separator()
            JSON.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: raw)
        }

        mutating func field(_ key: String, object: [(String, Value)]) {
            var inner = Writer()
            for (name, value) in object { inner.field(name, value) }
            field(key, raw: inner.finished)
        }

        var finished: [UInt8] { out + [UInt8(ascii: "}")] }

        private mutating func separator() {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
        }

        private mutating func append(_ value: Value) {
            switch value {
            case .string(let text): JSON.appendString(text, to: &out)
            case .int(let number): out.append(contentsOf: Array(String(number).utf8))
            }
        }
    }
}
