import EdgeStore
import Foundation
import TestSupport
import Testing

/// Random and mutated JSON lines piped into `edgebuf enqueue --jsonl --ack` (and `--strict`):
/// the process never crashes or hangs, every bad line is reported with its number, every
/// acknowledged line is stored exactly once, byte for byte as the validator builds it, and
/// nothing else is stored.
///
/// Seeds: random per run and printed; `EDGEBUF_FUZZ_SEED=N` replays one (every failure message
/// names its seed).
@Suite struct JSONLinesFuzzTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    static let baseSeed: UInt64 = {
        if let text = ProcessInfo.processInfo.environment["EDGEBUF_FUZZ_SEED"], let seed = UInt64(text) { return seed }
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()

    /// Exit codes the README documents.
    static let documentedExitCodes: Set<Int32> = [0, 1, 3, 64, 65, 66, 69, 74, 75, 76, 77, 78]

    /// Literals that must survive digit for digit (nothing goes through a Double).
    static let exactNumbers = ["1e400", "-9" + String(repeating: "7", count: 399), "-0.0e-999",
                               "123456789012345678901234567890.000000000000000000001"]

    @Test(arguments: 0..<4) func everyLineIsStoredOnceOrReportedByNumber(round: Int) throws {
        try fuzz(seed: Self.baseSeed &+ UInt64(round), strict: false)
    }

    @Test(arguments: 0..<3) func strictStopsAtTheFirstBadLineAndKeepsTheLinesBefore(round: Int) throws {
        try fuzz(seed: Self.baseSeed &+ 1000 &+ UInt64(round), strict: true)
    }

    /// A line over the reader's 4 MB limit is skipped without being buffered whole, and the
    /// line numbers after it stay right.
    @Test func anOverlongLineKeepsTheLineNumbersRight() throws {
        var fuzzer = LineFuzzer(seed: Self.baseSeed &+ 7)
        var cases: [LineFuzzer.Case] = (0..<5).map { seq in LineFuzzer.Case(bytes: Array(Records.message(seq).utf8), verdict: .valid, label: "valid") }
        cases.append(LineFuzzer.Case(bytes: Array(repeating: UInt8(ascii: "x"), count: 5 << 20), verdict: .invalid, label: "5 MB line"))
        cases += (0..<5).map { _ in fuzzer.next() }
        cases.append(LineFuzzer.Case(bytes: Array(Records.message(99).utf8), verdict: .valid, label: "valid"))
        try check(cases: cases, seed: fuzzer.seed, strict: false, trailingNewline: true)
    }

    func fuzz(seed: UInt64, strict: Bool) throws {
        var fuzzer = LineFuzzer(seed: seed)
        let count = fuzzer.int(150...300)
        let cases = (0..<count).map { _ in fuzzer.next() }
        print("JSON lines fuzz: seed \(seed) (EDGEBUF_FUZZ_SEED=\(seed)), \(count) lines, strict \(strict)")
        try check(cases: cases, seed: seed, strict: strict, trailingNewline: fuzzer.chance(70))
    }

    /// Runs edgebuf on `cases` and checks everything edgebuf promises about them.
    func check(cases: [LineFuzzer.Case], seed: UInt64, strict: Bool, trailingNewline: Bool,
               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let device = Device(label: "edgebuf-fuzz")
        try device.writeConfig()
        var input: [UInt8] = []
        for (index, item) in cases.enumerated() {
            precondition(!item.bytes.contains(0x0A))
            input += item.bytes
            if index < cases.count - 1 || trailingNewline { input.append(0x0A) }
        }
        var arguments = ["enqueue", "--jsonl", "--ack"]
        if strict { arguments.append("--strict") }
        let result = try device.eb(arguments, stdin: input, timeout: .seconds(90))
        let tag = "seed \(seed)"

        // Never a crash, never a hang, always a documented exit code.
        #expect(!result.timedOut, "\(tag): enqueue hung", sourceLocation: sourceLocation)
        #expect(result.signal == nil, "\(tag): \(result.summary): \(result.stderrText.suffix(3000))", sourceLocation: sourceLocation)
        guard let exitCode = result.exitCode else { return }
        #expect(Self.documentedExitCodes.contains(exitCode), "\(tag): exit \(exitCode)", sourceLocation: sourceLocation)

        // What each line deserves: known verdicts, the rest from the validator in-process.
        var expectedValid: [Int: NewRecord] = [:]
        var expectedInvalid: [Int] = []
        for (index, item) in cases.enumerated() {
            let number = index + 1
            let validated = Self.validate(item.bytes)
            switch item.verdict {
            case .blank:
                continue
            case .valid:
                #expect(validated != nil, "\(tag): line \(number) (\(item.label)) should be valid: \(Self.show(item.bytes))", sourceLocation: sourceLocation)
            case .invalid:
                #expect(validated == nil, "\(tag): line \(number) (\(item.label)) should be refused: \(Self.show(item.bytes))", sourceLocation: sourceLocation)
            case .oracle:
                break
            }
            let valid = item.verdict == .valid || (item.verdict == .oracle && validated != nil)
            if valid, let validated {
                expectedValid[number] = validated
            } else if !valid {
                expectedInvalid.append(number)
            }
        }
        let firstBad = expectedInvalid.first
        let shouldStore = strict ? expectedValid.filter { firstBad == nil || $0.key < firstBad! } : expectedValid
        let shouldReport = strict ? Array(expectedInvalid.prefix(1)) : expectedInvalid

        print("seed \(seed): \(shouldStore.count) lines to store, \(expectedInvalid.count) to refuse (\(shouldReport.count) reported), of \(cases.count)")
        if !strict {
            #expect(!shouldStore.isEmpty && !expectedInvalid.isEmpty, "\(tag): the premise: good and bad lines mixed", sourceLocation: sourceLocation)
        }
        #expect(exitCode == (expectedInvalid.isEmpty ? 0 : 65), "\(tag): exit \(exitCode): \(result.stderrText.suffix(2000))", sourceLocation: sourceLocation)

        // Every bad line is named on stderr by its number, and no good one is.
        var reported = Set<Int>()
        for line in result.stderrText.split(separator: "\n") where line.hasPrefix("edgebuf: line ") {
            let digits = line.dropFirst("edgebuf: line ".count).prefix { $0.isNumber }
            if let number = Int(digits) { reported.insert(number) }
        }
        let unreported = Set(shouldReport).subtracting(reported)
        #expect(unreported.isEmpty, "\(tag): bad lines not reported: \(unreported.sorted().prefix(10).map { "\($0) (\(cases[$0 - 1].label))" })", sourceLocation: sourceLocation)
        let wronglyReported = reported.subtracting(shouldReport)
        #expect(wronglyReported.isEmpty, "\(tag): reported but fine (or after --strict stopped): \(wronglyReported.sorted().prefix(10).map { "\($0) (\(cases[$0 - 1].label)): \(Self.show(cases[$0 - 1].bytes))" })", sourceLocation: sourceLocation)

        // Acknowledged: exactly the lines that should be stored, each once.
        let acks = try Acks.parse(result.stdoutText)
        #expect(Set(acks.map(\.line)) == Set(shouldStore.keys), "\(tag): acknowledged lines differ: missing \(Set(shouldStore.keys).subtracting(acks.map(\.line)).sorted().prefix(10)), unexpected \(Set(acks.map(\.line)).subtracting(shouldStore.keys).sorted().prefix(10))", sourceLocation: sourceLocation)
        #expect(acks.count == Set(acks.map(\.line)).count, "\(tag): a line acknowledged twice", sourceLocation: sourceLocation)
        #expect(acks.count == Set(acks.map(\.id)).count, "\(tag): an id acknowledged twice", sourceLocation: sourceLocation)

        // The database holds the acknowledged records and nothing else, byte for byte.
        let stored: [String]
        if FileManager.default.fileExists(atPath: device.db) {
            stored = try device.outboxLines()
        } else {
            stored = []
        }
        var byID: [Int64: (line: String, object: JSONDict)] = [:]
        for line in stored {
            let object = try Self.metadata(line)
            byID[(object["id"] as? NSNumber)?.int64Value ?? -1] = (line, object)
        }
        #expect(Set(byID.keys) == Set(acks.map(\.id)), "\(tag): stored ids \(byID.count) vs acknowledged \(acks.count)", sourceLocation: sourceLocation)
        #expect(stored.count == acks.count, "\(tag): \(stored.count) stored, \(acks.count) acknowledged", sourceLocation: sourceLocation)
        for ack in acks {
            guard let record = byID[ack.id], let input = cases[safe: ack.line - 1] else { continue }
            let payload = Self.rawPayload(record.line)
            // The validator's own result for this line, at the stored enqueue time, must be
            // what was stored (the derived message id depends on the read time: take it from
            // the stored record when the line had none).
            let expected = Self.expectedPayload(line: input.bytes, stored: record.object)
            #expect(expected == payload, "\(tag): line \(ack.line) (\(input.label)) stored as \(String(decoding: payload.prefix(300), as: UTF8.self)), the validator says \(String(decoding: (expected ?? []).prefix(300), as: UTF8.self))", sourceLocation: sourceLocation)
            // Independent of edgebuf's scanner: what it accepted is RFC 8259 JSON, at most 64 deep.
            let depth = StrictJSON.depth(input.bytes)
            #expect(depth != nil && depth! <= 64, "\(tag): line \(ack.line) (\(input.label)) was stored but is not strict JSON within 64 levels: \(Self.show(input.bytes))", sourceLocation: sourceLocation)
            let payloadText = String(decoding: payload, as: UTF8.self)
            for literal in Self.exactNumbers where String(decoding: input.bytes, as: UTF8.self).contains(literal) {
                #expect(payloadText.contains(literal), "\(tag): line \(ack.line): \(literal.prefix(20))… not kept digit for digit", sourceLocation: sourceLocation)
            }
        }
    }

    /// The validator's record for a line, or nil if it refuses it.
    static func validate(_ bytes: [UInt8]) -> NewRecord? {
        guard let input = try? RecordInput.fromJSONLine(bytes) else { return nil }
        return try? input.validated(now: 1_795_317_010_555, maxBodyBytes: 1_048_576)
    }

    /// The payload the validator builds for `line`, with the defaults (event time, derived
    /// message id) that depend on the moment of reading taken from the stored record.
    static func expectedPayload(line: [UInt8], stored: JSONDict) -> [UInt8]? {
        guard var input = try? RecordInput.fromJSONLine(line),
              let eventTime = stored.string("event_time").flatMap(Timestamp.parse) else { return nil }
        if input.kind == .message, input.messageID == nil {
            // The derived id: 32 hex digits, the payload's second member.
            let payload = String(decoding: rawPayload(stored.string("line") ?? ""), as: UTF8.self)
            guard let match = payload.firstMatch(of: /,"id":"([0-9a-f]{32})","content":/) else { return nil }
            input.messageID = String(match.1)
        }
        return try? input.validated(now: eventTime, maxBodyBytes: 1_048_576).payload
    }

    /// The metadata of a line of `outbox list --json` (everything but the payload, which may
    /// hold numbers Foundation cannot represent), with the line itself under "line".
    static func metadata(_ line: String) throws -> JSONDict {
        guard let range = line.range(of: ",\"payload\":") else { throw TestFailure("no payload: \(line.prefix(300))") }
        var object = try parseObject(String(line[..<range.lowerBound]) + "}")
        object["line"] = line
        return object
    }

    /// The raw bytes of `"payload":...` in a line of `outbox list --json` (its last member).
    static func rawPayload(_ line: String) -> [UInt8] {
        guard let range = line.range(of: "\"payload\":") else { return [] }
        return Array(line[range.upperBound...].utf8.dropLast())
    }

    static func show(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription
        return bytes.count > 200 ? text + "… (\(bytes.count) bytes)" : text
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
