/// Takes the body of a 200 answer as it arrives, instead of the transfer holding it whole.
///
/// Called on the transfer's own thread, once per piece libcurl delivers (up to
/// CURLOPT_BUFFERSIZE bytes), in order; never after the request's result is delivered. The
/// sink bounds its own memory: `TransportConfiguration.maximumResponseBodyBytes` does not
/// apply to a streamed body, and the request's timeout bounds the wait for the body and each
/// silence within it instead of the whole transfer. Answers with another status are held in memory as usual (within
/// the limit) and reach the caller as `HTTPResponse.body`; the sink sees none of their bytes.
public protocol ResponseBodySink: AnyObject, Sendable {
    /// The next bytes of the body. False aborts the transfer (curl 23, `.responseRefused`).
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool
}
