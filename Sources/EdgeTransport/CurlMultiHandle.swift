import CCurl

/// A libcurl multi handle that runs one easy transfer at a time for `HTTPConnection`.
///
/// `curl_easy_perform` polls its sockets with a timeout of at most one second, so a long poll
/// held for minutes woke its thread every second (issue 12). Here the thread sleeps in
/// `curl_multi_poll` until a socket is ready, one of libcurl's own timers is due (the
/// request's timeout, a connect timeout), or `cancel()` on the request's `CancellationFlag`
/// calls `curl_multi_wakeup`. The connection cache lives in the multi handle, which lives as
/// long as the connection: kept-alive connections are reused as before.
///
/// Not Sendable, like the easy handle: used by the connection's own thread only (only
/// `curl_multi_wakeup` may be called from elsewhere, which libcurl allows).
final class CurlMultiHandle {
    let raw: UnsafeMutableRawPointer

    init() throws(TransportError) {
        try Curl.initializeOnce()
        guard let multi = curl_multi_init() else {
            throw TransportError(invalidConfiguration: "curl_multi_init returned NULL (out of memory?)", curlCode: nil)
        }
        raw = multi
    }

    deinit {
        curl_multi_cleanup(raw)
    }

    /// The longest sleep without a timer of libcurl's: only a backstop, a socket event or a
    /// wakeup ends it first.
    static let backstopMilliseconds = 3_600_000

    /// Runs `easy`'s transfer to the end (blocking) and returns its result code:
    /// CURLE_ABORTED_BY_CALLBACK once `cancellation` is set, as the progress callback gives.
    func perform(_ easy: CurlEasyHandle, cancellation: CancellationFlag) -> CURLcode {
        guard curl_multi_add_handle(raw, easy.raw) == CURLM_OK else { return CURLE_FAILED_INIT }
        defer { curl_multi_remove_handle(raw, easy.raw) }
        let waker = MultiWaker(multi: raw)
        cancellation.setWaker { waker.wake() }
        defer { cancellation.setWaker(nil) }
        while true {
            var running: Int32 = 0
            guard curl_multi_perform(raw, &running) == CURLM_OK else { return CURLE_OUT_OF_MEMORY }
            if running == 0 { break }
            if cancellation.isCancelled { return CURLE_ABORTED_BY_CALLBACK }
            var timeout = -1
            guard curl_multi_timeout(raw, &timeout) == CURLM_OK else { return CURLE_OUT_OF_MEMORY }
            let wait = timeout < 0 ? Self.backstopMilliseconds : min(timeout, Self.backstopMilliseconds)
            if wait > 0 {
                guard curl_multi_poll(raw, nil, 0, Int32(wait), nil) == CURLM_OK else { return CURLE_OUT_OF_MEMORY }
            }
        }
        var queued: Int32 = 0
        while let message = curl_multi_info_read(raw, &queued) {
            if message.pointee.msg == CURLMSG_DONE && message.pointee.easy_handle == easy.raw {
                return message.pointee.data.result
            }
        }
        return CURLE_FAILED_INIT  // not reached: a finished transfer always leaves its message
    }
}

/// The multi handle's address, to wake its poll from the cancelling thread.
/// `@unchecked Sendable`: `curl_multi_wakeup` is the one libcurl call made with it, and
/// libcurl documents it as callable from any thread.
private struct MultiWaker: @unchecked Sendable {
    let multi: UnsafeMutableRawPointer
    func wake() { _ = curl_multi_wakeup(multi) }
}
