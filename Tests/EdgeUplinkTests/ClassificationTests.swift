import TestSupport
import EdgeUplink
import Testing

@Suite struct ClassificationTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let status: Int
        let body: String
        let platform: Platform
        let expected: ResponseClass
        var testDescription: String { "\(platform.rawValue) \(status) \(body.prefix(40)) -> \(expected.label)" }
    }

    static func iotda(_ status: Int, _ code: String, _ expected: ResponseClass) -> Row {
        Row(status: status, body: #"{"error_code":"\#(code)","error_msg":"x"}"#, platform: .iotda, expected: expected)
    }

    /// Every row of the IoTDA error table (shared/reference/iotda-https.md), then statuses.
    static let rows: [Row] = [
        iotda(401, "IOTDA.000002", .authenticationFailed),
        iotda(403, "IOTDA.000004", .tokenRejected),
        iotda(400, "IOTDA.000006", .invalidInput),
        iotda(403, "IOTDA.021101", .rateLimited),
        iotda(403, "IOTDA.021102", .rateLimited),
        iotda(400, "IOTDA.021103", .tooManyChildren),
        iotda(403, "IOTDA.021103", .tooManyChildren),
        iotda(400, "IOTDA.021104", .unknownChild(nil)),
        iotda(403, "IOTDA.021105", .tooLarge),
        // The code decides, not the status: the same 403 means different things.
        iotda(200, "IOTDA.000004", .delivered),
        iotda(500, "IOTDA.021101", .rateLimited),
        // Unknown code: the status decides.
        iotda(503, "IOTDA.999999", .transient),
        iotda(404, "IOTDA.999999", .invalidInput),
        Row(status: 200, body: "", platform: .iotda, expected: .delivered),
        Row(status: 204, body: "", platform: .iotda, expected: .delivered),
        Row(status: 201, body: "{}", platform: .cumulocity, expected: .delivered),
        Row(status: 401, body: "", platform: .iotda, expected: .authenticationFailed),
        Row(status: 400, body: "", platform: .iotda, expected: .invalidInput),
        Row(status: 413, body: "<html><body>413 Request Entity Too Large</body></html>", platform: .iotda, expected: .tooLarge),
        Row(status: 429, body: "", platform: .iotda, expected: .rateLimited),
        Row(status: 408, body: "", platform: .iotda, expected: .transient),
        Row(status: 500, body: "", platform: .iotda, expected: .transient),
        Row(status: 502, body: "<html>Bad Gateway</html>", platform: .iotda, expected: .transient),
        Row(status: 503, body: "", platform: .cumulocity, expected: .transient),
        Row(status: 504, body: "", platform: .iotda, expected: .transient),
        // A proxy's page on a 4xx is not the platform speaking: never dead-letter on it.
        Row(status: 403, body: "<html>Forbidden by proxy</html>", platform: .iotda, expected: .transient),
        Row(status: 400, body: "<html>Bad Request</html>", platform: .iotda, expected: .transient),
        Row(status: 404, body: "", platform: .iotda, expected: .transient),
        Row(status: 403, body: "", platform: .iotda, expected: .transient),
        Row(status: 422, body: "", platform: .cumulocity, expected: .invalidInput),
        Row(status: 302, body: "", platform: .iotda, expected: .transient),
        // Cumulocity.
        Row(status: 401, body: #"{"error":"security/Unauthorized","message":"Invalid credentials!"}"#, platform: .cumulocity, expected: .authenticationFailed),
        Row(status: 403, body: #"{"error":"security/Forbidden","message":"Access is denied"}"#, platform: .cumulocity, expected: .authenticationFailed),
        Row(status: 422, body: #"{"error":"measurement/Unprocessable Entity","message":"bad"}"#, platform: .cumulocity, expected: .invalidInput),
        Row(status: 429, body: "", platform: .cumulocity, expected: .rateLimited),
        Row(status: 413, body: "", platform: .cumulocity, expected: .tooLarge),
        // Other platform 4xx with its own JSON body: invalid input (bisect).
        Row(status: 409, body: #"{"error":"x","message":"conflict"}"#, platform: .cumulocity, expected: .invalidInput),
    ]

    @Test(arguments: rows)
    func classifiesByErrorCodeFirstThenStatus(row: Row) {
        let result = ExchangeResult.response(PlatformResponse(status: row.status, body: Array(row.body.utf8)))
        #expect(Classification.classify(result, platform: row.platform).responseClass == row.expected)
    }

    @Test func transportFailuresAndTimeoutsAreTransient() {
        let timeout = Classification.classify(.transportFailure(TransportFailure(reason: "timeout after 30 s", isTimeout: true)), platform: .iotda)
        #expect(timeout.responseClass == .transient)
        #expect(timeout.status == nil)
        #expect(timeout.summary == "transient failure: timeout after 30 s")
        let refused = Classification.classify(.transportFailure(TransportFailure(reason: "connection refused")), platform: .cumulocity)
        #expect(refused.responseClass == .transient)
    }

    @Test func detailsAndRetryAfterAreKept() {
        let result = ExchangeResult.response(PlatformResponse(status: 403, retryAfter: .seconds(30),
                                                              body: Array(#"{"error_code":"IOTDA.021101","error_msg":"Device flow\ncontrol"}"#.utf8)))
        let verdict = Classification.classify(result, platform: .iotda)
        #expect(verdict.retryAfter == .seconds(30))
        #expect(verdict.errorCode == "IOTDA.021101")
        #expect(verdict.errorMessage == "Device flowcontrol")  // control characters removed
        #expect(verdict.summary == "rate limited (HTTP 403, IOTDA.021101: Device flowcontrol)")
        #expect(verdict.rejectionReason.httpStatus == 403)
    }

    @Test func unknownChildIsFoundInDeviceIDOrMessage() {
        let children = ["child-1", "child-10", "child-2"]
        func named(_ body: String) -> ResponseClass {
            Classification.classify(.response(PlatformResponse(status: 400, body: Array(body.utf8))), platform: .iotda, children: children).responseClass
        }
        #expect(named(#"{"error_code":"IOTDA.021104","error_msg":"x","device_id":"child-2"}"#) == .unknownChild("child-2"))
        #expect(named(#"{"error_code":"IOTDA.021104","error_msg":"x","data":{"device_id":"child-10"}}"#) == .unknownChild("child-10"))
        #expect(named(#"{"error_code":"IOTDA.021104","error_msg":"The sub device child-10 does not belong to the gateway."}"#) == .unknownChild("child-10"))
        #expect(named(#"{"error_code":"IOTDA.021104","error_msg":"Sub device (child-1) not found"}"#) == .unknownChild("child-1"))
        // Not one of the request's children, or ambiguous: unknown.
        #expect(named(#"{"error_code":"IOTDA.021104","error_msg":"x","device_id":"other"}"#) == .unknownChild(nil))
        #expect(named(#"{"error_code":"IOTDA.021104","error_msg":"child-1 and child-2"}"#) == .unknownChild(nil))
    }
}
