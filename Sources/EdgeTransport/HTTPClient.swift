import Logging

/// The Sendable, async face of the transport: one kept-alive HTTPS connection served by a
/// dedicated thread, one request at a time (concurrent `send` calls queue up in order).
///
/// Cancelling the calling task aborts the request: a queued one at once, a running one
/// within about a second. Call `shutdown()` when done; dropping the last reference also
/// stops the thread, but without waiting for it.
public final class HTTPClient: Sendable {
    /// The configuration the connection was created with.
    public let configuration: TransportConfiguration
    private let worker: HTTPWorkerThread
    private let logger: Logger

    /// Starts the connection thread. Throws `.invalidConfiguration` when libcurl rejects the
    /// configuration (nothing is sent until the first request).
    public init(configuration: TransportConfiguration = .default, logger: Logger) throws(TransportError) {
        self.configuration = configuration
        self.logger = logger
        worker = try HTTPWorkerThread(configuration: configuration, name: "edgebuf-http")
    }

    deinit {
        worker.stop()
    }

    /// Sends `request` and returns the complete response; any HTTP status is a response,
    /// only transport failures throw.
    public func send(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse {
        let cancellation = CancellationFlag()
        let worker = self.worker
        let started = ContinuousClock.now
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (completion: HTTPWorkerThread.Completion) in
                worker.submit(.init(request: request, cancellation: cancellation, completion: completion))
            }
        } onCancel: {
            cancellation.cancel()
            worker.withdraw(cancellation)
        }
        log(request, result, elapsed: ContinuousClock.now - started)
        return try result.get()
    }

    /// Stops accepting requests, fails queued ones with `.shutDown`, lets the running one
    /// finish, and returns when the thread has exited and the connection is closed.
    public func shutdown() async {
        worker.stop()
        await worker.waitUntilStopped()
    }

    private func log(_ request: HTTPRequest, _ result: Result<HTTPResponse, TransportError>, elapsed: Duration) {
        // URL without userinfo/query; never headers or bodies.
        var metadata: Logger.Metadata = [
            "edgebuf.http.method": "\(request.method)",
            "edgebuf.http.url": "\(TransportError.redact(url: request.url))",
            "edgebuf.http.duration_ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
        ]
        switch result {
        case .success(let response):
            metadata["edgebuf.http.status"] = "\(response.status)"
            metadata["edgebuf.http.new_connection"] = "\(response.newConnection)"
            metadata["edgebuf.http.bytes_sent"] = "\(response.bytesSent)"
            logger.debug("HTTP request completed", metadata: metadata)
        case .failure(let error):
            metadata["edgebuf.http.error"] = "\(error.label)"
            metadata["edgebuf.http.transient"] = "\(error.isTransient)"
            logger.debug("HTTP request failed", metadata: metadata)
        }
    }
}
