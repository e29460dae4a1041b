/// Everything the doctor found: one checklist per endpoint. Render it with `text` or `json`.
public struct DoctorReport: Sendable {
    /// The checklist of one endpoint.
    public struct EndpointReport: Sendable {
        public var role: DoctorEndpoint.Role
        public var kind: DoctorEndpoint.Kind
        /// The URL without userinfo or query.
        public var url: String
        /// The proxy used (without userinfo), nil for direct.
        public var proxy: String?
        public var checks: [CheckResult]

        public init(role: DoctorEndpoint.Role, kind: DoctorEndpoint.Kind, url: String, proxy: String?, checks: [CheckResult]) {
            self.role = role
            self.kind = kind
            self.url = url
            self.proxy = proxy
            self.checks = checks
        }

        /// The line for `check`, if present.
        public func result(_ check: Check) -> CheckResult? { checks.first { $0.check == check } }

        /// The worst verdict (skipped lines do not count).
        public var verdict: Verdict { checks.map(\.verdict).filter { $0 != .skipped }.max() ?? .ok }

        /// `uplink iotda` / `downlink bayeux` / `url`.
        public var name: String { role == .url ? "url" : "\(role.rawValue) \(kind.rawValue)" }
    }

    /// The libcurl version the checks ran with.
    public var libcurlVersion: String
    public var endpoints: [EndpointReport]

    public init(libcurlVersion: String, endpoints: [EndpointReport]) {
        self.libcurlVersion = libcurlVersion
        self.endpoints = endpoints
    }

    /// The worst verdict over all endpoints.
    public var verdict: Verdict { endpoints.map(\.verdict).max() ?? .ok }

    /// Whether something blocks syncing (any line failed).
    public var blocksSyncing: Bool { verdict == .fail }

    /// `uplink iotda: tls` for every failed line.
    public var failures: [String] {
        endpoints.flatMap { endpoint in endpoint.checks.filter { $0.verdict == .fail }.map { "\(endpoint.name): \($0.check.title)" } }
    }

    /// The same for warnings.
    public var warnings: [String] {
        endpoints.flatMap { endpoint in endpoint.checks.filter { $0.verdict == .warn }.map { "\(endpoint.name): \($0.check.title)" } }
    }
}
