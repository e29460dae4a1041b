import Foundation

extension HTTPResponse {
    /// The delay asked for by `Retry-After`, or nil when absent or unreadable.
    ///
    /// Both forms of RFC 9110 section 10.2.3 are read: delta-seconds (`120`) and an HTTP-date
    /// (IMF-fixdate, plus the obsolete RFC 850 and asctime forms a recipient must accept).
    /// A date in the past gives zero. `now` is injectable for tests.
    public func retryAfter(now: Date = Date()) -> Duration? {
        header("Retry-After").flatMap { Self.parseRetryAfter($0, now: now) }
    }

    /// Parses a `Retry-After` value; see `retryAfter(now:)`.
    public static func parseRetryAfter(_ value: String, now: Date) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        if text.utf8.allSatisfy({ (48...57).contains($0) }) {
            // Cap absurd values instead of overflowing: a day is more than any sane server asks.
            guard let seconds = Int64(text.prefix(18)) else { return nil }
            return .seconds(min(seconds, maximumRetryAfterSeconds))
        }
        guard let date = parseHTTPDate(text) else { return nil }
        let delta = date.timeIntervalSince(now)
        guard delta > 0 else { return .zero }
        return .milliseconds(Int64(min(delta, Double(maximumRetryAfterSeconds)) * 1000))
    }

    /// The largest delay `retryAfter` reports (one day).
    public static let maximumRetryAfterSeconds: Int64 = 86_400

    private static func parseHTTPDate(_ text: String) -> Date? {
        // RFC 9110 5.6.7: IMF-fixdate, RFC 850, asctime.
        for format in ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEEE, dd-MMM-yy HH:mm:ss 'GMT'", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            // asctime pads the day with a space ("Nov  6"): collapse runs of spaces first.
            let normalized = text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            if let date = formatter.date(from: normalized) { return date }
        }
        return nil
    }
}
