import CCurl

/// What one transfer accumulates: the body and header lines, bounded in size, plus the
/// cancellation flag. libcurl hands it back to the global callbacks below through the
/// userdata pointer (WRITEDATA, HEADERDATA, XFERINFODATA) as an unretained `Unmanaged`;
/// `HTTPConnection.perform` keeps it alive with `withExtendedLifetime`.
final class TransferState {
    let maximumBodyBytes: Int
    let maximumHeaderBytes: Int
    let cancellation: CancellationFlag
    /// Takes a 200 answer's body instead of `body` (see `ResponseBodySink`).
    let sink: (any ResponseBodySink)?

    private(set) var body: [UInt8] = []
    /// The status of the last status line seen (the final response's, once the body comes).
    private(set) var status = 0
    private(set) var headers: [(name: String, value: String)] = []
    private var headerBytes = 0
    /// A callback refused data because a limit was hit (so curl 23 means "too large").
    private(set) var sizeLimitHit = false
    /// The sink refused data (so curl 23 means "refused by the receiver").
    private(set) var sinkRefused = false
    /// With a sink, the request's timeout bounds the wait for the body and each silence
    /// within it, not the whole answer: a streamed answer may take as long as it keeps coming.
    var silenceLimit: Duration?
    private var lastProgress = ContinuousClock.now
    private(set) var bodyStarted = false
    /// The silence limit was hit (so curl 42 means "timed out", not "cancelled").
    private(set) var deadlinePassed = false

    /// The request body libcurl reads through CURLOPT_READFUNCTION, and how much it has read.
    var upload = UnsafeRawBufferPointer(start: nil, count: 0)
    private(set) var uploaded = 0
    /// libcurl wanted to send the body a second time (its own retry on a fresh connection
    /// after a reused one died) and was refused: curl 65 means "sent once, no answer".
    private(set) var resendRefused = false

    init(maximumBodyBytes: Int, maximumHeaderBytes: Int, cancellation: CancellationFlag, sink: (any ResponseBodySink)? = nil) {
        self.maximumBodyBytes = maximumBodyBytes
        self.maximumHeaderBytes = maximumHeaderBytes
        self.cancellation = cancellation
        self.sink = sink
    }

    /// Appends body bytes (or hands them to the sink); false (abort) when the body would
    /// exceed the limit or the sink refuses them.
    func appendBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if let sink, status == 200 {
            bodyStarted = true
            lastProgress = ContinuousClock.now
            if sink.receive(bytes) { return true }
            sinkRefused = true
            return false
        }
        guard body.count + bytes.count <= maximumBodyBytes else {
            sizeLimitHit = true
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    /// Copies the next part of the body into libcurl's buffer; 0 at the end.
    func readBody(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, upload.count - uploaded)
        guard count > 0, let source = upload.baseAddress, let target = buffer.baseAddress else { return 0 }
        target.copyMemory(from: source + uploaded, byteCount: count)
        uploaded += count
        return count
    }

    /// Whether the transfer must stop now: cancelled, or silent for longer than the limit.
    func shouldAbort() -> Bool {
        if cancellation.isCancelled { return true }
        if let silenceLimit, lastProgress.duration(to: ContinuousClock.now) >= silenceLimit {
            deadlinePassed = true
            return true
        }
        return false
    }

    /// libcurl asks to rewind the body. Before any byte was read that changes nothing. After,
    /// it means libcurl wants to send the request again by itself (a reused connection died
    /// after it was sent): refused, so the transfer fails and the caller decides, and audits,
    /// every attempt the server may have seen.
    func rewindBody(to offset: Int64) -> Bool {
        if offset == 0 && uploaded == 0 { return true }
        resendRefused = true
        return false
    }

    /// Takes one header line as libcurl delivers it (status line, fields, the blank line).
    func appendHeaderLine(_ bytes: UnsafeRawBufferPointer) -> Bool {
        headerBytes += bytes.count
        guard headerBytes <= maximumHeaderBytes else {
            sizeLimitHit = true
            return false
        }
        // Trim CR/LF as bytes: in a Swift String "\r\n" is one Character, so hasSuffix("\n") misses it.
        var end = bytes.count
        while end > 0, bytes[end - 1] == 10 || bytes[end - 1] == 13 { end -= 1 }
        let line = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A new status line: a 1xx interim or a proxy's CONNECT answer came before.
            // Only the final response's fields are kept.
            headers.removeAll()
            let fields = line.split(separator: " ", maxSplits: 2)
            status = fields.count >= 2 ? Int(fields[1]) ?? 0 : 0
        } else if line.first == " " || line.first == "\t" {
            // obs-fold continuation (RFC 9112 5.2): belongs to the previous field.
            if !headers.isEmpty {
                headers[headers.count - 1].value += " " + line.trimmingWhitespace()
            }
        } else if let colon = line.firstIndex(of: ":") {
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...]).trimmingWhitespace()
            headers.append((name: name, value: value))
        }
        return true
    }
}

private extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}

// libcurl calls these C function pointers; they cannot capture context, so the state comes
// in through `userdata`. Returning a count other than `size * count` aborts the transfer
// with CURLE_WRITE_ERROR (23); a non-zero xferinfo result with CURLE_ABORTED_BY_CALLBACK (42).

/// CURLOPT_WRITEFUNCTION: body bytes.
func edgeTransportWriteBody(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?
) -> Int {
    guard let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    guard length > 0, let data else { return length }
    return state.appendBody(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
}

/// CURLOPT_HEADERFUNCTION: one complete header line per call.
func edgeTransportWriteHeader(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?
) -> Int {
    guard let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    guard length > 0, let data else { return length }
    return state.appendHeaderLine(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
}

/// CURLOPT_READFUNCTION: the next bytes of the request body.
func edgeTransportReadBody(
    _ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?
) -> Int {
    guard let userdata, let buffer else { return Int(CURL_READFUNC_ABORT) }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    return state.readBody(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}

/// CURLOPT_SEEKFUNCTION: see `TransferState.rewindBody`.
func edgeTransportSeekBody(_ userdata: UnsafeMutableRawPointer?, _ offset: curl_off_t, _ origin: Int32) -> Int32 {
    guard let userdata, origin == SEEK_SET else { return CURL_SEEKFUNC_FAIL }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    return state.rewindBody(to: Int64(offset)) ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL
}

/// CURLOPT_XFERINFOFUNCTION: called often during a transfer and about once a second when
/// idle; aborts the transfer once the request is cancelled.
func edgeTransportTransferInfo(
    _ userdata: UnsafeMutableRawPointer?, _ downloadTotal: curl_off_t, _ downloadNow: curl_off_t,
    _ uploadTotal: curl_off_t, _ uploadNow: curl_off_t
) -> Int32 {
    guard let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    return state.shouldAbort() ? 1 : 0
}
