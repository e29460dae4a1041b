import Foundation

/// Reads a Bayeux answer as it arrives and commits its events in bounded chunks, so that an
/// answer of any size costs bounded memory (issue 12): a long poll that was held while
/// thousands of operations queued up is stored whole, not refused for its size and lost
/// behind a gap marker.
///
/// The answer is split at its top-level array's elements by tracking strings and nesting,
/// byte by byte; each element is then parsed alone by `BayeuxMessage.parseAnswer`, with the
/// same rules as a whole answer. Events are handed to `commit` whenever the pending ones reach
/// `chunkBytes` of data or `chunkCount` events; what is left at the end (at most one chunk)
/// and the `/meta/*` replies go to the session with `finish()`, which stores them before the
/// next request as always. An element larger than `maximumMessageBytes` is skipped, not held:
/// a gap marker takes its place, in order.
///
/// Used by one transfer at a time: `receive` runs on the transfer's thread, `finish` on the
/// engine after the transfer's result arrived (which orders it after the last `receive`); a
/// stream whose request was cancelled is dropped unread. Hence `@unchecked Sendable`.
public final class BayeuxAnswerStream: @unchecked Sendable {
    /// Stores `notifications` (nil reason), or a gap marker with `reason` (no notifications),
    /// durably; false when it could not. Called on the transfer's thread; it may block.
    public typealias Commit = @Sendable (_ notifications: [InboxNotification], _ gapReason: String?) -> Bool

    /// What is left of an answer once its chunks are committed.
    public struct Remainder: Sendable {
        /// The `/meta/*` replies, in order.
        public var replies: [BayeuxMessage]
        /// Events received but not committed yet (the last chunk, or one whose commit failed).
        public var notifications: [InboxNotification]
        /// Events already committed by `commit`.
        public var committed: Int
        /// Elements skipped for their size (each left a gap marker, if it could be stored).
        public var dropped: Int
        /// The body's size.
        public var bodyBytes: Int
        /// Why the answer is not a complete Bayeux answer, if it is not.
        public var error: BayeuxError?
    }

    public let maximumMessageBytes: Int
    public let chunkBytes: Int
    public let chunkCount: Int
    /// At most this many `/meta/*` replies are kept: a real answer has one or two.
    public static let maximumReplies = 256
    private let commit: Commit
    /// Told at most once a second that bytes are arriving.
    private let progress: (@Sendable () -> Void)?
    private var lastProgress: ContinuousClock.Instant?

    private enum Phase {
        case start
        case expectingElement(first: Bool)
        case afterElement
        case element
        case done
        case failed(Failure)
    }

    /// Why the answer is unusable, before its size is known.
    private enum Failure {
        case notJSON(looksLikeHTML: Bool)
        case malformedJSON
        case unexpectedShape(String)
    }

    private var phase = Phase.start
    private var bodyBytes = 0
    /// How many bytes of a UTF-8 byte-order mark opened the body.
    private var markBytes = 0
    private var topLevelObject = false
    // The element being read.
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var scalar = false
    private var element: [UInt8] = []
    private var oversized = false
    // What was read.
    private var replies: [BayeuxMessage] = []
    private var pending: [InboxNotification] = []
    private var pendingBytes = 0
    private var committed = 0
    private var dropped = 0
    private var elements = 0
    private var messages = 0
    /// A commit failed: the transfer is refused, what is pending stays for `finish`.
    private var storeFailed = false

    public init(maximumMessageBytes: Int, chunkBytes: Int = 512 * 1024, chunkCount: Int = 2048,
                progress: (@Sendable () -> Void)? = nil, commit: @escaping Commit) {
        self.maximumMessageBytes = maximumMessageBytes
        self.chunkBytes = chunkBytes
        self.chunkCount = chunkCount
        self.progress = progress
        self.commit = commit
    }

    /// Takes the next bytes of the body; false once a commit failed (the transfer should stop:
    /// nothing more can be stored, and holding the rest would not be bounded).
    public func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if storeFailed { return false }
        if let progress {
            let now = ContinuousClock.now
            if lastProgress.map({ $0.duration(to: now) >= .seconds(1) }) ?? true {
                lastProgress = now
                progress()
            }
        }
        let start = bodyBytes
        bodyBytes += bytes.count
        var index = 0
        var elementStart: Int? = { if case .element = phase { return 0 } else { return nil } }()
        while index < bytes.count {
            let byte = bytes[index]
            switch phase {
            case .failed:
                return true  // read to the end, kept nowhere: the answer is reported at `finish`
            case .start:
                if markBytes < 3, start + index == markBytes, byte == Self.byteOrderMark[markBytes] {
                    markBytes += 1
                    break
                }
                if Self.isWhitespace(byte) { break }
                if byte == UInt8(ascii: "[") {
                    phase = .expectingElement(first: true)
                } else if byte == UInt8(ascii: "{") {
                    topLevelObject = true
                    beginElement(byte)
                    elementStart = index
                } else {
                    phase = .failed(.notJSON(looksLikeHTML: byte == UInt8(ascii: "<")))
                }
            case .expectingElement(let first):
                if Self.isWhitespace(byte) { break }
                if byte == UInt8(ascii: "]"), first {
                    phase = .done
                } else if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "]") {
                    phase = .failed(.malformedJSON)
                } else {
                    beginElement(byte)
                    elementStart = index
                }
            case .afterElement:
                if Self.isWhitespace(byte) { break }
                if byte == UInt8(ascii: ",") {
                    phase = .expectingElement(first: false)
                } else if byte == UInt8(ascii: "]") {
                    phase = .done
                } else {
                    phase = .failed(.malformedJSON)
                }
            case .element:
                if scalar, !inString, byte == UInt8(ascii: ",") || byte == UInt8(ascii: "]") || Self.isWhitespace(byte) {
                    // A bare number or literal ends where its delimiter begins: read that again.
                    append(bytes, from: elementStart ?? 0, to: index)
                    elementStart = nil
                    endElement()
                    continue
                }
                if step(byte) {
                    append(bytes, from: elementStart ?? 0, to: index + 1)
                    elementStart = nil
                    endElement()
                    if storeFailed { return false }
                }
            case .done:
                if !Self.isWhitespace(byte) { phase = .failed(.malformedJSON) }
            }
            index += 1
        }
        if let elementStart { append(bytes, from: elementStart, to: bytes.count) }
        return !storeFailed
    }

    /// The answer ended (the transfer completed, or failed: then `error` may say it was cut
    /// off, and the caller's own failure is what counts).
    public func finish() -> Remainder {
        var error: BayeuxError?
        switch phase {
        case .failed(.notJSON(let html)): error = .notJSON(looksLikeHTML: html, bodyBytes: bodyBytes)
        case .failed(.malformedJSON): error = .malformedJSON(bodyBytes: bodyBytes)
        case .failed(.unexpectedShape(let what)): error = .unexpectedShape(what, bodyBytes: bodyBytes)
        case .start: error = .emptyAnswer(bodyBytes: bodyBytes)
        case .expectingElement, .afterElement, .element: error = .malformedJSON(bodyBytes: bodyBytes)
        case .done:
            if messages == 0 && elements > 0 {
                error = .unexpectedShape("no element is a message object with a channel", bodyBytes: bodyBytes)
            }
        }
        return Remainder(replies: replies, notifications: pending, committed: committed, dropped: dropped,
                         bodyBytes: bodyBytes, error: error)
    }

    // MARK: Elements

    private static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    private func beginElement(_ first: UInt8) {
        phase = .element
        element.removeAll(keepingCapacity: element.capacity <= chunkBytes)
        oversized = false
        escaped = false
        switch first {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth = 1
            inString = false
            scalar = false
        case UInt8(ascii: "\""):
            depth = 0
            inString = true
            scalar = false
        default:
            depth = 0
            inString = false
            scalar = true
        }
    }

    /// Advances over one byte after the element's first; true when the element ends with it.
    private func step(_ byte: UInt8) -> Bool {
        if inString {
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                inString = false
                return depth == 0
            }
            return false
        }
        switch byte {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
            depth -= 1
            return depth == 0
        default: break
        }
        return false
    }

    private func append(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int) {
        guard from < to, !oversized else { return }
        if element.count + (to - from) > maximumMessageBytes {
            oversized = true
            element = []
            return
        }
        element.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[from..<to]))
    }

    private func endElement() {
        elements += 1
        phase = topLevelObject ? .done : .afterElement
        if oversized {
            dropped += 1
            flush()
            if !storeFailed {
                let reason = "a message of more than \(maximumMessageBytes) bytes in an answer was dropped to keep memory bounded; the notification in it is missing"
                if !commit([], reason) { storeFailed = true }
            }
            messages += 1  // it was one, as far as the shape goes
            return
        }
        guard element.first == UInt8(ascii: "{") else {
            // Not a message: skipped, as in a whole answer, but it must still be JSON.
            if (try? JSONSerialization.jsonObject(with: Data(element), options: .fragmentsAllowed)) == nil {
                phase = .failed(.malformedJSON)
            }
            return
        }
        let parsed: [BayeuxMessage]
        do {
            parsed = try BayeuxMessage.parseAnswer(element)
        } catch {
            if error.kind == .malformedJSON { phase = .failed(.malformedJSON) }
            return  // an object without a channel: skipped
        }
        for message in parsed {
            messages += 1
            if message.isMeta {
                guard replies.count < Self.maximumReplies else {
                    phase = .failed(.unexpectedShape("more than \(Self.maximumReplies) /meta replies"))
                    return
                }
                replies.append(message)
            } else {
                for notification in message.notifications {
                    pending.append(notification)
                    pendingBytes += notification.data.count
                }
                if pendingBytes >= chunkBytes || pending.count >= chunkCount { flush() }
            }
        }
    }

    /// Commits the pending events; on failure they stay pending and the transfer stops.
    private func flush() {
        guard !pending.isEmpty, !storeFailed else { return }
        if commit(pending, nil) {
            committed += pending.count
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
        } else {
            storeFailed = true
        }
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}
