import Synchronization

/// Requests answered, by endpoint and status, and connections open: for `/metrics`. Labels are
/// route names and status codes only, never a device id or a token.
public final class IngestCounters: Sendable {
    private let requests = Mutex<[String: [Int: Int64]]>([:])
    private let connections = Atomic<Int>(0)
    private let refusedConnections = Atomic<Int64>(0)

    public init() {}

    public func count(_ route: IngestRoute, status: Int) {
        requests.withLock { $0[route.label, default: [:]][status, default: 0] += 1 }
    }

    /// Takes a connection slot; false (and nothing taken) when `limit` are open.
    func openConnection(limit: Int) -> Bool {
        while true {
            let current = connections.load(ordering: .relaxed)
            if current >= limit {
                refusedConnections.add(1, ordering: .relaxed)
                return false
            }
            if connections.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing).exchanged { return true }
        }
    }

    func closeConnection() { connections.subtract(1, ordering: .relaxed) }

    public var openConnections: Int { connections.load(ordering: .relaxed) }

    /// The counters in Prometheus text format.
    public func prometheus() -> String {
        var out = "# HELP edgebuf_ingest_requests_total Ingest requests answered, by endpoint and HTTP status.\n# TYPE edgebuf_ingest_requests_total counter\n"
        for (label, byStatus) in requests.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            for (status, n) in byStatus.sorted(by: { $0.key < $1.key }) {
                out += "edgebuf_ingest_requests_total{endpoint=\"\(label)\",status=\"\(status)\"} \(n)\n"
            }
        }
        out += "# HELP edgebuf_ingest_connections Ingest connections open.\n# TYPE edgebuf_ingest_connections gauge\n"
        out += "edgebuf_ingest_connections \(openConnections)\n"
        out += "# HELP edgebuf_ingest_connections_refused_total Connections closed at accept for ingest.max_connections.\n# TYPE edgebuf_ingest_connections_refused_total counter\n"
        out += "edgebuf_ingest_connections_refused_total \(refusedConnections.load(ordering: .relaxed))\n"
        return out
    }
}

/// Body bytes held by all connections while they read; bounded by `ingest.max_buffered_bytes`.
final class BodyBudget: Sendable {
    let limit: Int
    private let used = Atomic<Int>(0)
    init(limit: Int) { self.limit = limit }

    func reserve(_ bytes: Int) -> Bool {
        while true {
            let current = used.load(ordering: .relaxed)
            if current + bytes > limit { return false }
            if used.compareExchange(expected: current, desired: current + bytes, ordering: .acquiringAndReleasing).exchanged { return true }
        }
    }

    func release(_ bytes: Int) { if bytes > 0 { used.subtract(bytes, ordering: .relaxed) } }
}
