/// A complete HTTP response, body in memory (bounded by the configured maximum).
public struct HTTPResponse: Sendable {
    /// Where the time went, as libcurl measured it.
    public struct Timings: Sendable, Equatable {
        /// The whole request, seconds.
        public var total: Double
        /// Until the TCP connection was up (0 on a reused connection), seconds.
        public var connect: Double
        /// Until the TLS handshake was done (0 on a reused connection), seconds.
        public var tlsHandshake: Double

        public init(total: Double, connect: Double, tlsHandshake: Double) {
            self.total = total
            self.connect = connect
            self.tlsHandshake = tlsHandshake
        }
    }

    /// The status code, e.g. 200.
    public var status: Int
    /// Header fields of the final response, in order (names as the server sent them).
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: [UInt8]
    /// Timing of this request.
    public var timings: Timings
    /// Body bytes sent (CURLINFO_SIZE_UPLOAD_T).
    public var bytesSent: Int
    /// Whether this request had to open a new connection (CURLINFO_NUM_CONNECTS > 0), i.e.
    /// the kept-alive one was not available.
    public var newConnection: Bool

    /// Creates a response (tests and simulators build their own).
    public init(
        status: Int,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        timings: Timings = Timings(total: 0, connect: 0, tlsHandshake: 0),
        bytesSent: Int = 0,
        newConnection: Bool = false
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.timings = timings
        self.bytesSent = bytesSent
        self.newConnection = newConnection
    }

    /// The first value of the header `name` (case-insensitive), or nil.
    public func header(_ name: String) -> String? {
        HTTPHeaderLookup.first(name, in: headers)
    }

    /// Every value of the header `name` (case-insensitive), in order.
    public func headers(named name: String) -> [String] {
        HTTPHeaderLookup.all(name, in: headers)
    }
}
