import EdgeTransport
import Foundation

/// Number and time formatting shared by the checks.
enum Format {
    /// Milliseconds as a number (JSON details).
    static func ms(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        let value = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return (value * 10).rounded() / 10
    }

    /// Seconds as a number.
    static func secondsValue(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// `0.4 ms`, `37 ms`, `1.2 s`.
    static func milliseconds(_ duration: Duration) -> String {
        let value = ms(duration)
        if value < 10 { return String(format: "%.1f ms", value) }
        if value < 1000 { return String(format: "%.0f ms", value) }
        return String(format: "%.1f s", value / 1000)
    }

    /// `10 s`, `2.5 s`, `4 min`, `1 min 30 s`.
    static func seconds(_ duration: Duration) -> String {
        let value = secondsValue(duration)
        if value < 60 {
            return value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
        }
        let whole = Int(value.rounded())
        let minutes = whole / 60, rest = whole % 60
        return rest == 0 ? "\(minutes) min" : "\(minutes) min \(rest) s"
    }

    /// A configuration value edgebuf reads back: `"90s"`, `"4m"`, `"2s"`, `"1500ms"`.
    static func setting(_ duration: Duration) -> String {
        let millis = Int64(ms(duration).rounded())
        if millis % 60_000 == 0 { return "\(millis / 60_000)m" }
        if millis % 1000 == 0 { return "\(millis / 1000)s" }
        return "\(millis)ms"
    }

    /// libcurl's words and code, e.g. `Failed to connect to 127.0.0.1 port 9: Couldn't connect
    /// to server (curl 7)`; the error's label when libcurl said nothing.
    static func reason(_ error: TransportError) -> String {
        let text = error.curlMessage ?? error.label
        return error.curlCode.map { "\(text) (curl \($0))" } ?? text
    }

    /// The first sentence of a transport error's explanation ("what happened; why"), without
    /// the URL and libcurl's text that follow it.
    static func cause(_ error: TransportError) -> String {
        let text = String(describing: error)
        guard let end = text.range(of: ". ") else { return text }
        let sentence = text[..<end.lowerBound]
        return sentence.prefix(1).uppercased() + sentence.dropFirst() + "."
    }

    /// `2026-11-22 07:59:51 UTC`.
    static func date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter.string(from: date)
    }

    /// RFC 3339 UTC with milliseconds, for JSON.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
