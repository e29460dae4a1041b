/// What a request asks for, from its method and path alone (pure: no I/O).
public enum IngestRoute: Equatable, Sendable {
    /// `POST /v5/device-auth`
    case iotdaAuth
    /// `POST /v5/devices/{device_id}/sys/properties/report`
    case iotdaProperties(deviceID: String)
    /// `POST /v5/devices/{device_id}/sys/messages/up`
    case iotdaMessage(deviceID: String)
    /// `POST /v5/devices/{gateway_id}/sys/gateway/sub-devices/properties/report`
    case iotdaGatewayProperties(gatewayID: String)
    /// `POST /measurement/measurements` (one measurement or a measurementcollection)
    case cumulocityMeasurements
    /// `POST /v1/records` (JSON lines)
    case records
    /// `GET /healthz`
    case health
    /// `GET /metrics`
    case metrics
    /// A known path with the wrong method; `allowed` is the method it takes.
    case wrongMethod(allowed: String)
    case notFound

    /// Whether the route is served by IoTDA's API (errors are answered in IoTDA's shape).
    public var isIoTDA: Bool {
        switch self {
        case .iotdaAuth, .iotdaProperties, .iotdaMessage, .iotdaGatewayProperties: return true
        default: return false
        }
    }

    /// Whether a body is read and records stored.
    public var stores: Bool {
        switch self {
        case .iotdaProperties, .iotdaMessage, .iotdaGatewayProperties, .cumulocityMeasurements, .records: return true
        default: return false
        }
    }

    /// A short, payload-free label for metrics.
    public var label: String {
        switch self {
        case .iotdaAuth: return "iotda_auth"
        case .iotdaProperties: return "iotda_properties"
        case .iotdaMessage: return "iotda_message"
        case .iotdaGatewayProperties: return "iotda_gateway_properties"
        case .cumulocityMeasurements: return "cumulocity_measurements"
        case .records: return "records"
        case .health: return "healthz"
        case .metrics: return "metrics"
        case .wrongMethod: return "wrong_method"
        case .notFound: return "not_found"
        }
    }

    /// The route for `method` and `uri` (a query string is ignored).
    public init(method: String, uri: String) {
        var path = Substring(uri)
        if let q = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = path[..<q] }
        if path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let route: IngestRoute
        let wanted: String
        switch Array(parts) {
        case ["v5", "device-auth"]: (route, wanted) = (.iotdaAuth, "POST")
        case let p where p.count == 6 && p[0] == "v5" && p[1] == "devices" && p[3] == "sys" && p[4] == "properties" && p[5] == "report":
            (route, wanted) = (.iotdaProperties(deviceID: String(p[2])), "POST")
        case let p where p.count == 6 && p[0] == "v5" && p[1] == "devices" && p[3] == "sys" && p[4] == "messages" && p[5] == "up":
            (route, wanted) = (.iotdaMessage(deviceID: String(p[2])), "POST")
        case let p where p.count == 8 && p[0] == "v5" && p[1] == "devices" && p[3] == "sys" && p[4] == "gateway"
            && p[5] == "sub-devices" && p[6] == "properties" && p[7] == "report":
            (route, wanted) = (.iotdaGatewayProperties(gatewayID: String(p[2])), "POST")
        case ["measurement", "measurements"]: (route, wanted) = (.cumulocityMeasurements, "POST")
        case ["v1", "records"]: (route, wanted) = (.records, "POST")
        case ["healthz"]: (route, wanted) = (.health, "GET")
        case ["metrics"]: (route, wanted) = (.metrics, "GET")
        default:
            self = .notFound
            return
        }
        if method == wanted || (wanted == "GET" && method == "HEAD") {
            self = route
        } else {
            self = .wrongMethod(allowed: wanted)
        }
    }
}
