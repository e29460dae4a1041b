import EdgeTransport
import Foundation

/// How long an idle connection survives on the way to an endpoint (`--idle-probe`).
///
/// Firewalls and NAT boxes forget idle TCP connections, often after 10-15 minutes and
/// sometimes without a FIN or RST to either side (seeds 000/001). A long poll that outlives
/// that limit then waits on a dead socket. The probe holds one connection idle for growing
/// periods and looks at what happened after each:
///
/// - HTTPS keep-alive (uplink, any URL): a request, N idle, another request. If libcurl
///   reused the same connection and got an answer, the connection survived N. If it had to
///   open a new one, the connection was closed or reset meanwhile (a FIN/RST reached us). If
///   the request on the kept connection got no answer at all, it was dropped silently.
/// - Bayeux (downlink): a connect whose hold time (`advice.timeout`) is N. The server keeps
///   the connection idle for N, then answers. An answer after N: it survived. An error
///   before: closed or reset. Nothing by N + margin: dropped silently.
///
/// TCP keepalive is off on the probe's connections, and libcurl's own limit on reusing idle
/// connections (118 s) is raised (`KeepAliveConnection`), so the probe measures the network.
public enum IdleProbe {
    /// How the connection was held idle.
    public enum Mode: String, Sendable, Equatable {
        case keepAlive = "keep_alive"
        case longPoll = "long_poll"
    }

    /// How a probe ended.
    public enum Ending: Sendable, Equatable {
        /// Every period survived.
        case survivedAll
        /// After idling this long, the kept connection gave no answer within the deadline:
        /// no FIN, no RST.
        case silentDrop(after: Duration)
        /// During this idle period the connection was closed or reset (FIN or RST arrived).
        case closed(after: Duration, how: String)
        /// A long poll came back early: the server holds polls at most about `held`.
        case serverHoldLimit(asked: Duration, held: Duration)
        /// The probe could not run.
        case notRun(String)
    }

    /// What a probe saw.
    public struct Observation: Sendable, Equatable {
        public var mode: Mode
        /// The periods that survived, in order.
        public var survived: [Duration]
        public var ending: Ending
        /// How long a request after an idle period (or a poll past its hold) may take.
        public var deadline: Duration

        public init(mode: Mode, survived: [Duration] = [], ending: Ending, deadline: Duration) {
            self.mode = mode
            self.survived = survived
            self.ending = ending
            self.deadline = deadline
        }
    }

    /// The idle periods to try: from 15 s (less when `maximum` is small) doubling up to
    /// `maximum`, which is always the last. 15 min gives 15 s, 30 s, 1 min, 2 min, 4 min,
    /// 8 min, 15 min; 4 s gives 1 s, 2 s, 4 s.
    public static func periods(maximum: Duration) -> [Duration] {
        guard maximum > .zero else { return [] }
        var period = min(.seconds(15), max(maximum / 4, .seconds(1)))
        if period >= maximum { return [maximum] }
        var periods: [Duration] = []
        while period < maximum {
            periods.append(period)
            period = period * 2
        }
        periods.append(maximum)
        return periods
    }

    // MARK: Running

    /// Keep-alive probe: GET `url` before and after each idle period on one connection.
    /// Blocking (it sleeps through the idle periods): run it on a thread of its own.
    static func keepAlive(url: String, configuration: TransportConfiguration, periods: [Duration], deadline: Duration,
                          progress: @Sendable (String) -> Void) -> Observation {
        var observation = Observation(mode: .keepAlive, ending: .survivedAll, deadline: deadline)
        let connection: KeepAliveConnection
        do {
            connection = try KeepAliveConnection(configuration: configuration, maximumIdle: periods.last ?? .zero)
        } catch {
            observation.ending = .notRun("the connection could not be set up: \(error)")
            return observation
        }
        func get() -> (result: Result<HTTPResponse, TransportError>, elapsed: Duration) {
            let started = ContinuousClock.now
            do throws(TransportError) {
                let response = try connection.get(url, timeout: deadline)
                return (.success(response), ContinuousClock.now - started)
            } catch {
                return (.failure(error), ContinuousClock.now - started)
            }
        }
        let first = get()
        switch first.result {
        case .failure(let error):
            observation.ending = .notRun("the first request failed: \(Format.reason(error))")
            return observation
        case .success(let opened) where opened.header("Connection")?.lowercased().contains("close") == true:
            observation.ending = .notRun("the server closes the connection after every answer (Connection: close), so there is no kept-alive connection to hold idle")
            return observation
        case .success:
            break
        }
        for period in periods {
            progress("holding the connection idle for \(Format.seconds(period))")
            Thread.sleep(forTimeInterval: Format.secondsValue(period))
            let after = get()
            switch after.result {
            case .success(let response) where !response.newConnection:
                observation.survived.append(period)
                progress("idle \(Format.seconds(period)): the connection survived (answer in \(Format.milliseconds(after.elapsed)))")
                if response.header("Connection")?.lowercased().contains("close") == true {
                    observation.ending = .notRun("the server closed the connection after an answer (Connection: close); probing stopped after \(Format.seconds(period))")
                    return observation
                }
            case .success:
                progress("idle \(Format.seconds(period)): the connection was gone; libcurl had to open a new one")
                observation.ending = .closed(after: period, how: "closed or reset while idle (libcurl found it dead and reconnected)")
                return observation
            case .failure(let error) where error.kind == .timedOut:
                progress("idle \(Format.seconds(period)): no answer within \(Format.seconds(deadline)) on the kept connection: dropped silently")
                observation.ending = .silentDrop(after: period)
                return observation
            case .failure(let error) where error.kind == .connectionClosed:
                progress("idle \(Format.seconds(period)): the connection broke: \(Format.reason(error))")
                observation.ending = .closed(after: period, how: "reset or closed when used after the idle period (\(Format.reason(error)))")
                return observation
            case .failure(let error):
                observation.ending = .notRun("a request after \(Format.seconds(period)) idle failed: \(Format.reason(error))")
                return observation
            }
        }
        return observation
    }

    /// Long-poll probe on a Bayeux session that has completed its handshake.
    static func longPoll(conversation: BayeuxConversation, periods: [Duration], margin: (Duration) -> Duration,
                         progress: @Sendable (String) -> Void) async -> Observation {
        var observation = Observation(mode: .longPoll, ending: .survivedAll, deadline: margin(periods.last ?? .zero))
        // The first connect after a handshake answers at once (advice.timeout 0).
        let (_, opening) = await conversation.connect(hold: .zero, deadline: margin(.zero))
        if case .answered = opening {} else {
            observation.ending = .notRun("the first connect failed: \(describe(opening))")
            return observation
        }
        for period in periods {
            let deadline = period + margin(period)
            observation.deadline = margin(period)
            progress("long poll held by the server for \(Format.seconds(period))")
            let (elapsed, outcome) = await conversation.connect(hold: period, deadline: deadline)
            switch outcome {
            case .answered:
                // Faye and CometD answer a held connect when its timeout runs out; an answer
                // clearly before that means the server caps the hold (Faye answers at the
                // latest when the session would expire, 2 x its own timeout).
                if elapsed + max(.seconds(1), period / 20) < period {
                    progress("the server answered after \(Format.seconds(elapsed)) instead of \(Format.seconds(period))")
                    observation.ending = .serverHoldLimit(asked: period, held: elapsed)
                    return observation
                }
                observation.survived.append(period)
                progress("idle \(Format.seconds(period)): the poll's answer arrived after \(Format.seconds(elapsed))")
            case .failed(let error?, _) where error.kind == .timedOut:
                progress("idle \(Format.seconds(period)): no answer within \(Format.seconds(deadline)): dropped silently")
                observation.ending = .silentDrop(after: period)
                return observation
            case .failed(let error?, _) where error.kind == .connectionClosed:
                progress("idle \(Format.seconds(period)): the connection broke after \(Format.seconds(elapsed)): \(Format.reason(error))")
                observation.ending = .closed(after: period, how: "reset or closed after \(Format.seconds(elapsed)) of the hold (\(Format.reason(error)))")
                return observation
            default:
                observation.ending = .notRun("a connect held for \(Format.seconds(period)) failed: \(describe(outcome))")
                return observation
            }
        }
        return observation
    }

    private static func describe(_ outcome: BayeuxConversation.Connect) -> String {
        switch outcome {
        case .answered: return "answered"
        case .rejected(let reason): return "the server refused it (\(reason))"
        case .failed(_, let reason): return reason
        }
    }
}
