import EdgeUplink
import Foundation

/// The local clock against the server's `Date` header. IoTDA's sign_type 1 authentication and
/// every event time edgebuf stamps at enqueue come from the local clock.
public enum ClockCheck {
    /// An offset above this is a warning. The Date header has whole seconds and the request
    /// takes time, so a second or two is noise.
    public static let tolerance: Duration = .seconds(5)
    /// With IoTDA sign_type 1 the auth timestamp is a UTC hour (`YYYYMMDDHH`) that the platform
    /// compares with its own: an offset of an hour or more makes device-auth fail.
    public static let signTypeLimit: Duration = .seconds(3600)

    /// Evaluates one answer. `sent` and `received` are the local wall-clock times around the
    /// request; the server's time is taken to be the middle of its Date second.
    public static func evaluate(dateHeader: String?, sent: Date, received: Date,
                                signType: IoTDAAuth.SignType?) -> CheckResult {
        guard let dateHeader else {
            return .skipped(.clock, "the server sent no Date header")
        }
        guard let server = parseHTTPDate(dateHeader) else {
            return .skipped(.clock, "the server's Date header is not an HTTP date: \(dateHeader.prefix(40))")
        }
        let local = sent.addingTimeInterval(received.timeIntervalSince(sent) / 2)
        let offset = local.timeIntervalSince(server.addingTimeInterval(0.5))
        let magnitude = abs(offset)
        let direction = offset >= 0 ? "ahead of" : "behind"
        let amount = magnitude < 60 ? String(format: "%.1f s", magnitude) : Format.seconds(.milliseconds(Int64(magnitude * 1000)))
        let summary = "the local clock is \(amount) \(direction) the server's Date (\(dateHeader))"
        let details: [CheckResult.Detail] = [
            .init("offset_seconds", .number((offset * 10).rounded() / 10)),
            .init("server_date", .string(dateHeader)),
            .init("local_time", .string(Format.timestamp(local))),
        ]
        if magnitude <= Format.secondsValue(tolerance) {
            return CheckResult(.clock, .ok, summary, details: details)
        }
        let fix = "Synchronise the device clock (NTP: systemd-timesyncd, chrony); check that UDP port 123 is open or that the device has another time source."
        if signType == .checked, magnitude >= Format.secondsValue(signTypeLimit) {
            return CheckResult(.clock, .fail, summary,
                               cause: "With sign_type = 1 the platform checks the authentication timestamp (a UTC hour) against its own clock: an hour off makes device-auth fail. Event times of new records are off by the same amount.",
                               fix: fix, details: details)
        }
        var cause = "Event times of new records are stamped with this clock, so they are off by the same amount."
        if signType == .checked {
            cause += " With sign_type = 1 authentication may fail near the full hour."
        }
        return CheckResult(.clock, .warn, summary, cause: cause, fix: fix, details: details)
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires senders to use.
    static func parseHTTPDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.date(from: text.trimmingCharacters(in: .whitespaces))
    }
}
