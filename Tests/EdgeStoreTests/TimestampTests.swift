@testable import EdgeStore
import Foundation
import Testing

@Suite struct TimestampTests {
    @Test func formatsUTCWithMilliseconds() {
        #expect(Timestamp.format(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(milliseconds: 1_795_317_010_555) == "2026-11-22T03:10:10.555Z")
        #expect(Timestamp.format(milliseconds: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
    }

    @Test func parsesOffsetsAndFractions() {
        #expect(Timestamp.parse("2026-11-22T03:10:10.555Z") == 1_795_317_010_555)
        #expect(Timestamp.parse("2026-11-22T04:10:10.555+01:00") == 1_795_317_010_555)
        #expect(Timestamp.parse("2026-11-21T22:10:10.5559-05:00") == 1_795_317_010_555)
        #expect(Timestamp.parse("2026-11-22T03:10:10Z") == 1_795_317_010_000)
    }

    @Test(arguments: ["2026-11-22", "2026-11-22T03:10:10", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
                      "2026-11-22T24:00:00Z", "2026-11-22T03:10:10.Z", "20261122T031010Z", "yesterday", "1969-12-31T23:59:59Z"])
    func refusesAnythingElse(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func agreesWithFoundationOverManyInstants() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let ms = Int64.random(in: 0...253_402_300_799_000, using: &generator)
            let text = Timestamp.format(milliseconds: ms)
            #expect(Timestamp.parse(text) == ms)
            let date = formatter.date(from: text)
            #expect(date.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } == ms)
        }
    }
}
