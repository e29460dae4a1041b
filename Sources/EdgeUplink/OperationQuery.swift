import EdgeBuffer
import EdgeStore
import EdgeTransport
import Foundation

/// Reads a device's operations of some statuses from Cumulocity's device control REST API
/// (`GET /devicecontrol/operations?deviceId=...&status=...&pageSize=...&currentPage=...`),
/// following the pages: what the recovery after a gap marker stores in the inbox.
public struct OperationQuery: Sendable {
    /// One operation as the platform returned it.
    public struct Operation: Sendable, Equatable {
        public var id: String
        public var status: String?
        /// The operation object as JSON (keys sorted).
        public var data: [UInt8]
    }

    /// Why a query failed (the message names the status, never a credential).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public let baseURL: String
    public let username: String?
    let password: Secret?
    public let pageSize: Int
    /// A bound on the pages read per status (a platform that always links a next page must not
    /// keep the recovery going for ever).
    public let maxPages: Int

    public init(configuration: UplinkConfiguration, pageSize: Int = 100, maxPages: Int = 1000) {
        baseURL = configuration.url
        username = configuration.username
        password = configuration.password
        self.pageSize = pageSize
        self.maxPages = maxPages
    }

    /// The path of one page.
    public static func path(deviceID: String, status: String, pageSize: Int, page: Int) -> String {
        "\(Platform.operationsPath)?deviceId=\(Platform.pathSegment(deviceID))&status=\(Platform.pathSegment(status))&pageSize=\(pageSize)&currentPage=\(page)"
    }

    /// The operations of one page's body (`{"operations": [...], ...}`), in order.
    public static func parsePage(_ body: [UInt8]) throws(Failure) -> [Operation] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let list = object["operations"] as? [Any] else {
            throw Failure(description: "the answer is not an operation collection (no \"operations\" list)")
        }
        var out: [Operation] = []
        for case let operation as [String: Any] in list {
            let id: String
            if let text = operation["id"] as? String { id = text } else if let number = operation["id"] as? NSNumber { id = number.stringValue } else { continue }
            guard let data = try? JSONSerialization.data(withJSONObject: operation, options: [.sortedKeys, .withoutEscapingSlashes]) else { continue }
            out.append(Operation(id: id, status: operation["status"] as? String, data: Array(data)))
        }
        return out
    }

    /// Every operation of `deviceID` in each of `statuses`, page after page until a page is
    /// not full.
    public func fetch(deviceID: String, statuses: [String], client: HTTPClient) async throws(Failure) -> (operations: [Operation], pages: Int) {
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if let username, let password {
            headers.append(("Authorization", "Basic " + Data("\(username):\(password.value)".utf8).base64EncodedString()))
        }
        var found: [Operation] = []
        var seen = Set<String>()
        var pages = 0
        for status in statuses {
            for page in 1...maxPages {
                let path = Self.path(deviceID: deviceID, status: status, pageSize: pageSize, page: page)
                let response: HTTPResponse
                do {
                    response = try await client.send(HTTPRequest(method: .get, url: baseURL + path, headers: headers))
                } catch {
                    throw Failure(description: "GET \(Platform.operationsPath) failed: \(error.description)")
                }
                pages += 1
                guard response.status == 200 else {
                    throw Failure(description: "GET \(Platform.operationsPath) answered HTTP \(response.status)")
                }
                let operations = try Self.parsePage(response.body)
                for operation in operations where seen.insert(operation.id).inserted { found.append(operation) }
                if operations.count < pageSize { break }
            }
        }
        return (found, pages)
    }
}
