import EdgeStore

/// Decides what each request gets, without sockets: whether it may proceed (token, size), and
/// what its body becomes (records to commit, or an error). The channel handler does the I/O.
public struct RequestProcessor: Sendable {
    /// What to do with a complete request.
    public enum Decision: Sendable {
        /// Answer this now.
        case respond(IngestResponse)
        /// Commit these records together, then answer with `answer(ids)`; on a failure, answer
        /// with `RequestProcessor.failure(route:error:)`.
        case store([NewRecord], answer: @Sendable ([Int64]) -> IngestResponse)
        /// Answer from the database (health, metrics), off the event loop.
        case status(IngestRoute)
    }

    /// The request head's fields the processor reads.
    public struct Head: Sendable {
        public var method: String
        public var uri: String
        public var authorization: String?
        public var accessToken: String?
        public var recordClass: String?
        public var contentLength: Int?
        public init(method: String, uri: String, authorization: String? = nil, accessToken: String? = nil,
                    recordClass: String? = nil, contentLength: Int? = nil) {
            self.method = method
            self.uri = uri
            self.authorization = authorization
            self.accessToken = accessToken
            self.recordClass = recordClass
            self.contentLength = contentLength
        }
    }

    public let maxBodyBytes: Int
    /// The platform's limit each record must fit in alone (`uplink.max_body_bytes`).
    public let recordLimit: Int
    public let tokens: TokenBook

    public init(maxBodyBytes: Int, recordLimit: Int, tokens: TokenBook) {
        self.maxBodyBytes = maxBodyBytes
        self.recordLimit = recordLimit
        self.tokens = tokens
    }

    /// Checks a head before its body is read: nil to go on, or the answer (then the body is
    /// not kept).
    public func admit(_ head: Head, route: IngestRoute, now: Int64) -> IngestResponse? {
        switch route {
        case .notFound:
            return IngestResponse.error(route, status: 404, message: "no such endpoint: \(head.method) \(head.uri.prefix(200)); see the README for the endpoints")
        case .wrongMethod(let allowed):
            var response = IngestResponse.error(route, status: 405, message: "\(head.method.prefix(20)) is not allowed here; use \(allowed)")
            response.headers["allow"] = allowed
            return response
        case .health, .iotdaAuth:
            break  // open: health for probes, device-auth checks its own signature
        default:
            if tokens.required && !tokens.matchesBearer(head.authorization) && !tokens.matchesIssued(head.accessToken, now: now) {
                // IoTDA answers an invalid or expired token with 403 IOTDA.000004, on which its
                // clients authenticate again (a local token does not survive a restart of
                // edgebuf); 401 IOTDA.000002 would tell them their credentials are wrong.
                let status = route.isIoTDA ? 403 : 401
                var response = IngestResponse.error(route, status: status, message: "the ingest token is missing or wrong: send Authorization: Bearer <ingest.token>, or the access_token that POST /v5/device-auth answered")
                if route.isIoTDA { response = Self.iotdaTokenRefusal(response) }
                response.headers["www-authenticate"] = "Bearer"
                return response
            }
        }
        if let length = head.contentLength, length > maxBodyBytes {
            var response = IngestResponse.error(route, status: 413, message: "the body is \(length) bytes, over ingest.max_body_bytes (\(maxBodyBytes)); nothing was stored. Send smaller requests.")
            response.close = true
            return response
        }
        return nil
    }

    /// The answer to a body that grew over the limit while it was read (chunked upload).
    public func tooLarge(_ route: IngestRoute) -> IngestResponse {
        var response = IngestResponse.error(route, status: 413, message: "the body is over ingest.max_body_bytes (\(maxBodyBytes) bytes); nothing was stored. Send smaller requests.")
        response.close = true
        return response
    }

    /// What a complete request becomes.
    public func decide(_ head: Head, route: IngestRoute, body: [UInt8], now: Int64) -> Decision {
        let limit = recordLimit
        do throws(IngestError) {
            switch route {
            case .health, .metrics:
                return .status(route)
            case .iotdaAuth:
                let request = try IoTDABodies.auth(body: body)
                if request.signType == 1 && !Self.isCurrentHour(request.timestamp, now: now) {
                    return .respond(IngestResponse.error(route, status: 401, field: "timestamp", message: "device-auth failed: with sign_type 1 the timestamp must be the current UTC hour (YYYYMMDDHH), as the platform checks; fix the device clock or use sign_type 0"))
                }
                if tokens.required && !tokens.matchesSignature(password: request.password, timestamp: request.timestamp) {
                    return .respond(IngestResponse.error(route, status: 401, message: "device-auth failed: the password must be the HMAC-SHA256 of ingest.token keyed with the timestamp"))
                }
                var answer = JSONObject()
                answer.add("access_token", tokens.issue(now: now))
                answer.add("expires_in", TokenBook.lifetimeSeconds)
                return .respond(.json(200, answer))
            case .iotdaProperties(let device):
                let records = try IoTDABodies.properties(deviceID: device, body: body, recordClass: head.recordClass, now: now, maxBodyBytes: limit)
                return .store(records) { _ in IngestResponse(status: 200) }
            case .iotdaGatewayProperties(let gateway):
                let records = try IoTDABodies.gatewayProperties(gatewayID: gateway, body: body, recordClass: head.recordClass, now: now, maxBodyBytes: limit)
                return .store(records) { _ in IngestResponse(status: 200) }
            case .iotdaMessage(let device):
                let records = try IoTDABodies.message(deviceID: device, body: body, recordClass: head.recordClass, now: now, maxBodyBytes: limit)
                return .store(records) { _ in IngestResponse(status: 200) }
            case .cumulocityMeasurements:
                let (records, collection) = try CumulocityBodies.measurements(body: body, recordClass: head.recordClass, now: now, maxBodyBytes: limit)
                return .store(records) { ids in
                    if !collection {
                        var one = JSONObject()
                        one.add("id", String(ids[0]))
                        return .json(201, one)
                    }
                    var list: [UInt8] = Array(#"{"measurements":["#.utf8)
                    for (index, id) in ids.enumerated() {
                        if index > 0 { list.append(UInt8(ascii: ",")) }
                        list += Array(#"{"id":"\#(id)"}"#.utf8)
                    }
                    list += Array("]}".utf8)
                    return IngestResponse(status: 201, contentType: "application/json", body: list)
                }
            case .records:
                switch RecordLines.read(body: body, now: now, maxBodyBytes: limit) {
                case .refused(let errors, let good):
                    var out: [UInt8] = []
                    for (line, error) in errors {
                        var item = JSONObject()
                        item.add("line", line)
                        item.add("error", error)
                        out += Array(item.json.utf8) + [0x0a]
                    }
                    var summary = JSONObject()
                    summary.add("stored", 0)
                    summary.add("refused", errors.count)
                    summary.add("valid", good.count)
                    summary.add("message", "nothing of this request was stored (a request is all or nothing); fix the lines above and send it again")
                    out += Array(summary.json.utf8) + [0x0a]
                    return .respond(IngestResponse(status: 400, contentType: "application/x-ndjson", body: out))
                case .records(let records, let lines):
                    if records.isEmpty {
                        return .respond(IngestResponse(status: 200, contentType: "application/x-ndjson"))
                    }
                    return .store(records) { ids in
                        var out: [UInt8] = []
                        out.reserveCapacity(ids.count * 24)
                        for (line, id) in zip(lines, ids) { out += Array(#"{"line":\#(line),"id":\#(id)}"#.utf8) + [0x0a] }
                        return IngestResponse(status: 200, contentType: "application/x-ndjson", body: out)
                    }
                }
            case .notFound, .wrongMethod:
                return .respond(admit(head, route: route, now: now) ?? IngestResponse(status: 404))
            }
        } catch {
            return .respond(.error(route, error))
        }
    }

    /// Whether `YYYYMMDDHH` is within an hour of `now` (ms), as IoTDA checks for sign_type 1.
    static func isCurrentHour(_ timestamp: String, now: Int64) -> Bool {
        let d = Array(timestamp.utf8).map { String(UnicodeScalar($0)) }
        guard d.count == 10 else { return false }
        let text = "\(d[0...3].joined())-\(d[4...5].joined())-\(d[6...7].joined())T\(d[8...9].joined()):00:00Z"
        guard let start = Timestamp.parse(text) else { return false }
        return now >= start - 3_600_000 && now < start + 2 * 3_600_000
    }

    /// IoTDA's "token invalid or expired" body.
    static func iotdaTokenRefusal(_ response: IngestResponse) -> IngestResponse {
        var body = JSONObject()
        body.add("error_code", "IOTDA.000004")
        body.add("error_msg", "the access token is missing, wrong or expired; authenticate again with POST /v5/device-auth (or send Authorization: Bearer <ingest.token>)")
        var answer = IngestResponse.json(403, body)
        answer.headers = response.headers
        return answer
    }

    /// The answer when the commit failed: nothing of the request was stored.
    public static func failure(route: IngestRoute, error: any Error) -> IngestResponse {
        if error is OutboxFullError {
            return .error(route, status: 507, message: "\(error)")
        }
        var response = IngestResponse.error(route, status: 503, message: "the record was NOT stored: \(error). Retry later.")
        response.headers["retry-after"] = "5"
        return response
    }
}
