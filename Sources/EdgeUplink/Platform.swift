import EdgeStore

/// The cloud platform a request goes to. Which one follows from the record kind: measurements
/// and operation statuses go to Cumulocity, everything else to Huawei Cloud IoTDA.
public enum Platform: String, Sendable, CaseIterable, Equatable {
    /// Huawei Cloud IoTDA, device API over HTTPS (shared/reference/iotda-https.md).
    case iotda
    /// Cumulocity IoT REST API.
    case cumulocity

    /// The platform that carries records of `kind`.
    public init(for kind: RecordKind) {
        self = kind == .measurement || kind == .operationStatus ? .cumulocity : .iotda
    }

    /// Whether requests need an IoTDA access token (from `POST /v5/device-auth`). Cumulocity
    /// takes HTTP Basic credentials on every request instead.
    public var usesAccessToken: Bool { self == .iotda }

    // MARK: Paths

    /// `POST /v5/device-auth`: IoTDA device authentication.
    public static let iotdaAuthenticationPath = "/v5/device-auth"

    /// `POST /v5/devices/{device}/sys/properties/report`
    public static func propertiesReportPath(device: String) -> String {
        "/v5/devices/\(pathSegment(device))/sys/properties/report"
    }

    /// `POST /v5/devices/{device}/sys/messages/up`
    public static func messagesUpPath(device: String) -> String {
        "/v5/devices/\(pathSegment(device))/sys/messages/up"
    }

    /// `POST /v5/devices/{gateway}/sys/gateway/sub-devices/properties/report`
    public static func childPropertiesReportPath(gateway: String) -> String {
        "/v5/devices/\(pathSegment(gateway))/sys/gateway/sub-devices/properties/report"
    }

    /// `POST /measurement/measurements` (Cumulocity, a measurement collection).
    public static let measurementsPath = "/measurement/measurements"

    /// `PUT /devicecontrol/operations/{id}` (Cumulocity, an operation's status).
    public static func operationPath(id: String) -> String {
        "/devicecontrol/operations/\(pathSegment(id))"
    }

    /// `GET /devicecontrol/operations` (Cumulocity, a page of operations).
    public static let operationsPath = "/devicecontrol/operations"

    /// The path that reports records of `kind` for `target` (device, gateway, operation id;
    /// ignored for measurements, whose source is inside each measurement).
    public static func path(for kind: RecordKind, target: String) -> String {
        switch kind {
        case .property: return propertiesReportPath(device: target)
        case .message: return messagesUpPath(device: target)
        case .childProperty: return childPropertiesReportPath(gateway: target)
        case .measurement: return measurementsPath
        case .operationStatus: return operationPath(id: target)
        }
    }

    // MARK: Headers

    /// IoTDA's token header: a literal `access_token` header, not `Authorization`. Proxies
    /// (nginx by default) drop header names with an underscore (shared/reference/test-peers.md).
    public static let accessTokenHeader = "access_token"

    /// Cumulocity's media type for an operation.
    public static let operationMediaType = "application/vnd.com.nsn.cumulocity.operation+json"

    /// Cumulocity's media type for a measurement collection.
    public static let measurementCollectionMediaType = "application/vnd.com.nsn.cumulocity.measurementcollection+json"

    /// The headers of a data request, except Cumulocity's `Authorization`, which the engine
    /// adds from its credentials. `accessToken` is required for IoTDA and ignored otherwise.
    public func headers(accessToken: AccessToken?, kind: RecordKind? = nil) -> [(name: String, value: String)] {
        switch self {
        case .iotda:
            var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
            if let accessToken { headers.append((Self.accessTokenHeader, accessToken.headerValue)) }
            return headers
        case .cumulocity:
            // Without Accept, Cumulocity answers a POST with an empty body.
            let type = kind == .operationStatus ? Self.operationMediaType : Self.measurementCollectionMediaType
            return [("Content-Type", type), ("Accept", "application/json")]
        }
    }

    /// Percent-encodes anything but RFC 3986 unreserved characters. Device ids are validated
    /// to `[A-Za-z0-9_-]` at enqueue, so this changes nothing for a stored record; it keeps a
    /// path well formed whatever a caller passes.
    static func pathSegment(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
