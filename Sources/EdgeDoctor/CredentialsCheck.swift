import EdgeBuffer
import EdgeStore
import EdgeTransport
import EdgeUplink
import Foundation

/// The credentials line: IoTDA device-auth and one use of the token, a Cumulocity
/// authenticated GET, or a Bayeux handshake. Messages name the device or user, never a
/// secret, password, token or clientId.
enum CredentialsCheck {
    /// The line, and the answer whose `Date` header the clock check reads.
    struct Outcome: Sendable {
        var result: CheckResult
        var dated: Exchange?
    }

    /// A hint for token errors: IoTDA's token travels in a header with an underscore.
    static let underscoreHint = "A proxy on the way may drop the access_token header: header names with an underscore are dropped by nginx unless `underscores_in_headers on;` is set, and by some other proxies."

    // MARK: IoTDA

    /// `POST /v5/device-auth`, then one use of the token: an empty property report
    /// (`{"services":[]}`), which carries no data. Whatever the platform answers to it besides
    /// a token error shows the `access_token` header arrived.
    static func iotda(endpoint: DoctorEndpoint, client: HTTPClient, deviceID: String, secret: DeviceSecret,
                      signType: IoTDAAuth.SignType, now: Date) async -> Outcome {
        let auth = IoTDAAuth.request(deviceID: deviceID, secret: secret, signType: signType,
                                     now: Int64(now.timeIntervalSince1970 * 1000))
        let exchange = await client.exchange(HTTPRequest(method: .post, url: endpoint.url + auth.path, headers: auth.headers, body: auth.body))
        var details: [CheckResult.Detail] = [.init("method", .string("iotda_device_auth")), .init("device_id", .string(deviceID)),
                                             .init("sign_type", .integer(Int64(signType.rawValue)))]
        guard let response = exchange.response else {
            return Outcome(result: transportFailure(exchange, what: "POST \(auth.path)", details: details), dated: nil)
        }
        details.append(.init("auth_status", .integer(Int64(response.status))))
        guard response.status == 200 else {
            let verdict = Classification.classify(.response(PlatformResponse(status: response.status, body: response.body)), platform: .iotda)
            details.append(.init("error_code", verdict.errorCode.map(DetailValue.string) ?? .null))
            let cause: String
            let fix: String
            switch verdict.responseClass {
            case .authenticationFailed:
                cause = "The device id or secret is wrong, the device is not registered or disabled" + (signType == .checked ? ", or (sign_type = 1) the device clock is an hour or more off." : ".")
                fix = "Check [uplink] device_id and secret (or secret_file) against the device on the platform" + (signType == .checked ? "; check the clock line." : ".")
            case .tokenRejected:
                cause = underscoreHint
                fix = "Let the proxy pass headers with underscores, or bypass it for \(endpoint.host)."
            default:
                (cause, fix) = unexpected(response, endpoint: endpoint, path: auth.path)
            }
            return Outcome(result: CheckResult(.credentials, .fail, "device \(deviceID) was not authenticated: \(verdict.summary)",
                                               cause: cause, fix: fix, details: details), dated: exchange)
        }
        let token: AccessToken
        do {
            token = try IoTDAAuth.parseAnswer(response.body)
        } catch {
            return Outcome(result: CheckResult(
                .credentials, .fail, "POST \(auth.path) answered 200, but \(error) (\(BayeuxConversation.bodyKind(response.body)))",
                cause: "Something other than IoTDA's device API answered: a captive portal, a proxy's page, or a wrong URL.",
                fix: "Check [uplink] url: it must be the IoTDA device endpoint (https://host[:port], no path).", details: details), dated: exchange)
        }
        details.append(.init("token_expires_in_s", .integer(token.expiresIn.components.seconds)))

        // One use of the token, carrying nothing.
        let headers = Platform.iotda.headers(accessToken: token)
        let path = Platform.propertiesReportPath(device: deviceID)
        let use = await client.exchange(HTTPRequest(method: .post, url: endpoint.url + path, headers: headers,
                                                    body: Array(#"{"services":[]}"#.utf8)))
        guard let answer = use.response else {
            return Outcome(result: transportFailure(use, what: "the token check (POST \(path))", details: details), dated: exchange)
        }
        details.append(.init("token_check_status", .integer(Int64(answer.status))))
        let verdict = Classification.classify(.response(PlatformResponse(status: answer.status, body: answer.body)), platform: .iotda)
        details.append(.init("token_check_error_code", verdict.errorCode.map(DetailValue.string) ?? .null))
        switch verdict.responseClass {
        case .tokenRejected, .authenticationFailed:
            return Outcome(result: CheckResult(
                .credentials, .fail,
                "device \(deviceID) authenticated, but the token was refused right away: \(verdict.summary)",
                cause: underscoreHint,
                fix: "Let the proxy pass headers with underscores (nginx: `underscores_in_headers on;`), or bypass it for \(endpoint.host).",
                details: details), dated: use)
        default:
            let answered = verdict.errorCode.map { "\(answer.status) \($0)" } ?? "\(answer.status)"
            return Outcome(result: CheckResult(
                .credentials, .ok,
                "device \(deviceID) authenticated (token for \(token.expiresIn.components.seconds) s); the token was accepted (an empty report answered \(answered))",
                details: details), dated: use)
        }
    }

    // MARK: Cumulocity

    /// `GET /user/currentUser` with HTTP Basic.
    static func cumulocity(endpoint: DoctorEndpoint, client: HTTPClient, username: String, password: Secret) async -> Outcome {
        let path = "/user/currentUser"
        let headers: [(name: String, value: String)] = [
            ("Accept", "application/json"),
            ("Authorization", "Basic " + Data("\(username):\(password.value)".utf8).base64EncodedString()),
        ]
        let exchange = await client.exchange(HTTPRequest(method: .get, url: endpoint.url + path, headers: headers))
        var details: [CheckResult.Detail] = [.init("method", .string("cumulocity_current_user")), .init("username", .string(username))]
        guard let response = exchange.response else {
            return Outcome(result: transportFailure(exchange, what: "GET \(path)", details: details), dated: nil)
        }
        details.append(.init("status", .integer(Int64(response.status))))
        switch response.status {
        case 200...299:
            return Outcome(result: CheckResult(.credentials, .ok, "\(username) authenticated (GET \(path): \(response.status))", details: details), dated: exchange)
        case 401:
            return Outcome(result: CheckResult(
                .credentials, .fail, "\(username) was refused (GET \(path): 401)",
                cause: "The user name (tenant/user) or the password is wrong, or the user is locked.",
                fix: "Check [\(endpoint.section)] username and password (or password_file).", details: details), dated: exchange)
        case 403:
            return Outcome(result: CheckResult(
                .credentials, .warn, "\(username) authenticated but may not read \(path) (403)",
                cause: "The user lacks the permission to read itself; the credentials themselves work.",
                fix: "Nothing for sending; give the user the role to read its own user if other checks need it.", details: details), dated: exchange)
        default:
            let (cause, fix) = unexpected(response, endpoint: endpoint, path: path)
            return Outcome(result: CheckResult(
                .credentials, .warn, "could not check \(username): GET \(path) answered \(response.status) (\(BayeuxConversation.bodyKind(response.body)))",
                cause: cause, fix: fix, details: details), dated: exchange)
        }
    }

    // MARK: Bayeux

    /// A handshake; on success the conversation keeps the session (the idle probe uses it).
    static func bayeux(endpoint: DoctorEndpoint, conversation: BayeuxConversation, hold: Duration, timeout: Duration) async -> Outcome {
        let (exchange, handshake) = await conversation.handshake(hold: hold, timeout: timeout)
        var user = "anonymous (no username configured)"
        if case .basic(let name, _) = endpoint.credentials { user = name }
        var details: [CheckResult.Detail] = [.init("method", .string("bayeux_handshake")), .init("username", .string(user))]
        if let status = exchange.response?.status { details.append(.init("status", .integer(Int64(status)))) }
        let dated = exchange.response == nil ? nil : exchange
        switch handshake {
        case .accepted:
            return Outcome(result: CheckResult(.credentials, .ok, "Bayeux handshake accepted for \(user)", details: details), dated: dated)
        case .refused(let status, let error):
            let said = error.map { "\($0)" } ?? "HTTP \(status)"
            details.append(.init("error", .string(said)))
            let credentials = error?.isCredentialsRefusal ?? true
            return Outcome(result: CheckResult(
                .credentials, .fail, "Bayeux handshake refused for \(user): \(said)",
                cause: credentials ? "The user name (tenant/user) or the password is wrong, the user lacks the real-time notification role, or the endpoint needs credentials." : "The server refused the session for another reason.",
                fix: "Check [\(endpoint.section)] username and password (or password_file) and the user's roles on the platform.",
                details: details), dated: dated)
        case .broken(let reason):
            details.append(.init("error", .string(reason)))
            return Outcome(result: CheckResult(
                .credentials, .fail, "no Bayeux handshake with \(TransportError.redact(url: endpoint.url)): \(reason)",
                cause: exchange.response == nil ? "The request got no answer." : "The URL does not answer as a Bayeux endpoint (a wrong path, or a proxy or portal answered).",
                fix: "Check \(endpoint.urlKey): the real-time endpoint, e.g. https://tenant.example.com/notification/realtime.",
                details: details), dated: dated)
        }
    }

    // MARK: Helpers

    static func transportFailure(_ exchange: Exchange, what: String, details: [CheckResult.Detail]) -> CheckResult {
        let reason = exchange.error.map(Format.reason) ?? "no answer"
        return CheckResult(.credentials, .fail, "\(what) got no answer: \(reason)",
                           cause: exchange.error.map(Format.cause),
                           fix: "Fix the lines above first; then run the doctor again.", details: details)
    }

    private static func unexpected(_ response: HTTPResponse, endpoint: DoctorEndpoint, path: String) -> (String, String) {
        switch response.status {
        case 404:
            return ("The server has no \(path): the URL is not the platform's API root.",
                    "Check \(endpoint.urlKey) (scheme, host and port only for the uplink).")
        case 500...599:
            return ("The platform (or a proxy in front of it) has trouble right now.", "Try again later; edgebuf retries on its own.")
        default:
            if BayeuxConversation.bodyKind(response.body) == "an HTML body" {
                return ("An HTML page answered: a captive portal or a proxy's error page.", "Make sure the device reaches the platform itself (log in to the portal, check the proxy).")
            }
            return ("An unexpected answer (HTTP \(response.status)).", "Check \(endpoint.urlKey) and the platform's status.")
        }
    }
}
