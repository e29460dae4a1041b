import Foundation

/// Tells systemd about the daemon's state (`Type=notify`): `READY=1` once the engines run,
/// `RELOADING=1` / `READY=1` around a SIGHUP reload, `STOPPING=1` at shutdown. The protocol is
/// one datagram of `KEY=value` lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or
/// `@name` for the abstract namespace; see sd_notify(3)). Without `$NOTIFY_SOCKET` (not started
/// by systemd) every call does nothing. No libsystemd needed.
struct SystemdNotifier: Sendable {
    private let address: [UInt8]?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let socket = environment["NOTIFY_SOCKET"], socket.hasPrefix("/") || socket.hasPrefix("@"),
              socket.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            address = nil
            return
        }
        var bytes = Array(socket.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        address = bytes
    }

    /// Sends `state` (newline-separated `KEY=value` assignments). Failures are ignored, as
    /// sd_notify's callers do: the daemon works the same whether systemd listens or not.
    func notify(_ state: String) {
        guard let address else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &target.sun_path) { path in
            path.copyBytes(from: address)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count)
        let payload = Array(state.utf8)
        _ = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), generic, length) }
            }
        }
    }

    /// CLOCK_MONOTONIC in microseconds, for `MONOTONIC_USEC` beside `RELOADING=1`.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
