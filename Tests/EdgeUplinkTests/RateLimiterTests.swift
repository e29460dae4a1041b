import TestSupport
import EdgeUplink
import Testing

@Suite struct RateLimiterTests {
    typealias Limiter = RateLimiter<TestInstant>

    func at(_ seconds: Double) -> TestInstant { TestInstant.zero.advanced(by: .seconds(seconds)) }

    @Test func unlimitedByDefault() {
        var limiter = Limiter()
        for _ in 0..<1000 {
            #expect(limiter.earliestStart(bodyBytes: 1_000_000, now: .zero) == .zero)
            limiter.consume(bodyBytes: 1_000_000, at: .zero)
        }
        #expect(limiter.requestRate == nil)
        #expect(Limiter(configuration: PacingConfiguration(maxRequestsPerSecond: 0, maxBytesPerSecond: 0)).requestRate == nil)
    }

    @Test func requestBucketPacesAfterItsBurst() {
        var limiter = Limiter(configuration: PacingConfiguration(maxRequestsPerSecond: 4))
        for _ in 0..<4 {
            #expect(limiter.earliestStart(bodyBytes: 10, now: .zero) == .zero)
            limiter.consume(bodyBytes: 10, at: .zero)
        }
        #expect(limiter.earliestStart(bodyBytes: 10, now: .zero) == at(0.25))
        limiter.consume(bodyBytes: 10, at: at(0.25))
        #expect(limiter.earliestStart(bodyBytes: 10, now: at(0.25)) == at(0.5))
        // Idle time refills up to one second's worth, no more.
        #expect(limiter.earliestStart(bodyBytes: 10, now: at(100)) == at(100))
    }

    @Test func byteBucketPacesLargeBodiesWithDebt() {
        var limiter = Limiter(configuration: PacingConfiguration(maxBytesPerSecond: 1000))
        // Larger than the bucket: goes when full, leaves debt.
        #expect(limiter.earliestStart(bodyBytes: 2500, now: .zero) == .zero)
        limiter.consume(bodyBytes: 2500, at: .zero)
        // -1500 tokens: 1000 needed for the next large body: 2.5 s.
        #expect(limiter.earliestStart(bodyBytes: 2500, now: .zero) == at(2.5))
        #expect(limiter.earliestStart(bodyBytes: 100, now: .zero) == at(1.6))
    }

    @Test func refusalsAtTheRateInForceHalveItDownToTheFloor() {
        var limiter = Limiter(configuration: PacingConfiguration(maxRequestsPerSecond: 1, minimumRequestsPerSecond: 0.2))
        #expect(limiter.slowDown(now: .zero) == 0.5)
        #expect(limiter.slowDown(now: .zero) == 0.25)
        #expect(limiter.slowDown(now: .zero) == 0.2)
        #expect(limiter.slowDown(now: .zero) == 0.2)
        // While adaptive, no burst: one request, then one every 1/rate.
        #expect(limiter.earliestStart(bodyBytes: 1, now: at(100)) == at(100))
        limiter.consume(bodyBytes: 1, at: at(100))
        #expect(limiter.earliestStart(bodyBytes: 1, now: at(100)) == at(105))
    }

    /// Probes rise by the factor at most once per interval (and two requests at the rate),
    /// a refused probe returns to the accepted rate, and the configured limit applies again
    /// once the old rate is reached.
    @Test func probesRiseByTheFactorAndARefusedProbeReturnsToTheAcceptedRate() {
        var limiter = Limiter(configuration: PacingConfiguration(maxRequestsPerSecond: 100))
        #expect(limiter.slowDown(now: at(0)) == 50)
        limiter.recordSuccess(now: at(0.5))
        #expect(limiter.requestRate == 50, "no raise before the interval")
        limiter.recordSuccess(now: at(1))
        #expect(limiter.requestRate == 60)
        limiter.recordSuccess(now: at(2))
        #expect(limiter.requestRate == 72)
        #expect(limiter.slowDown(now: at(2.5)) == 60, "a refused probe goes back to the highest accepted rate")
        #expect(limiter.slowDown(now: at(2.6)) == 30, "a refusal at the accepted rate halves")
        var now = 3.0
        while limiter.adaptiveRate != nil && now < 100 {
            now += 1
            limiter.recordSuccess(now: at(now))
        }
        #expect(limiter.adaptiveRate == nil)
        #expect(limiter.requestRate == 100)
        #expect(now == 10, "30 -> 100 in seven x1.2 steps, one a second: \(now - 3) s")
    }

    /// A platform with a fixed budget (a sliding one-second window, like the simulator's
    /// `rate_limit_per_second`) against a device sending as fast as the limiter lets it:
    /// while the platform limits, no window holds more than 1.2x the budget the platform
    /// accepts (plus the one request a window boundary can add); once it stops, the device is
    /// back to its own rate within 30 s. Several budgets and starting rates.
    @Test func againstAFixedBudgetTheOvershootIsBoundedAndRecoveryTakesUnder30Seconds() {
        for (budget, start) in [(10.0, 200.0), (3.0, 50.0), (40.0, 100.0), (1.0, 30.0)] {
            var limiter = Limiter(configuration: PacingConfiguration())
            var accepted: [Double] = []  // the platform's window counts what it accepted
            var seen: [Double] = []      // everything it saw, refused or not
            var now = 0.0
            let limitEnds = 120.0
            var worstWindow = 0
            var recovered: Double?
            // Unlimited at first: the device sends `start` a second (its own speed).
            while now < 200 {
                let earliest = limiter.earliestStart(bodyBytes: 1, now: at(now))
                now = max(now + 1 / start, seconds(TestInstant.zero.duration(to: earliest)))
                limiter.consume(bodyBytes: 1, at: at(now))
                seen.append(now)
                let limiting = now < limitEnds
                if limiting && Double(accepted.filter { $0 > now - 1 }.count) >= budget {
                    limiter.slowDown(now: at(now))
                } else {
                    accepted.append(now)
                    limiter.recordSuccess(now: at(now))
                }
                // After the first seconds (the device's own burst before the first refusal).
                if limiting && now > 10 { worstWindow = max(worstWindow, seen.filter { $0 > now - 1 }.count) }
                if !limiting && recovered == nil && limiter.adaptiveRate == nil { recovered = now - limitEnds }
                accepted.removeAll { $0 < now - 2 }
                seen.removeAll { $0 < now - 2 }
            }
            #expect(Double(worstWindow) <= budget * 1.2 + 1, "budget \(budget): a window held \(worstWindow) requests")
            #expect(recovered != nil && recovered! < 30, "budget \(budget), own rate \(start): back after \(recovered.map { String($0) } ?? "never") s")
        }
    }
}
