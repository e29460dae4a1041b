import EdgeDownlink
import EdgeTransport
import Foundation

/// A minimal Bayeux session for the doctor: handshake, connects with a chosen hold time,
/// disconnect. The clientId it holds is a session credential and is never shown.
///
/// Not Sendable: each check makes its own and uses it from one task.
final class BayeuxConversation {
    /// What a handshake came to.
    enum Handshake: Sendable {
        /// The server issued a clientId.
        case accepted
        /// A Bayeux refusal (`403::Handshake denied`) or HTTP 401/403.
        case refused(status: Int, error: BayeuxServerError?)
        /// An answer that is not Bayeux, or a transport failure.
        case broken(String)
    }

    let client: HTTPClient
    let endpoint: DoctorEndpoint
    private(set) var clientID: String?
    private var counter: UInt64 = 0

    init(client: HTTPClient, endpoint: DoctorEndpoint) {
        self.client = client
        self.endpoint = endpoint
    }

    private var headers: [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json"), ("Accept", "application/json")]
        if case .basic(let user, let password) = endpoint.credentials {
            headers.append(("Authorization", "Basic " + Data("\(user):\(password.value)".utf8).base64EncodedString()))
        }
        return headers
    }

    private func nextID() -> (BayeuxRequestID, String) {
        counter += 1
        return (BayeuxRequestID(counter), "doctor-\(counter)")
    }

    private func post(_ body: [UInt8], timeout: Duration) async -> Exchange {
        await client.exchange(HTTPRequest(method: .post, url: endpoint.url, headers: headers, body: body, timeout: timeout))
    }

    /// `/meta/handshake`, asking for `hold` as the long-poll timeout.
    func handshake(hold: Duration, timeout: Duration) async -> (Exchange, Handshake) {
        let (id, messageID) = nextID()
        let request = BayeuxRequest.handshake(id: id, messageID: messageID, timeout: hold, ext: endpoint.handshakeExt)
        let exchange = await post(request.body, timeout: timeout)
        guard let response = exchange.response else {
            return (exchange, .broken(exchange.error.map(Format.reason) ?? "no answer"))
        }
        guard response.status == 200 else {
            if response.status == 401 || response.status == 403 { return (exchange, .refused(status: response.status, error: nil)) }
            return (exchange, .broken("HTTP \(response.status) (\(Self.bodyKind(response.body)))"))
        }
        let messages: [BayeuxMessage]
        do {
            messages = try BayeuxMessage.parseAnswer(response.body)
        } catch {
            return (exchange, .broken("HTTP 200 but not a Bayeux answer: \(error)"))
        }
        guard let reply = messages.first(where: { $0.channel == "/meta/handshake" }) else {
            return (exchange, .broken("HTTP 200 but no /meta/handshake reply"))
        }
        if reply.successful == true, let clientID = reply.clientID, !clientID.isEmpty {
            self.clientID = clientID
            return (exchange, .accepted)
        }
        return (exchange, .refused(status: 200, error: reply.error))
    }

    /// What a connect came to.
    enum Connect: Sendable {
        /// The server answered the poll (successfully).
        case answered
        /// The server answered with an error (the session is gone).
        case rejected(String)
        /// No answer (transport failure or a non-Bayeux answer).
        case failed(TransportError?, String)
    }

    /// `/meta/connect` asking the server to hold it for `hold`; `deadline` bounds the wait.
    /// Returns how long the answer took.
    func connect(hold: Duration, deadline: Duration) async -> (elapsed: Duration, outcome: Connect) {
        guard let clientID else { return (.zero, .rejected("no session")) }
        let (id, messageID) = nextID()
        let request = BayeuxRequest.connect(id: id, messageID: messageID, clientID: clientID, timeout: hold)
        let exchange = await post(request.body, timeout: deadline)
        guard let response = exchange.response else {
            return (exchange.elapsed, .failed(exchange.error, exchange.error.map(Format.reason) ?? "no answer"))
        }
        guard response.status == 200, let messages = try? BayeuxMessage.parseAnswer(response.body),
              let reply = messages.first(where: { $0.channel == "/meta/connect" }) else {
            return (exchange.elapsed, .failed(nil, "HTTP \(response.status) without a /meta/connect reply"))
        }
        if reply.successful == true { return (exchange.elapsed, .answered) }
        return (exchange.elapsed, .rejected(reply.error?.description ?? "unsuccessful without an error"))
    }

    /// `/meta/disconnect`, best effort, so the server drops the session at once.
    func disconnect() async {
        guard let clientID else { return }
        let (id, messageID) = nextID()
        let request = BayeuxRequest.disconnect(id: id, messageID: messageID, clientID: clientID)
        _ = await post(request.body, timeout: .seconds(5))
        self.clientID = nil
    }

    /// `JSON`, `HTML`, `empty` or `text`: what kind of body came back (never the body itself).
    static func bodyKind(_ body: [UInt8]) -> String {
        guard let first = body.first(where: { ![0x20, 0x09, 0x0a, 0x0d].contains($0) }) else { return "empty body" }
        switch first {
        case UInt8(ascii: "{"), UInt8(ascii: "["): return "a JSON body"
        case UInt8(ascii: "<"): return "an HTML body"
        default: return "a text body"
        }
    }
}
