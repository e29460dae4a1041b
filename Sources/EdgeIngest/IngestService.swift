import EdgeBuffer
import EdgeStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// Requests waiting for their commit; shutdown waits for them to be answered.
final class InFlight: Sendable {
    private let count = Atomic<Int>(0)
    func enter() { count.add(1, ordering: .relaxed) }
    func leave() { count.subtract(1, ordering: .relaxed) }
    var isEmpty: Bool { count.load(ordering: .relaxed) == 0 }
}

/// The local ingest server of `edgebuf run`: the platforms' device APIs and `/v1/records` on
/// loopback (and a unix socket), each request answered only after its records are committed
/// by the outbox's group-commit writer, like every other producer's.
///
/// Why SwiftNIO: NIOHTTP1 is the Swift server ecosystem's HTTP/1.1 implementation (llhttp
/// inside), with the header limits, pipelining and keep-alive handling a hand-written parser
/// would get wrong; one event-loop thread serves every connection with a bounded buffer each.
///
/// A Service: on graceful shutdown it stops accepting, lets the requests waiting for a commit
/// be answered, closes the outbox (which commits what is queued) and the connections.
public final class IngestService: Service, Sendable {
    public let configuration: IngestConfiguration
    let shared: IngestShared
    let logger: Logger
    /// The addresses actually bound, once serving (port 0 gets one from the kernel).
    public let boundAddresses = Mutex<[String]>([])

    /// `outbox` is owned by the service from here on: it is closed when `run()` returns.
    public init(configuration: IngestConfiguration, recordLimit: Int, outbox: Outbox, databasePath: String,
                databaseOptions: DatabaseOptions, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let processor = RequestProcessor(maxBodyBytes: configuration.maxBodyBytes, recordLimit: recordLimit,
                                         tokens: TokenBook(token: configuration.token?.value))
        self.shared = IngestShared(configuration: configuration, processor: processor, outbox: outbox,
                                   status: IngestStatus(path: databasePath, options: databaseOptions),
                                   counters: IngestCounters(), logger: logger)
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var channels: [any Channel] = []
        do {
            let bootstrap = makeBootstrap(group, tls: configuration.tls)
            let tcp = try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
            channels.append(tcp)
            let scheme = configuration.tls == nil ? "http" : "https"
            var addresses = [tcp.localAddress.map { "\(scheme)://\($0.ipAddress ?? configuration.listen.host):\($0.port ?? 0)" } ?? "\(configuration.listen)"]
            if let path = configuration.unixSocket {
                channels.append(try await bindUnixSocket(path, bootstrap: makeBootstrap(group, tls: nil)))
                addresses.append(path)
            }
            boundAddresses.withLock { $0 = addresses }
            logger.info("ingest serving", metadata: ["edgebuf.ingest.listen": "\(addresses.joined(separator: ", "))"])
        } catch {
            for channel in channels { try? await channel.close() }
            try? await group.shutdownGracefully()
            shared.outbox.close()
            throw IngestBindError(address: configuration.unixSocket.map { "\(configuration.listen) or \($0)" } ?? "\(configuration.listen)",
                                  reason: "\(error)")
        }
        try? await gracefulShutdown()
        for channel in channels { try? await channel.close() }
        // Requests waiting for their commit get their answer (at most a few seconds).
        let deadline = ContinuousClock.now + .seconds(5)
        while !shared.inFlight.isEmpty && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        shared.outbox.close()
        try? await group.shutdownGracefully()
        if let path = configuration.unixSocket { unlink(path) }
        logger.info("ingest stopped")
    }

    /// Binds the unix socket so that it is never reachable with other permissions than 0660:
    /// bound inside a fresh 0700 directory beside `path`, made 0660, then renamed into place
    /// (replacing a socket left by an earlier run; any other file there is refused).
    private func bindUnixSocket(_ path: String, bootstrap: ServerBootstrap) async throws -> any Channel {
        var info = stat()
        if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFSOCK {
            throw IngestBindError(address: path, reason: "a file that is not a socket is in the way")
        }
        let parent = (path as NSString).deletingLastPathComponent
        var template = Array("\(parent)/.edgebuf-ingest.XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw IngestBindError(address: path, reason: "cannot create a directory beside it (\(String(cString: strerror(errno))))")
        }
        let staging = String(cString: template)
        let temporary = staging + "/s"
        defer { unlink(temporary); rmdir(staging) }
        let channel = try await bootstrap.bind(unixDomainSocketPath: temporary).get()
        guard chmod(temporary, 0o660) == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            throw IngestBindError(address: path, reason: reason)
        }
        return channel
    }

    private func makeBootstrap(_ group: MultiThreadedEventLoopGroup, tls: NIOSSLContext?) -> ServerBootstrap {
        let shared = self.shared
        let limit = configuration.maxConnections
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                guard shared.counters.openConnection(limit: limit) else {
                    // Over ingest.max_connections: closed at once, costing nothing to keep.
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in shared.counters.closeConnection() }
                return channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    var limits = NIOHTTPDecoderLimitConfiguration()
                    limits.maxHeaderFieldSize = 16 << 10
                    limits.maxHeaderListSize = 32 << 10
                    limits.maxHeaderFieldCount = 100
                    try operations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true,
                                                               withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                                                               withDecoderLimitConfiguration: limits)
                    let handler = IngestHandler(shared: shared)
                    let watcher = FirstByteWatcher()
                    try operations.addHandler(watcher, position: .first)
                    // TLS in front of everything: the header timeout then covers the handshake.
                    if let tls { try operations.addHandler(NIOSSLServerHandler(context: tls), position: .first) }
                    try operations.addHandler(handler)
                    let context = try operations.context(handler: handler)
                    watcher.onBytes = { [unowned handler] in handler.bytesArrived(context: context) }
                }
            }
    }
}

/// The ingest address could not be served (in use, not permitted).
public struct IngestBindError: Error, Sendable, CustomStringConvertible {
    public let address: String
    public let reason: String
    public var description: String {
        "ingest cannot serve \(address): \(reason). Choose another ingest.listen (or unix_socket), or stop what uses it."
    }
}
