@testable import EdgeDownlink
import Foundation
import Synchronization
import TestSupport
import Testing

/// The streamed reading of an answer: the same events as `parseAnswer` of the whole body,
/// however the bytes are cut, committed in bounded chunks, and an answer's damage reported
/// after the events before it.
@Suite struct BayeuxAnswerStreamTests {
    /// What a stream committed, in order.
    final class Store: Sendable {
        enum Entry: Equatable {
            case notifications([String])
            case gap(String)
        }
        let entries = Mutex<[Entry]>([])
        let failAt: Int?

        init(failAt: Int? = nil) { self.failAt = failAt }

        var commit: BayeuxAnswerStream.Commit {
            { notifications, reason in
                self.entries.withLock { entries in
                    if let failAt = self.failAt, entries.count == failAt { return false }
                    entries.append(reason.map { .gap($0) } ?? .notifications(notifications.map { String(decoding: $0.data, as: UTF8.self) }))
                    return true
                }
            }
        }

        var committed: [String] {
            entries.withLock { entries in
                entries.flatMap { entry -> [String] in
                    if case .notifications(let n) = entry { return n }
                    return []
                }
            }
        }
    }

    static func event(_ n: Int, padding: Int = 0) -> String {
        #"{"channel":"/operations/1","id":"\#(n)","data":{"n":\#(n),"s":"a\"b\\c,]}","p":"\#(String(repeating: "x", count: padding))"}}"#
    }

    static let connectReply = #"{"channel":"/meta/connect","successful":true,"advice":{"interval":0}}"#

    /// Feeds `body` in pieces of the given sizes (cycling), then finishes.
    static func stream(_ body: [UInt8], pieces: [Int], into stream: BayeuxAnswerStream) -> (accepted: Bool, remainder: BayeuxAnswerStream.Remainder) {
        var offset = 0
        var piece = 0
        var accepted = true
        while offset < body.count, accepted {
            let size = min(max(pieces[piece % pieces.count], 1), body.count - offset)
            accepted = body[offset..<(offset + size)].withUnsafeBytes { stream.receive($0) }
            offset += size
            piece += 1
        }
        return (accepted, stream.finish())
    }

    @Test func anyCutOfTheBytesGivesTheEventsAndRepliesOfTheWholeAnswer() throws {
        let body = bytes("\u{FEFF}  \r\n[ " + (1...40).map { Self.event($0) }.joined(separator: " ,\n") + ", 5, \"text, ]\", [1,{\"a\":2}], null, " + Self.connectReply + " ]  ")
        let whole = try BayeuxMessage.parseAnswer(body)
        let expected = whole.flatMap(\.notifications).map { String(decoding: $0.data, as: UTF8.self) }
        #expect(expected.count == 40)
        var rng = SplitMix64(seed: 12)
        for round in 0..<200 {
            let pieces = round == 0 ? [1] : (0..<8).map { _ in Int.random(in: 1...97, using: &rng) }
            let store = Store()
            let (accepted, remainder) = Self.stream(body, pieces: pieces, into: BayeuxAnswerStream(maximumMessageBytes: 4096, chunkBytes: 300, commit: store.commit))
            #expect(accepted)
            #expect(remainder.error == nil, "pieces \(pieces): \(String(describing: remainder.error))")
            let all = store.committed + remainder.notifications.map { String(decoding: $0.data, as: UTF8.self) }
            #expect(all == expected, "pieces \(pieces)")
            #expect(remainder.committed == store.committed.count)
            #expect(remainder.replies == whole.filter(\.isMeta))
            #expect(remainder.bodyBytes == body.count)
        }
    }

    @Test func eventsAreCommittedInChunksOfBoundedSize() throws {
        let body = bytes("[" + (1...100).map { Self.event($0, padding: 100) }.joined(separator: ",") + "," + Self.connectReply + "]")
        let store = Store()
        let (_, remainder) = Self.stream(body, pieces: [16384], into: BayeuxAnswerStream(maximumMessageBytes: 4096, chunkBytes: 1000, chunkCount: 1000, commit: store.commit))
        let chunks = store.entries.withLock { $0 }
        #expect(chunks.count >= 10)
        for case .notifications(let chunk) in chunks {
            // A chunk closes at the first event that takes it to chunkBytes.
            #expect(chunk.dropLast().map(\.utf8.count).reduce(0, +) < 1000)
        }
        #expect(store.committed.count + remainder.notifications.count == 100)
        #expect(remainder.replies.map(\.channel) == ["/meta/connect"])
        // And by count.
        let counted = Store()
        _ = Self.stream(body, pieces: [16384], into: BayeuxAnswerStream(maximumMessageBytes: 4096, chunkBytes: 1 << 30, chunkCount: 7, commit: counted.commit))
        #expect(counted.entries.withLock { $0 }.allSatisfy { if case .notifications(let n) = $0 { n.count == 7 } else { false } })
        #expect(counted.committed.count == 98)
    }

    @Test func aMessageOverTheLimitLeavesAGapMarkerInItsPlace() throws {
        let body = bytes("[" + Self.event(1) + "," + Self.event(2, padding: 5000) + "," + Self.event(3) + "," + Self.connectReply + "]")
        let store = Store()
        let (accepted, remainder) = Self.stream(body, pieces: [10, 1000], into: BayeuxAnswerStream(maximumMessageBytes: 4096, commit: store.commit))
        #expect(accepted)
        #expect(remainder.error == nil)
        #expect(remainder.dropped == 1)
        let entries = store.entries.withLock { $0 }
        #expect(entries.count == 2)
        #expect(entries.first == .notifications([#"{"n":1,"s":"a\"b\\c,]}","p":""}"#]))
        if case .gap(let reason) = entries.last { #expect(reason.contains("more than 4096 bytes")) } else { Issue.record("no gap marker: \(entries)") }
        #expect(remainder.notifications.map(\.messageID) == ["3"])
        #expect(remainder.replies.count == 1)
    }

    static let damaged: [(String, BayeuxError.Kind)] = {
        let one = event(1)
        return [
            ("", .emptyAnswer), ("   \n ", .emptyAnswer),
            ("<html><body>proxy</body></html>", .notJSON), ("hello", .notJSON),
            ("[" + one + ",", .malformedJSON),
            ("[" + one + "] x", .malformedJSON),
            ("[" + one + ",,]", .malformedJSON),
            (#"[{"channel":"/x","data":{"a":tru}}]"#, .malformedJSON),
            (#"[1, 2, {"no":"channel"}]"#, .unexpectedShape),
        ]
    }()

    @Test(arguments: BayeuxAnswerStreamTests.damaged)
    func aDamagedAnswerIsReportedAfterTheEventsBeforeTheDamage(body: String, kind: BayeuxError.Kind) throws {
        let store = Store()
        let (_, remainder) = Self.stream(bytes(body), pieces: [3], into: BayeuxAnswerStream(maximumMessageBytes: 4096, commit: store.commit))
        #expect(remainder.error?.kind == kind)
        // parseAnswer of the whole body says the same.
        #expect(throws: BayeuxError.self) { try BayeuxMessage.parseAnswer(bytes(body)) }
    }

    @Test func anAnswerCutOffKeepsTheCompleteEventsOnly() throws {
        let full = bytes("[" + (1...10).map { Self.event($0) }.joined(separator: ",") + "," + Self.connectReply + "]")
        let cut = Array(full.prefix(full.count / 2))
        let store = Store()
        let (_, remainder) = Self.stream(cut, pieces: [7], into: BayeuxAnswerStream(maximumMessageBytes: 4096, commit: store.commit))
        #expect(remainder.error?.kind == .malformedJSON)
        let kept = remainder.notifications.compactMap(\.messageID)
        #expect(!kept.isEmpty && kept == (1...kept.count).map(String.init))
        #expect(kept.count < 10)
    }

    @Test func aSingleObjectIsOneMessage() throws {
        let store = Store()
        let (_, remainder) = Self.stream(bytes(" " + Self.event(9) + "\n"), pieces: [5], into: BayeuxAnswerStream(maximumMessageBytes: 4096, commit: store.commit))
        #expect(remainder.error == nil)
        #expect(remainder.notifications.map(\.messageID) == ["9"])
    }

    @Test func aFailedCommitStopsTheTransferAndKeepsTheChunk() throws {
        let body = bytes("[" + (1...50).map { Self.event($0) }.joined(separator: ",") + "]")
        let store = Store(failAt: 1)
        let (accepted, remainder) = Self.stream(body, pieces: [64], into: BayeuxAnswerStream(maximumMessageBytes: 4096, chunkBytes: 1 << 30, chunkCount: 10, commit: store.commit))
        #expect(!accepted)
        #expect(store.committed.count == 10)
        // The chunk whose commit failed is still there for the session to store later.
        #expect(remainder.notifications.compactMap(\.messageID) == (11...20).map(String.init))
    }
}
