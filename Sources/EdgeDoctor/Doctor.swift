import EdgeTransport
import EdgeUplink
import Foundation
import Logging

/// What `edgebuf doctor` is asked to do besides the basic checks.
public struct DoctorOptions: Sendable {
    /// Run the idle probe (`--idle-probe`); it takes minutes.
    public var idleProbe: Bool
    /// The longest idle period the probe tries (`--max-idle`, default 15 min).
    public var maxIdle: Duration
    /// How long a request on a kept connection may take after an idle period before the
    /// connection counts as silently dropped (the long-poll margin is derived separately).
    public var answerDeadline: Duration
    /// The environment that decides the proxy (`https_proxy`, `no_proxy`, ...).
    public var environment: [String: String]

    /// 15 minutes: many firewalls and mobile networks forget idle TCP connections after 15 min
    /// (seed 001), so a probe up to there shows whether the network is one of them.
    public static let defaultMaxIdle: Duration = .seconds(900)

    public init(idleProbe: Bool = false, maxIdle: Duration = defaultMaxIdle, answerDeadline: Duration = .seconds(10),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.idleProbe = idleProbe
        self.maxIdle = maxIdle
        self.answerDeadline = answerDeadline
        self.environment = environment
    }
}

/// `edgebuf doctor`: checks the network path to each endpoint, line by line (name resolution,
/// TCP, proxy, TLS, credentials, clock and, on request, the idle timeout) and returns a
/// `DoctorReport`. Checks after a failed one that they depend on are skipped.
///
/// Blocking libcurl and resolver calls run on threads of their own; HTTP requests go through
/// `HTTPClient`. Nothing is sent to an endpoint before its TLS verified (or it is plain http://
/// by configuration); no secret reaches the report, a log line or a progress line.
public struct Doctor: Sendable {
    public let endpoints: [DoctorEndpoint]
    public let options: DoctorOptions
    private let logger: Logger
    private let progress: @Sendable (String) -> Void

    /// `progress` receives one line at a time while checks run (the CLI prints them on stderr).
    public init(endpoints: [DoctorEndpoint], options: DoctorOptions = DoctorOptions(), logger: Logger,
                progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.endpoints = endpoints
        self.options = options
        self.logger = logger
        self.progress = progress
    }

    /// Runs every check. The basic checks go endpoint by endpoint; idle probes run side by side.
    public func run() async -> DoctorReport {
        var states: [EndpointState] = []
        for endpoint in endpoints {
            states.append(await basicChecks(endpoint))
        }
        if options.idleProbe {
            let periods = IdleProbe.periods(maximum: options.maxIdle)
            let results = await withTaskGroup(of: (Int, CheckResult).self) { group in
                for (index, state) in states.enumerated() {
                    group.addTask { (index, await idleCheck(state, periods: periods)) }
                }
                var results: [Int: CheckResult] = [:]
                for await (index, result) in group { results[index] = result }
                return results
            }
            for index in states.indices { states[index].checks.append(results[index] ?? .skipped(.idle, "not run")) }
        } else {
            for index in states.indices {
                states[index].checks.append(.skipped(.idle, "not probed; --idle-probe holds a connection idle for growing periods up to --max-idle (default 15 min)"))
            }
        }
        return DoctorReport(libcurlVersion: HTTPConnection.libcurlVersion, endpoints: states.map { state in
            DoctorReport.EndpointReport(role: state.endpoint.role, kind: state.endpoint.kind,
                                        url: TransportError.redact(url: state.endpoint.url),
                                        proxy: state.proxy.redactedProxy, checks: state.checks)
        })
    }

    // MARK: Basic checks

    /// An endpoint's lines so far, and whether the path is good enough for HTTP requests.
    struct EndpointState: Sendable {
        let endpoint: DoctorEndpoint
        let proxy: ProxySelection
        var checks: [CheckResult] = []
        /// Why requests cannot be sent (nil: they can).
        var blocked: String?
    }

    private func basicChecks(_ endpoint: DoctorEndpoint) async -> EndpointState {
        let proxy = ProxySelection.select(configured: endpoint.transport.proxy, scheme: endpoint.scheme,
                                          host: endpoint.host, environment: options.environment)
        var state = EndpointState(endpoint: endpoint, proxy: proxy)
        let say = progress
        let label = endpoint.label
        say("\(label): checking name resolution, connection and TLS")
        logger.debug("doctor: checking endpoint", metadata: ["edgebuf.doctor.endpoint": "\(label)"])

        // Name resolution.
        let host = endpoint.host
        let lookup = AddressLookup.isIPAddress(host) ? nil : await Self.onThread("edgebuf-doctor-dns") { AddressLookup.resolve(host: host) }
        let dns = NetworkChecks.dns(endpoint: endpoint, lookup: lookup, proxy: proxy)
        state.checks.append(dns)
        if dns.verdict == .fail {
            return skipRest(state, after: [.dns], reason: "the host name does not resolve")
        }

        // TCP and the proxy's tunnel.
        var transport = endpoint.transport
        transport.proxy = proxy.transportValue
        transport.allowPlainHTTP = endpoint.isPlainHTTP
        let probeTransport = transport
        let port = endpoint.port
        let tcpObservation = await Self.onThread("edgebuf-doctor-tcp") {
            ConnectionProbe.probe(host: host, port: port, depth: .tcp, configuration: probeTransport)
        }
        let (tcp, proxyLine) = NetworkChecks.connection(endpoint: endpoint, proxy: proxy, observation: tcpObservation)
        state.checks += [tcp, proxyLine]
        if tcp.verdict == .fail || proxyLine.verdict == .fail {
            return skipRest(state, after: [.dns, .tcp, .proxy], reason: "no connection")
        }

        // TLS.
        if endpoint.isPlainHTTP {
            state.checks += TLSChecks.plainHTTP(endpoint: endpoint)
        } else {
            let verified = await Self.onThread("edgebuf-doctor-tls") {
                ConnectionProbe.probe(host: host, port: port, depth: .verifiedTLS, configuration: probeTransport)
            }
            var presented: ConnectionProbe.Observation?
            if verified.error != nil {
                // Only to show what was presented; see ConnectionProbe.Depth.unverifiedTLS.
                presented = await Self.onThread("edgebuf-doctor-tls") {
                    ConnectionProbe.probe(host: host, port: port, depth: .unverifiedTLS, configuration: probeTransport)
                }
            }
            let lines = TLSChecks.evaluate(endpoint: endpoint, proxy: proxy, verified: verified, presented: presented, now: Date())
            state.checks += lines
            if verified.error != nil || lines.contains(where: { $0.verdict == .fail }) {
                let reason = "TLS failed: nothing is sent over a connection that does not verify"
                state.blocked = reason
                state.checks += [.skipped(.credentials, reason), .skipped(.clock, reason)]
                return state
            }
        }

        // Credentials, and the clock from the same answer.
        say("\(label): checking credentials and the clock")
        let client: HTTPClient
        do throws(TransportError) {
            client = try HTTPClient(configuration: doctorTransport(endpoint, proxy: proxy, requestTimeout: endpoint.transport.requestTimeout), logger: logger)
        } catch {
            let reason = "the HTTP client could not start: \(error)"
            state.blocked = reason
            state.checks += [CheckResult(.credentials, .fail, reason), .skipped(.clock, "no HTTP client")]
            return state
        }
        let outcome = await credentials(endpoint, client: client)
        state.checks.append(outcome.result)
        var dated = outcome.dated
        if dated == nil, outcome.result.verdict == .skipped {
            dated = await client.exchange(HTTPRequest(method: .get, url: endpoint.requestURL, headers: [("Accept", "*/*")]))
        }
        await client.shutdown()
        if let dated, let response = dated.response {
            var signType: IoTDAAuth.SignType?
            if case .iotda(_, _, let type) = endpoint.credentials { signType = type }
            state.checks.append(ClockCheck.evaluate(dateHeader: response.header("Date"), sent: dated.sent, received: dated.received, signType: signType))
        } else {
            state.checks.append(.skipped(.clock, "no HTTP answer to read the Date header from"))
        }
        if outcome.result.verdict == .fail && outcome.dated == nil {
            state.blocked = "requests get no answer"
        } else if endpoint.kind == .bayeux && outcome.result.verdict == .fail {
            state.blocked = "the Bayeux handshake failed (see credentials)"
        }
        return state
    }

    private func credentials(_ endpoint: DoctorEndpoint, client: HTTPClient) async -> CredentialsCheck.Outcome {
        switch (endpoint.kind, endpoint.credentials) {
        case (.iotda, .iotda(let device, let secret, let signType)):
            return await CredentialsCheck.iotda(endpoint: endpoint, client: client, deviceID: device, secret: secret,
                                                signType: signType, now: Date())
        case (.cumulocity, .basic(let user, let password)):
            return await CredentialsCheck.cumulocity(endpoint: endpoint, client: client, username: user, password: password)
        case (.bayeux, _):
            let conversation = BayeuxConversation(client: client, endpoint: endpoint)
            let outcome = await CredentialsCheck.bayeux(endpoint: endpoint, conversation: conversation,
                                                        hold: .seconds(30), timeout: endpoint.transport.requestTimeout)
            await conversation.disconnect()
            return outcome
        case (_, .none) where endpoint.role == .url:
            return .init(result: .skipped(.credentials, "not a configured endpoint: no credentials are sent to it"), dated: nil)
        default:
            return .init(result: .skipped(.credentials, "no credentials configured for this endpoint"), dated: nil)
        }
    }

    private func skipRest(_ state: EndpointState, after done: [Check], reason: String) -> EndpointState {
        var state = state
        state.blocked = reason
        for check in Check.allCases where check != .idle && !done.contains(check) {
            if check == .proxy, !done.contains(.proxy) {
                state.checks.append(CheckResult(.proxy, .skipped, state.proxy.redactedProxy.map { "\($0) (\(state.proxy.origin)): not tried, \(reason)" }
                                                ?? "none: direct connection (\(state.proxy.origin))"))
                continue
            }
            state.checks.append(.skipped(check, "not checked: \(reason)"))
        }
        return state
    }

    // MARK: Idle probe

    private func idleCheck(_ state: EndpointState, periods: [Duration]) async -> CheckResult {
        let endpoint = state.endpoint
        if let blocked = state.blocked { return .skipped(.idle, "not probed: \(blocked)") }
        let label = endpoint.label
        let say = progress
        let tell: @Sendable (String) -> Void = { say("\(label): idle probe: \($0)") }
        let longest = periods.last ?? .zero
        // A request after an idle period gets the answer deadline; a long poll its hold plus a
        // margin (CometD's maxNetworkDelay is 10 s; at least 5 s here, a tenth of long holds).
        let margin: @Sendable (Duration) -> Duration = { max(.seconds(5), $0 / 10) }
        let timeout = max(options.answerDeadline, longest + margin(longest))
        let transport = doctorTransport(endpoint, proxy: state.proxy, requestTimeout: timeout)
        tell("up to \(Format.seconds(longest)) (periods \(periods.map { Format.seconds($0) }.joined(separator: ", ")))")
        let observation: IdleProbe.Observation
        if endpoint.kind == .bayeux {
            let client: HTTPClient
            do throws(TransportError) {
                client = try HTTPClient(configuration: transport, logger: logger)
            } catch {
                return .skipped(.idle, "the HTTP client could not start: \(error)")
            }
            let conversation = BayeuxConversation(client: client, endpoint: endpoint)
            let (_, handshake) = await conversation.handshake(hold: longest, timeout: options.answerDeadline)
            if case .accepted = handshake {
                observation = await IdleProbe.longPoll(conversation: conversation, periods: periods, margin: margin, progress: tell)
            } else {
                observation = IdleProbe.Observation(mode: .longPoll, ending: .notRun("the Bayeux handshake failed"), deadline: margin(longest))
            }
            await conversation.disconnect()
            await client.shutdown()
        } else {
            let url = endpoint.requestURL
            let deadline = options.answerDeadline
            observation = await Self.onThread("edgebuf-doctor-idle") {
                IdleProbe.keepAlive(url: url, configuration: transport, periods: periods, deadline: deadline, progress: tell)
            }
        }
        let result = IdleProbe.verdict(observation, endpoint: endpoint, periods: periods)
        tell("done: \(result.verdict.rawValue)")
        return result
    }

    // MARK: Threads

    /// Runs blocking `work` (libcurl, getaddrinfo) on a thread of its own, not on the
    /// cooperative pool.
    static func onThread<T: Sendable>(_ name: String, _ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.name = name
            thread.start()
        }
    }
}
