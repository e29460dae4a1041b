#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unbuffered writes to a file descriptor: an acknowledgement line must reach the producer
/// as soon as its record is durable, not when a stdio buffer fills.
struct FileOutput: Sendable {
    let fd: Int32

    static let standardOutput = FileOutput(fd: 1)
    static let standardError = FileOutput(fd: 2)

    /// Whether the descriptor is a terminal (progress bars only there).
    var isTerminal: Bool { isatty(fd) == 1 }

    func write(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(UnsafeRawBufferPointer($0)) }
    }

    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = write($0) }
    }

    /// Writes all of `text`; false when the reader is gone (a closed pipe, with SIGPIPE
    /// ignored) or the write failed.
    func writeAll(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    private func write(_ buffer: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false  // a closed pipe: nothing more to say to it
            }
            offset += n
        }
        return true
    }
}
