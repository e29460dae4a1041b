import EdgeStore

/// An exchange's result, classified, with the platform's error details.
///
/// Order of the rules (shared/reference/iotda-https.md, "Errors"):
/// 1. No answer: transient. A 2xx: delivered.
/// 2. A known IoTDA `error_code`, whatever the status (rate limiting and a bad token are both 403).
/// 3. The status: 401 authentication failed; 413 too large; 429 rate limited; 408 and 5xx
///    transient; 400 and 422 invalid input; Cumulocity 403 authentication failed (the user
///    lacks a permission: no record can fix that, and dead-lettering them all would bury the
///    whole backlog); any other 4xx with a JSON body is invalid input (bisect: the platform
///    refused the content, and each record it refuses alone goes to the dead-letter table
///    with its answer).
/// 4. Everything else (1xx, 3xx) is transient.
///
/// Verdicts that dead-letter data need the platform's own answer. A non-JSON body on a non-2xx
/// (an HTML page from a proxy, a captive portal or a WAF) is not the platform speaking, so it is
/// transient: a proxy's word never dead-letters a record. 400 and 422 may come with no body;
/// any other 4xx needs a JSON body (an empty 404 or 403 is more likely a proxy or a wrong base
/// URL than a bad record). Verdicts that lose nothing (401, 413, 429) hold whatever the body.
public struct Classification: Sendable, Equatable {
    /// The verdict.
    public var responseClass: ResponseClass
    /// The HTTP status; nil when there was no answer.
    public var status: Int?
    /// The platform's error code (IoTDA `error_code`, Cumulocity `error`).
    public var errorCode: String?
    /// The platform's error message (IoTDA `error_msg`, Cumulocity `message`), control
    /// characters removed, at most 300 characters.
    public var errorMessage: String?
    /// `Retry-After` from the answer.
    public var retryAfter: Duration?
    /// The transport failure, when there was no answer.
    public var transportFailure: TransportFailure?

    public init(responseClass: ResponseClass, status: Int? = nil, errorCode: String? = nil, errorMessage: String? = nil,
                retryAfter: Duration? = nil, transportFailure: TransportFailure? = nil) {
        self.responseClass = responseClass
        self.status = status
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.retryAfter = retryAfter
        self.transportFailure = transportFailure
    }

    /// One line for `status` and logs, e.g. `rate limited (HTTP 403, IOTDA.021101: Device flow control)`.
    /// Holds no secret: neither the request nor its headers ever go into it.
    public var summary: String {
        if let transportFailure { return "\(responseClass.label): \(transportFailure.reason)" }
        var parts: [String] = []
        if let status { parts.append("HTTP \(status)") }
        if let errorCode {
            parts.append(errorMessage.map { "\(errorCode): \($0)" } ?? errorCode)
        } else if let errorMessage {
            parts.append(errorMessage)
        }
        return parts.isEmpty ? responseClass.label : "\(responseClass.label) (\(parts.joined(separator: ", ")))"
    }

    /// The reason kept with dead-lettered records.
    public var rejectionReason: RejectionReason {
        RejectionReason(reason: responseClass.label, httpStatus: status, errorCode: errorCode, errorMessage: errorMessage)
    }

    /// Classifies the result of a request to `platform`. `children` are the request's child
    /// devices, to find the one an IOTDA.021104 answer names.
    public static func classify(_ result: ExchangeResult, platform: Platform, children: [String] = []) -> Classification {
        let response: PlatformResponse
        switch result {
        case .transportFailure(let failure):
            return Classification(responseClass: .transient, transportFailure: failure)
        case .response(let answer):
            response = answer
        }
        let status = response.status
        var verdict = Classification(responseClass: .transient, status: status, retryAfter: response.retryAfter)
        if (200...299).contains(status) {
            // The platforms answer a delivery with an empty body (IoTDA) or JSON (Cumulocity).
            // A 2xx carrying anything else (an HTML page) comes from something in between, a
            // captive portal or a misrouted proxy: the records did not arrive, so keep them.
            let first = response.body.first { ![0x20, 0x09, 0x0a, 0x0d].contains($0) }
            if let first, first != UInt8(ascii: "{"), first != UInt8(ascii: "[") {
                verdict.errorMessage = "HTTP \(status) with a body that is not the platform's (not JSON): a captive portal or proxy answered"
                return verdict  // transient
            }
            verdict.responseClass = .delivered
            return verdict
        }
        let body = ErrorBody(response.body)
        verdict.errorCode = body.code
        verdict.errorMessage = body.message

        if let code = body.code, let byCode = Self.iotdaClass(code: code, body: body, children: children) {
            verdict.responseClass = byCode
            return verdict
        }
        switch status {
        case 401:
            verdict.responseClass = .authenticationFailed
        case 403 where platform == .cumulocity:
            verdict.responseClass = .authenticationFailed
        case 413:
            verdict.responseClass = .tooLarge
        case 429:
            verdict.responseClass = .rateLimited
        case 408, 500...599:
            verdict.responseClass = .transient
        case 400, 422:
            verdict.responseClass = body.isGarbage ? .transient : .invalidInput
        case 402...499:
            verdict.responseClass = body.isJSON ? .invalidInput : .transient
        default:
            verdict.responseClass = .transient
        }
        return verdict
    }

    /// The IoTDA error table, by code. Nil for a code not in it (then the status decides).
    static func iotdaClass(code: String, body: ErrorBody, children: [String]) -> ResponseClass? {
        switch code {
        case "IOTDA.000002": return .authenticationFailed
        case "IOTDA.000004": return .tokenRejected
        case "IOTDA.000006": return .invalidInput
        case "IOTDA.021101", "IOTDA.021102": return .rateLimited
        case "IOTDA.021103": return .tooManyChildren
        case "IOTDA.021104": return .unknownChild(Self.namedChild(body: body, children: children))
        case "IOTDA.021105": return .tooLarge
        default: return nil
        }
    }

    /// The child an IOTDA.021104 answer names: a `device_id` field, else one of the request's
    /// children named in `error_msg` as a whole word. Only a child of the request counts.
    static func namedChild(body: ErrorBody, children: [String]) -> String? {
        let known = Set(children)
        if let id = body.deviceID, known.contains(id) { return id }
        guard let message = body.message else { return nil }
        // Split the message into id-shaped words ([A-Za-z0-9_-]): "child-1" must not match
        // inside "child-10".
        var words: [String] = []
        var current: [UInt8] = []
        for byte in message.utf8 {
            if Self.isIDByte(byte) { current.append(byte); continue }
            if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)); current = [] }
        }
        if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)) }
        let named = Set(words.filter { known.contains($0) })
        return named.count == 1 ? named.first : nil
    }

    static func isIDByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}

extension Classification {
    /// The parts of an error body the uplink reads.
    struct ErrorBody {
        /// `error_code` (IoTDA) or `error` (Cumulocity).
        var code: String?
        /// `error_msg` (IoTDA) or `message` (Cumulocity), cleaned.
        var message: String?
        /// A `device_id` string, at the top level or one object deep.
        var deviceID: String?
        /// A non-empty body that is not a JSON object: not the platform speaking.
        var isGarbage = false
        /// The body is a JSON object.
        var isJSON = false

        init(_ bytes: [UInt8]) {
            guard bytes.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d) }) else { return }
            guard let members = try? JSON.members(of: bytes) else {
                isGarbage = true
                return
            }
            isJSON = true
            for member in members {
                switch member.key {
                case "error_code", "error": if code == nil { code = member.string.map { Self.clean($0, limit: 64) } }
                case "error_msg", "message": if message == nil { message = member.string.map { Self.clean($0, limit: 300) } }
                case "device_id": deviceID = member.string
                default:
                    if deviceID == nil, member.type == .object, let inner = try? JSON.members(of: member.raw) {
                        deviceID = inner.first(where: { $0.key == "device_id" })?.string
                    }
                }
            }
        }

        static func clean(_ text: String, limit: Int) -> String {
            let scalars = text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f }
            var out = String(String.UnicodeScalarView(scalars.prefix(limit)))
            if scalars.count > limit { out += "…" }
            return out
        }
    }
}
