import TestSupport
import EdgeUplink
import Testing

@Suite struct BackoffTests {
    @Test func ceilingsDoubleFromOneSecondUpToFiveMinutes() {
        let backoff = Backoff()
        #expect((0..<12).map { backoff.ceiling(afterFailures: $0) }
            == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300].map { Duration.seconds($0) })
        #expect(backoff.ceiling(afterFailures: 10_000) == .seconds(300))  // no overflow
    }

    @Test(arguments: [UInt64(1), 2, 3, 42, 1234])
    func jitterStaysWithinHalfTheCeilingAndTheCeiling(seed: UInt64) {
        var backoff = Backoff(random: SplitMix64(seed: seed))
        var delays: [Duration] = []
        for failures in 0..<40 {
            let delay = backoff.nextDelay()
            #expect(delay >= backoff.ceiling(afterFailures: failures) / 2 && delay <= backoff.ceiling(afterFailures: failures))
            delays.append(delay)
        }
        // Jitter: the capped delays are spread over the upper half, not all at the ceiling.
        let capped = delays.suffix(30).map { seconds($0) }
        #expect(Set(capped).count == 30)
        #expect(capped.min()! < 225 && capped.max()! > 225)
    }

    /// A fleet of 200 devices failing through a 60 s outage (each its own random source),
    /// retrying as the backoff says: every device's first attempt after the outage comes within
    /// 1.5x its length of its end (the target: every backlog drained within 3x), spread over
    /// that window, and none retries more than four times in the outage's first 5 s. (With full
    /// jitter, the same seeds gave up to 3.5 minutes.)
    @Test func aFleetRetriesWithinTheOutagesLengthOfItsEnd() {
        var after: [Double] = []
        var early = 0
        for seed in 0..<200 {
            var backoff = Backoff(random: SplitMix64(seed: UInt64(seed)))
            var now = Double(seed % 10) / 10  // the devices' first failures spread over a second
            let start = now
            var attempts = 0
            while now < 60 {
                now += seconds(backoff.nextDelay())
                if now - start < 5 { attempts += 1 }
            }
            early = max(early, attempts)
            after.append(now - 60)
        }
        #expect(after.max()! <= 90, "the last device retried \(after.max()!) s after the outage")
        #expect(after.filter { $0 > 30 }.count > 10, "the retries are spread over the window, not bunched at its start")
        #expect(early <= 4, "a device retried \(early) times in the first 5 s")
    }

    /// The benchmark-only switch: without jitter each delay is its ceiling.
    @Test func withoutJitterEachDelayIsTheCeiling() {
        var backoff = Backoff(policy: Backoff.Policy(jitter: false), random: SplitMix64(seed: 7))
        #expect((0..<10).map { _ in backoff.nextDelay() } == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300].map { Duration.seconds($0) })
        #expect(Backoff.Policy().jitter, "jitter is on by default")
    }

    @Test func theRandomSourceIsInjected() {
        var low = Backoff(random: FixedRandom(value: 0))
        var high = Backoff(random: FixedRandom(value: .max))
        #expect(low.nextDelay() == .milliseconds(500))
        let top = seconds(high.nextDelay())
        #expect(top <= 1 && top > 0.999_999)
        // Same seed, same delays.
        var a = Backoff(random: SplitMix64(seed: 9))
        var b = Backoff(random: SplitMix64(seed: 9))
        #expect((0..<10).map { _ in a.nextDelay() } == (0..<10).map { _ in b.nextDelay() })
    }

    @Test func retryAfterIsAFloorAndResetStartsOver() {
        var backoff = Backoff(random: FixedRandom(value: 0))
        #expect(backoff.nextDelay(retryAfter: .seconds(30)) == .seconds(30))
        // Above the cap too: the server's word wins.
        #expect(backoff.nextDelay(retryAfter: .seconds(900)) == .seconds(900))
        var high = Backoff(random: FixedRandom(value: .max))
        for _ in 0..<5 { _ = high.nextDelay() }
        #expect(high.failures == 5)
        #expect(high.nextDelay(retryAfter: .seconds(1)) > .seconds(31))  // jitter above Retry-After
        high.reset()
        #expect(high.failures == 0)
        #expect(high.nextDelay() < .seconds(1))
    }

    @Test func unauthorizedUsesTheLongDelay() {
        let backoff = Backoff(policy: Backoff.Policy(unauthorized: .seconds(900)))
        #expect(backoff.unauthorizedDelay() == .seconds(900))
        #expect(backoff.unauthorizedDelay(retryAfter: .seconds(3600)) == .seconds(3600))
    }
}
