import Crypto
import EdgeStore

/// IoTDA device authentication, pure: the password, the request body, the answer.
/// The engine POSTs `request(...)` to `Platform.iotdaAuthenticationPath` and hands the answer
/// to `parseAnswer`; the state machine keeps the token and decides when to refresh it.
public enum IoTDAAuth {
    /// `sign_type`: whether the platform checks the timestamp against its own clock.
    public enum SignType: Int, Sendable, Equatable {
        /// 0: the timestamp is not checked (works with a wrong device clock).
        case unchecked = 0
        /// 1: the timestamp must match platform time (the device clock must be right).
        case checked = 1
    }

    /// The body of `POST /v5/device-auth`. It holds the password (an HMAC of the secret that,
    /// with sign_type 0, works for ever), so it never prints either.
    public struct Request: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        /// `/v5/device-auth`
        public let path = Platform.iotdaAuthenticationPath
        /// The JSON body to POST with `Content-Type: application/json`.
        public let body: [UInt8]
        /// The device that authenticates.
        public let deviceID: String

        public var headers: [(name: String, value: String)] { [("Content-Type", "application/json")] }
        public var description: String { "POST \(path) device_id=\(deviceID) <password redacted>" }
        public var debugDescription: String { description }
        public var customMirror: Mirror { Mirror(self, children: ["deviceID": deviceID], displayStyle: .struct) }
    }

    /// Why an authentication answer could not be read. Never holds the body (it holds a token).
    public struct AnswerError: Error, Sendable, Equatable, CustomStringConvertible {
        enum Code: Sendable, Equatable { case notJSON, missingToken, badToken, missingExpiry }
        let code: Code

        public var description: String {
            switch code {
            case .notJSON: return "the device-auth answer is not a JSON object"
            case .missingToken: return "the device-auth answer has no access_token string"
            case .badToken: return "the device-auth answer's access_token is empty, too long or not a valid header value"
            case .missingExpiry: return "the device-auth answer has no positive whole expires_in"
            }
        }
    }

    /// The password: lowercase hex of HMAC-SHA256 with the **timestamp string as the key** and
    /// the **secret as the message** (IoTDA's convention, the reverse of the usual one).
    public static func password(secret: DeviceSecret, hourTimestamp: String) -> String {
        let key = SymmetricKey(data: Array(hourTimestamp.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(secret.value.utf8), using: key)
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in mac {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The UTC hour `YYYYMMDDHH` of a wall-clock time in ms since the epoch.
    public static func hourTimestamp(milliseconds: Int64) -> String {
        // Timestamp.format gives 2026-11-22T03:10:10.555Z.
        let iso = Array(Timestamp.format(milliseconds: milliseconds).utf8)
        let picked = iso[0..<4] + iso[5..<7] + iso[8..<10] + iso[11..<13]
        return String(decoding: picked, as: UTF8.self)
    }

    /// The authentication request for `deviceID` at wall-clock time `now` (ms since the epoch).
    public static func request(deviceID: String, secret: DeviceSecret, signType: SignType, now: Int64) -> Request {
        let timestamp = hourTimestamp(milliseconds: now)
        var body = Array(#"{"device_id":"#.utf8)
        JSON.appendString(deviceID, to: &body)
        body.append(contentsOf: Array(#","sign_type":\#(signType.rawValue),"timestamp":"#.utf8))
        JSON.appendString(timestamp, to: &body)
        body.append(contentsOf: Array(#","password":"#.utf8))
        JSON.appendString(password(secret: secret, hourTimestamp: timestamp), to: &body)
        body.append(UInt8(ascii: "}"))
        return Request(body: body, deviceID: deviceID)
    }

    /// Reads a 200 answer: `{"access_token": "...", "expires_in": 86399}`.
    public static func parseAnswer(_ body: [UInt8]) throws(AnswerError) -> AccessToken {
        guard let members = try? JSON.members(of: body) else { throw AnswerError(code: .notJSON) }
        guard let token = members.first(where: { $0.key == "access_token" })?.string else {
            throw AnswerError(code: .missingToken)
        }
        // The token goes into a header: visible ASCII only (no CR/LF injection), bounded.
        guard !token.isEmpty, token.utf8.count <= 4096, token.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw AnswerError(code: .badToken)
        }
        guard let raw = members.first(where: { $0.key == "expires_in" }), raw.type == .number,
              let seconds = Int64(String(decoding: raw.raw, as: UTF8.self)), seconds > 0 else {
            throw AnswerError(code: .missingExpiry)
        }
        return AccessToken(token, expiresIn: .seconds(seconds))
    }
}
