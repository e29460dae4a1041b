import EdgeBuffer
import EdgeStore
import Logging
import NIOCore
import NIOHTTP1

/// Everything the connections of one server share.
final class IngestShared: Sendable {
    let configuration: IngestConfiguration
    let processor: RequestProcessor
    let outbox: Outbox
    let status: IngestStatus
    let counters: IngestCounters
    let budget: BodyBudget
    let inFlight = InFlight()
    let logger: Logger

    init(configuration: IngestConfiguration, processor: RequestProcessor, outbox: Outbox, status: IngestStatus,
         counters: IngestCounters, logger: Logger) {
        self.configuration = configuration
        self.processor = processor
        self.outbox = outbox
        self.status = status
        self.counters = counters
        self.budget = BodyBudget(limit: configuration.maxBufferedBytes)
        self.logger = logger
    }
}

/// Tells the request handler that bytes arrived, so the header timeout starts at a request's
/// first byte (the idle timeout runs until then). Sits before NIO's HTTP decoder.
final class FirstByteWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var onBytes: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onBytes?()
        context.fireChannelRead(data)
    }
}

/// One connection's requests: checks each head, collects the body within the limits, commits
/// the records through the outbox's group-commit writer and answers only after the commit.
/// Runs on the connection's event loop; the commit completes on the writer thread and hops
/// back.
final class IngestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Phase {
        /// Between requests (idle timeout).
        case idle
        /// Bytes of a head arrived (header timeout).
        case head
        /// Reading the body (body timeout).
        case body
        /// The body is not kept; `pending` is answered at the end of the request.
        case discarding(pending: IngestResponse?)
        /// Waiting for the commit or the database.
        case processing
        /// Answered with `close`; nothing more is read.
        case closing
    }

    let shared: IngestShared
    private var phase = Phase.idle
    private var timer: Scheduled<Void>?
    private var route = IngestRoute.notFound
    private var head = RequestProcessor.Head(method: "", uri: "")
    private var version = HTTPVersion.http1_1
    private var keepAlive = true
    private var body: ByteBuffer?
    private var reserved = 0
    private var knownLength = false

    init(shared: IngestShared) { self.shared = shared }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context, shared.configuration.idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        releaseBody()
    }

    /// Called by `FirstByteWatcher`.
    func bytesArrived(context: ChannelHandlerContext) {
        if case .idle = phase {
            phase = .head
            arm(context, shared.configuration.headerTimeout)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request): receivedHead(context, request)
        case .body(var chunk): receivedBody(context, &chunk)
        case .end: receivedEnd(context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Decoder errors were answered (400) by NIO's HTTPServerProtocolErrorHandler.
        context.close(promise: nil)
    }

    // MARK: Request parts

    private func receivedHead(_ context: ChannelHandlerContext, _ request: HTTPRequestHead) {
        route = IngestRoute(method: request.method.rawValue, uri: request.uri)
        version = request.version
        keepAlive = request.isKeepAlive
        let lengthHeader = request.headers.first(name: "content-length")
        let length = lengthHeader.flatMap { Int($0) }
        knownLength = length != nil
        head = RequestProcessor.Head(method: request.method.rawValue, uri: request.uri,
                                     authorization: request.headers.first(name: "authorization"),
                                     accessToken: request.headers.first(name: "access_token"),
                                     recordClass: request.headers.first(name: "edgebuf-class"),
                                     contentLength: length)
        let expectsContinue = request.headers.first(name: "expect")?.lowercased() == "100-continue"
        let now = Timestamp.nowMilliseconds()
        if let refusal = shared.processor.admit(head, route: route, now: now) {
            if refusal.close || expectsContinue {
                var answer = refusal
                answer.close = true
                respond(context, answer)
            } else {
                phase = .discarding(pending: refusal)
                arm(context, shared.configuration.bodyTimeout)
            }
            return
        }
        if let length, length > 0 {
            guard shared.budget.reserve(length) else { return busy(context) }
            reserved = length
        }
        body = context.channel.allocator.buffer(capacity: min(length ?? 0, shared.configuration.maxBodyBytes))
        phase = .body
        arm(context, shared.configuration.bodyTimeout)
        if expectsContinue {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .continue))), promise: nil)
        }
    }

    private func receivedBody(_ context: ChannelHandlerContext, _ chunk: inout ByteBuffer) {
        guard case .body = phase, body != nil else { return }  // discarded or already answered
        let total = body!.readableBytes + chunk.readableBytes
        if total > shared.configuration.maxBodyBytes {
            releaseBody()
            return respond(context, shared.processor.tooLarge(route))
        }
        if !knownLength {
            guard shared.budget.reserve(chunk.readableBytes) else { return busy(context) }
            reserved += chunk.readableBytes
        }
        body!.writeBuffer(&chunk)
    }

    private func receivedEnd(_ context: ChannelHandlerContext) {
        switch phase {
        case .discarding(let pending):
            if let pending { respond(context, pending) }
            return
        case .body:
            break
        default:
            return
        }
        phase = .processing
        timer?.cancel()
        timer = nil
        let bytes = body.map { Array($0.readableBytesView) } ?? []
        releaseBody()
        let route = self.route
        let decision = shared.processor.decide(head, route: route, body: bytes, now: Timestamp.nowMilliseconds())
        switch decision {
        case .respond(let response):
            respond(context, response)
        case .store(let records, let answer):
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            shared.inFlight.enter()
            let inFlight = shared.inFlight
            shared.outbox.submit(records) { result in
                // On the writer thread, after the commit (or its rollback).
                let response: IngestResponse
                switch result {
                case .success(let ids): response = answer(ids)
                case .failure(let error): response = RequestProcessor.failure(route: route, error: error)
                }
                loop.execute {
                    let (handler, context) = bound.value
                    handler.respond(context, response)
                    inFlight.leave()
                }
            }
        case .status(let route):
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            let shared = self.shared
            shared.status.queue.async {
                let response = route == .health ? shared.status.health() : shared.status.metrics(counters: shared.counters)
                loop.execute {
                    let (handler, context) = bound.value
                    handler.respond(context, response)
                }
            }
        }
    }

    // MARK: Answers

    private func busy(_ context: ChannelHandlerContext) {
        releaseBody()
        var response = IngestResponse.error(route, status: 503, message: "edgebuf is reading too many request bodies at once (ingest.max_buffered_bytes); nothing was stored. Retry in a moment.")
        response.headers["retry-after"] = "1"
        response.close = true
        respond(context, response)
    }

    func respond(_ context: ChannelHandlerContext, _ response: IngestResponse) {
        if case .closing = phase { return }
        shared.counters.count(route, status: response.status)
        let close = response.close || !keepAlive
        var headers = HTTPHeaders()
        if let type = response.contentType { headers.add(name: "content-type", value: type) }
        headers.add(name: "content-length", value: String(response.body.count))
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        if close { headers.add(name: "connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if !response.body.isEmpty && head.method != "HEAD" {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            phase = .closing
            timer?.cancel()
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            phase = .idle
            arm(context, shared.configuration.idleTimeout)
        }
    }

    // MARK: Timers and memory

    private func arm(_ context: ChannelHandlerContext, _ timeout: Duration) {
        timer?.cancel()
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) { [self] in
            self.timedOut(context)
        }
    }

    private func timedOut(_ context: ChannelHandlerContext) {
        timer = nil
        switch phase {
        case .body, .discarding:
            releaseBody()
            var response = IngestResponse.error(route, status: 408, message: "the request was not received in time (ingest.body_timeout); nothing was stored")
            response.close = true
            respond(context, response)
        case .idle, .head:
            phase = .closing
            context.close(promise: nil)
        case .processing, .closing:
            break
        }
    }

    private func releaseBody() {
        shared.budget.release(reserved)
        reserved = 0
        body = nil
    }
}
