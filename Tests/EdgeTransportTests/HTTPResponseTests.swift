@testable import EdgeTransport
import Foundation
import Testing

@Suite struct HTTPResponseTests {
    let now = Date(timeIntervalSince1970: 784_111_777) // Sun, 06 Nov 1994 08:49:37 GMT

    @Test func headerLookupIgnoresCase() {
        let response = HTTPResponse(status: 200, headers: [("Content-Type", "a"), ("set-cookie", "1"), ("Set-Cookie", "2")])
        #expect(response.header("content-type") == "a")
        #expect(response.header("CONTENT-TYPE") == "a")
        #expect(response.header("Content-Typ") == nil)
        #expect(response.headers(named: "SET-COOKIE") == ["1", "2"])
        #expect(HTTPRequest(url: "https://h", headers: [("access_token", "t")]).header("ACCESS_TOKEN") == "t")
    }

    @Test func retryAfterDeltaSeconds() {
        #expect(HTTPResponse.parseRetryAfter("120", now: now) == .seconds(120))
        #expect(HTTPResponse.parseRetryAfter(" 0 ", now: now) == .zero)
        #expect(HTTPResponse.parseRetryAfter("99999999999999999999999", now: now) == .seconds(86_400))
        #expect(HTTPResponse.parseRetryAfter("-5", now: now) == nil)
        #expect(HTTPResponse.parseRetryAfter("1.5", now: now) == nil)
        #expect(HTTPResponse.parseRetryAfter("soon", now: now) == nil)
        #expect(HTTPResponse.parseRetryAfter("", now: now) == nil)
    }

    @Test func retryAfterHTTPDateInAllThreeForms() {
        #expect(HTTPResponse.parseRetryAfter("Sun, 06 Nov 1994 08:50:37 GMT", now: now) == .seconds(60))
        #expect(HTTPResponse.parseRetryAfter("Sunday, 06-Nov-94 08:50:37 GMT", now: now) == .seconds(60))
        #expect(HTTPResponse.parseRetryAfter("Sun Nov  6 08:50:37 1994", now: now) == .seconds(60))
        #expect(HTTPResponse.parseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now: now) == .zero) // past
        let response = HTTPResponse(status: 429, headers: [("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")])
        #expect(response.retryAfter(now: now) == .seconds(10))
        #expect(HTTPResponse(status: 429).retryAfter(now: now) == nil)
    }

    @Test func requestsWithLineBreaksInHeadersAreRefused() throws {
        let connection = try HTTPConnection(configuration: TransportConfiguration(proxy: ""))
        let error = #expect(throws: TransportError.self) {
            _ = try connection.perform(HTTPRequest(url: "https://127.0.0.1:1/", headers: [("X-A", "1\r\nX-Injected: 2")]))
        }
        #expect(error?.kind == .invalidRequest)
        #expect(error?.description.contains("X-Injected") == false)
    }

    @Test func libcurlVersionIsReported() {
        #expect(HTTPConnection.libcurlVersion.split(separator: ".").count == 3)
    }

    @Test func durationsRoundUpForLibcurl() {
        #expect(Duration.milliseconds(1500).curlMilliseconds == 1500)
        #expect(Duration.microseconds(1).curlMilliseconds == 1)
        #expect(Duration.milliseconds(1500).curlSeconds == 2)
        #expect(Duration.seconds(30).curlSeconds == 30)
    }
}
