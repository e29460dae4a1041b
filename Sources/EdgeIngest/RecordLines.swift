import EdgeStore

/// `POST /v1/records`: JSON lines in the `enqueue --jsonl` format. Pure.
public enum RecordLines {
    /// The outcome of reading a body: the records with their line numbers, or, if any line is
    /// bad, every bad line's error (and nothing is stored: a request is all or nothing).
    public enum Outcome: Sendable {
        case records([NewRecord], lines: [Int])
        case refused([(line: Int, error: String)], goodLines: [Int])
    }

    public static func read(body: [UInt8], now: Int64, maxBodyBytes: Int) -> Outcome {
        var records: [NewRecord] = []
        var lines: [Int] = []
        var errors: [(line: Int, error: String)] = []
        var number = 0
        var start = body.startIndex
        func handle(_ line: ArraySlice<UInt8>) {
            number += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { return }  // blank line
            do {
                let input = try RecordInput.fromJSONLine(Array(line))
                records.append(try input.validated(now: now, maxBodyBytes: maxBodyBytes))
                lines.append(number)
            } catch {
                errors.append((number, "\(error)"))
            }
        }
        for index in body.indices where body[index] == 0x0a {
            handle(body[start..<index])
            start = index + 1
        }
        if start < body.endIndex { handle(body[start...]) }
        if !errors.isEmpty { return .refused(errors, goodLines: lines) }
        return .records(records, lines: lines)
    }
}
