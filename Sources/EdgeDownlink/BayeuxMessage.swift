import EdgeStore
import Foundation

/// One message of a Bayeux answer: a `/meta/*` reply, or an event on a subscribed channel.
public struct BayeuxMessage: Sendable, Equatable {
    /// `channel`, e.g. `/meta/connect` or `/operations/12345`.
    public var channel: String
    /// `id`, as text (servers echo it as string or number; the Cumulocity docs show replies
    /// without it).
    public var id: String?
    /// `clientId` (a session credential: never logged).
    public var clientID: String?
    /// `successful`, nil when absent.
    public var successful: Bool?
    /// `error`, nil when absent or empty.
    public var error: BayeuxServerError?
    /// `advice`, nil when absent.
    public var advice: BayeuxAdvice?
    /// `subscription` (a string, or an array of strings).
    public var subscriptions: [String]
    /// The events this message carries (none for `/meta/*`): its `data` as one notification,
    /// or one per element when `data` is an array.
    public var notifications: [InboxNotification]

    public init(channel: String, id: String? = nil, clientID: String? = nil, successful: Bool? = nil,
                error: BayeuxServerError? = nil, advice: BayeuxAdvice? = nil, subscriptions: [String] = [],
                notifications: [InboxNotification] = []) {
        self.channel = channel
        self.id = id
        self.clientID = clientID
        self.successful = successful
        self.error = error
        self.advice = advice
        self.subscriptions = subscriptions
        self.notifications = notifications
    }

    /// A `/meta/*` channel: a protocol reply, never an event.
    public var isMeta: Bool { channel.hasPrefix("/meta/") }

    /// Parses an answer body.
    ///
    /// Tolerates a UTF-8 byte-order mark and whitespace before and after the JSON (Cumulocity
    /// streams spaces as heartbeats while it holds a poll), and a single message object instead
    /// of an array. Elements that are not objects with a string `channel` are skipped.
    ///
    /// Each event's `data` is kept as JSON text sliced from the body itself (minified by
    /// EdgeStore's strict reader, digits and escapes untouched); only if that reader refuses
    /// what Foundation accepted (a duplicate key, nesting deeper than 64) is the value
    /// re-serialised by Foundation with sorted keys.
    ///
    /// Throws `BayeuxError` for an empty body, a body that is not JSON (an HTML page), JSON
    /// that does not parse (truncated), or JSON of another shape. Never traps.
    public static func parseAnswer(_ body: [UInt8]) throws(BayeuxError) -> [BayeuxMessage] {
        var start = 0
        var end = body.count
        if body.count >= 3, body[0] == 0xEF, body[1] == 0xBB, body[2] == 0xBF { start = 3 }
        while start < end, isJSONWhitespace(body[start]) { start += 1 }
        while end > start, isJSONWhitespace(body[end - 1]) { end -= 1 }
        guard start < end else { throw .emptyAnswer(bodyBytes: body.count) }
        let first = body[start]
        guard first == UInt8(ascii: "[") || first == UInt8(ascii: "{") else {
            throw .notJSON(looksLikeHTML: first == UInt8(ascii: "<"), bodyBytes: body.count)
        }
        let text = Array(body[start..<end])
        let top: Any
        do {
            top = try JSONSerialization.jsonObject(with: Data(text))
        } catch {
            throw .malformedJSON(bodyBytes: body.count)
        }
        let elements: [Any]
        if let array = top as? [Any] {
            elements = array
        } else if top is [String: Any] {
            elements = [top]
        } else {
            throw .unexpectedShape("neither an array nor an object", bodyBytes: body.count)
        }
        let rawElements = RawJSON.elements(of: text, expected: elements.count)
        var messages: [BayeuxMessage] = []
        for (index, element) in elements.enumerated() {
            guard let object = element as? [String: Any], let channel = object["channel"] as? String else { continue }
            messages.append(message(object, channel: channel, raw: rawElements?[index]))
        }
        if messages.isEmpty && !elements.isEmpty {
            throw .unexpectedShape("no element is a message object with a channel", bodyBytes: body.count)
        }
        return messages
    }

    private static func message(_ object: [String: Any], channel: String, raw: [UInt8]?) -> BayeuxMessage {
        var message = BayeuxMessage(channel: channel)
        message.id = JSONValue.idString(object["id"])
        message.clientID = object["clientId"] as? String
        if let successful = JSONValue.bool(object["successful"]) {
            message.successful = successful
        } else if let text = object["successful"] as? String {
            message.successful = text.lowercased() == "true"
        }
        if let text = object["error"] as? String { message.error = BayeuxServerError(text) }
        if let advice = object["advice"] { message.advice = BayeuxAdvice(json: advice) }
        if let one = object["subscription"] as? String {
            message.subscriptions = [one]
        } else if let many = object["subscription"] as? [Any] {
            message.subscriptions = many.compactMap { $0 as? String }
        }
        guard !message.isMeta, let data = object["data"], !(data is NSNull) else { return message }

        // The raw text of `data`, from the element's own bytes.
        let rawData: (type: JSON.ValueType, raw: [UInt8])? = raw.flatMap { bytes in
            (try? JSON.members(of: bytes))?.first(where: { $0.key == "data" }).map { ($0.type, $0.raw) }
        }
        var values: [(value: Any, raw: [UInt8]?)]
        if let array = data as? [Any] {
            // One notification per element; the docs show a one-element array around the object.
            let rawItems = rawData.flatMap { $0.type == .array ? RawJSON.elements(of: $0.raw, expected: array.count) : nil }
            values = array.enumerated().map { ($0.element, rawItems?[$0.offset]) }
        } else {
            values = [(data, rawData?.raw)]
        }
        values.removeAll { $0.value is NSNull }
        message.notifications = values.map { value, raw in
            let stored = raw ?? NotificationKey.canonicalJSON(value)
            return InboxNotification(channel: channel,
                              data: stored,
                              key: NotificationKey.make(channel: channel, json: stored),
                              realtimeAction: (value as? [String: Any])?["realtimeAction"] as? String,
                              messageID: message.id)
        }
        return message
    }

    private static func isJSONWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}

/// Slicing of raw JSON text (valid JSON only: Foundation parsed it first).
enum RawJSON {
    /// The minified elements of a top-level array (or the object itself, as one element), or
    /// nil if EdgeStore's strict reader refuses the text or the count differs from `expected`.
    static func elements(of text: [UInt8], expected: Int) -> [[UInt8]]? {
        guard let (type, minified) = try? JSON.minify(text) else { return nil }
        let result: [[UInt8]]
        switch type {
        case .object: result = [minified]
        case .array: result = splitArray(minified)
        default: return nil
        }
        return result.count == expected ? result : nil
    }

    /// Splits a minified array into its minified elements at the top-level commas.
    static func splitArray(_ minified: [UInt8]) -> [[UInt8]] {
        guard minified.count >= 2, minified.first == UInt8(ascii: "["), minified.last == UInt8(ascii: "]") else { return [] }
        var elements: [[UInt8]] = []
        var depth = 0
        var inString = false
        var escaped = false
        var start = 1
        for index in 1..<(minified.count - 1) {
            let byte = minified[index]
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            case UInt8(ascii: ",") where depth == 0:
                elements.append(Array(minified[start..<index]))
                start = index + 1
            default: break
            }
        }
        if start < minified.count - 1 { elements.append(Array(minified[start..<(minified.count - 1)])) }
        return elements
    }
}
