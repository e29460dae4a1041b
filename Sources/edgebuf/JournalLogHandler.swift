import Foundation
import Logging

/// Logs to the systemd journal with structured fields: `MESSAGE`, `PRIORITY`,
/// `SYSLOG_IDENTIFIER=edgebuf`, `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, and every metadata key
/// as a field of its own (`edgebuf.uplink.platform` becomes `EDGEBUF_UPLINK_PLATFORM`), so
/// `journalctl -u edgebuf EDGEBUF_ENGINE=uplink` filters on them. It speaks the journal's
/// native protocol (one datagram of fields to `/run/systemd/journal/socket`; systemd's
/// "Native Journal Protocol" document), so it needs no libsystemd. A datagram the journal
/// does not take is written to stderr instead, with a `<N>` priority prefix journald reads.
struct JournalLogHandler: LogHandler {
    /// Whether stderr is connected to the journal: systemd sets `$JOURNAL_STREAM` to the
    /// device and inode of the stream it connected (systemd.exec(5)); compare, since a child
    /// of the service inherits the variable with other descriptors.
    static func stderrIsJournal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    let label: String
    private let socketPath: String

    init(label: String, socketPath: String = "/run/systemd/journal/socket") {
        self.label = label
        self.socketPath = socketPath
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level, message = event.message, explicit = event.metadata
        let file = event.file, function = event.function, line = event.line
        var fields: [(String, String)] = [
            ("MESSAGE", message.description),
            ("PRIORITY", String(Self.priority(level))),
            ("SYSLOG_IDENTIFIER", "edgebuf"),
            ("CODE_FILE", file),
            ("CODE_LINE", String(line)),
            ("CODE_FUNC", function),
        ]
        let all = metadata.merging(explicit ?? [:]) { _, new in new }
        for (key, value) in all.sorted(by: { $0.key < $1.key }) {
            if let name = Self.fieldName(key) { fields.append((name, "\(value)")) }
        }
        if !send(Self.encode(fields)) {
            let suffix = all.isEmpty ? "" : " " + all.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            FileHandle.standardError.write(Data("<\(Self.priority(level))>\(message)\(suffix)\n".utf8))
        }
    }

    /// syslog priorities (sd-daemon(3)): trace and debug are 7, critical 2.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// A journal field name for a metadata key: upper case letters, digits and `_`, not
    /// starting with `_` or a digit (those are the journal's own), at most 64 characters.
    static func fieldName(_ key: String) -> String? {
        var name = String(key.uppercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" })
        while let first = name.first, first == "_" || first.isNumber { name.removeFirst() }
        guard !name.isEmpty else { return nil }
        return String(name.prefix(64))
    }

    /// The native protocol's datagram: `KEY=value\n`, or for a value with a newline
    /// `KEY\n`, its length as 64-bit little endian, the value, `\n`.
    static func encode(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in fields {
            let bytes = Array(value.utf8)
            out += Array(key.utf8)
            if bytes.contains(UInt8(ascii: "\n")) {
                out.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { out += $0 }
                out += bytes
            } else {
                out.append(UInt8(ascii: "="))
                out += bytes
            }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    private func send(_ datagram: [UInt8]) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: target.sun_path) else { return false }
        withUnsafeMutableBytes(of: &target.sun_path) { $0.copyBytes(from: path) }
        let sent = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                datagram.withUnsafeBytes {
                    sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), address, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return sent == datagram.count
    }
}
