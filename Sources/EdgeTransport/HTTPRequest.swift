/// One HTTP request: method, URL, ordered headers and a body held in memory.
public struct HTTPRequest: Sendable {
    /// An HTTP method. A struct, not an enum, so that any token can be sent.
    public struct Method: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let get = Method(rawValue: "GET")
        public static let head = Method(rawValue: "HEAD")
        public static let post = Method(rawValue: "POST")
        public static let put = Method(rawValue: "PUT")
        public static let patch = Method(rawValue: "PATCH")
        public static let delete = Method(rawValue: "DELETE")
    }

    /// The method.
    public var method: Method
    /// An absolute `https://` URL (`http://` only with `allowPlainHTTP`). Userinfo and query
    /// never appear in errors or logs.
    public var url: String
    /// Header fields in the order they are sent. Names are case-insensitive. An empty value
    /// sends the header with no value.
    public var headers: [(name: String, value: String)]
    /// The body. Sent with a Content-Length (never chunked) and an empty `Expect:`.
    public var body: [UInt8]
    /// Overrides `TransportConfiguration.requestTimeout` for this request (e.g. a long poll).
    public var timeout: Duration?
    /// Takes a 200 answer's body as it arrives (the response's `body` is then empty): for
    /// answers larger than anyone should hold in memory.
    public var bodySink: (any ResponseBodySink)?

    /// Creates a request.
    public init(
        method: Method = .get,
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        timeout: Duration? = nil,
        bodySink: (any ResponseBodySink)? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.bodySink = bodySink
    }

    /// The first value of the header `name` (case-insensitive), or nil.
    public func header(_ name: String) -> String? {
        HTTPHeaderLookup.first(name, in: headers)
    }

    /// Whether the body goes out as POSTFIELDS (any non-empty body, or a method that carries one).
    var carriesBody: Bool {
        !body.isEmpty || method == .post || method == .put || method == .patch
    }

    /// Checks what libcurl would otherwise send verbatim: a header with CR/LF would let a
    /// value inject further headers.
    func validate() throws(TransportError) {
        guard !method.rawValue.isEmpty, method.rawValue.utf8.allSatisfy(HTTPHeaderLookup.isTokenByte) else {
            throw TransportError(invalidRequest: "the method is not an HTTP token", url: url)
        }
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy(HTTPHeaderLookup.isTokenByte) else {
                throw TransportError(invalidRequest: "a header name is empty or not an HTTP token", url: url)
            }
            guard !value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else {
                throw TransportError(invalidRequest: "the value of header \(name) contains a line break", url: url)
            }
        }
    }
}
