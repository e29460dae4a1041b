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

    @Test func slowDownHalvesWithAFloorAndRecoveryIsGradual() {
        var limiter = Limiter(configuration: PacingConfiguration(maxRequestsPerSecond: 1, minimumRequestsPerSecond: 0.2, recoverySteps: 10))
        #expect(limiter.slowDown(now: .zero) == 0.5)
        #expect(limiter.slowDown(now: .zero) == 0.25)
        #expect(limiter.slowDown(now: .zero) == 0.2)
        #expect(limiter.slowDown(now: .zero) == 0.2)
        var rates: [Double] = []
        // x1.1 per success: 0.2 -> 1 takes 17 successes.
        for _ in 0..<20 {
            limiter.recordSuccess(now: .zero)
            rates.append(limiter.requestRate!)
        }
        #expect(rates.first! > 0.2 && rates.first! < 0.35)
        #expect(zip(rates, rates.dropFirst()).allSatisfy { $0 < $1 || $1 == 1 })
        #expect(rates.last == 1)
        #expect(limiter.adaptiveRate == nil)
    }
}
