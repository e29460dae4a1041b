import TestSupport
import EdgeDownlink
import Testing

@Suite struct BayeuxBackoffTests {
    @Test func ceilingsDoubleUpToTheCap() {
        let backoff = BayeuxBackoff(initial: .seconds(1), maximum: .seconds(60))
        #expect((0..<9).map { backoff.ceiling(afterFailures: $0) } == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
        #expect(backoff.ceiling(afterFailures: 1_000_000) == .seconds(60))  // no overflow
    }

    @Test(arguments: [UInt64(1), 2, 3, 42, 1234])
    func jitterStaysBetweenHalfTheCeilingAndTheCeiling(seed: UInt64) {
        var backoff = BayeuxBackoff(initial: .seconds(1), maximum: .seconds(60), random: SplitMix64(seed: seed))
        var capped: [Double] = []
        for failures in 0..<40 {
            let ceiling = backoff.ceiling(afterFailures: failures)
            let delay = backoff.nextDelay()
            #expect(delay >= ceiling / 2 && delay <= ceiling)
            if failures >= 10 { capped.append(seconds(delay)) }
        }
        // Jittered: the capped delays are spread over 30...60 s, not all equal.
        #expect(Set(capped).count == capped.count)
        #expect(capped.min()! < 40 && capped.max()! > 50)
        #expect(backoff.failures == 40)
    }

    @Test func theRandomSourceIsInjectedAndResetStartsOver() {
        var low = BayeuxBackoff(initial: .seconds(1), maximum: .seconds(60), random: FixedRandom(value: 0))
        #expect((0..<4).map { _ in low.nextDelay() } == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)])
        low.reset()
        #expect(low.nextDelay() == .milliseconds(500))
        var high = BayeuxBackoff(initial: .seconds(1), maximum: .seconds(60), random: FixedRandom(value: .max))
        #expect(seconds(high.nextDelay()) > 0.999_999)
        #expect(low.nextDelay(atLeast: .seconds(30)) == .seconds(30))  // Retry-After is a floor
    }
}
