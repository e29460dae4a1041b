import EdgeStore

/// An answer to one request, before it is written.
public struct IngestResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]
    public var headers: [String: String] = [:]
    /// Close the connection after the answer (the rest of the request was not read).
    public var close = false

    public init(status: Int, contentType: String? = nil, body: [UInt8] = [], headers: [String: String] = [:], close: Bool = false) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
        self.close = close
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    static func json(_ status: Int, _ object: JSONObject) -> IngestResponse {
        IngestResponse(status: status, contentType: "application/json", body: Array(object.json.utf8))
    }

    /// An error in the shape the route's platform uses: IoTDA's `error_code`/`error_msg`, or
    /// edgebuf's own `error`/`field`/`message` (Cumulocity clients read `error` and `message`).
    static func error(_ route: IngestRoute, status: Int, field: String? = nil, message: String) -> IngestResponse {
        var body = JSONObject()
        if route.isIoTDA {
            body.add("error_code", iotdaCode(status))
            body.add("error_msg", message)
            if let field { body.add("field", field) }
        } else {
            body.add("error", errorName(status))
            if let field { body.add("field", field) }
            body.add("message", message)
        }
        return json(status, body)
    }

    static func error(_ route: IngestRoute, _ error: IngestError) -> IngestResponse {
        Self.error(route, status: error.status, field: error.field, message: error.description)
    }

    /// IoTDA's codes where the platform has one for the case, edgebuf's own otherwise.
    static func iotdaCode(_ status: Int) -> String {
        switch status {
        case 400: return "IOTDA.000006"
        case 401: return "IOTDA.000002"
        case 413: return "IOTDA.021105"
        default: return "EDGEBUF.\(status)"
        }
    }

    static func errorName(_ status: Int) -> String {
        switch status {
        case 400: return "invalid_input"
        case 401: return "unauthorized"
        case 404: return "not_found"
        case 405: return "method_not_allowed"
        case 408: return "request_timeout"
        case 413: return "body_too_large"
        case 503: return "unavailable"
        case 507: return "outbox_full"
        default: return "error"
        }
    }
}
