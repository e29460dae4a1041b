import EdgeBuffer
import Foundation
import NIOSSL

/// `[ingest]`: the local HTTP server `edgebuf run` serves the platforms' device APIs on.
public struct IngestConfiguration: Sendable {
    /// Where TCP is served: a host (IPv4 or IPv6 literal, or `localhost`) and a port.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        /// Whether only this machine can reach it.
        public var isLoopback: Bool {
            host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public static let defaultListen = Address(host: "127.0.0.1", port: 8780)
    public static let defaultMaxConnections = 256
    /// The platforms' request limit (IoTDA: 1 MB).
    public static let defaultMaxBodyBytes = 1 << 20
    public static let defaultMaxBufferedBytes = 16 << 20

    /// Whether `[ingest]` is in the configuration (then `edgebuf run` serves it).
    public var isConfigured = false
    public var listen = defaultListen
    /// A unix socket to serve as well (created 0660).
    public var unixSocket: String?
    /// The token every request must carry (`Authorization: Bearer`), and the secret IoTDA
    /// clients sign `device-auth` with. Never logged.
    public var token: Secret?
    /// HTTPS on `listen` (the unix socket stays plain: it is local and 0660), loaded and
    /// checked at startup.
    public var tls: NIOSSLContext?
    /// Which files `tls` was loaded from, with their sizes and modification times: what a
    /// reload compares (a renewed certificate restarts the server), never the key itself.
    public var tlsSource: String?
    /// Connections open at once; more are closed at accept.
    public var maxConnections = defaultMaxConnections
    /// A request body over this is answered 413 before it is read whole.
    public var maxBodyBytes = defaultMaxBodyBytes
    /// Body bytes all connections together may hold while reading; a request that would go
    /// over it is answered 503 (retry later), so memory does not grow with the connections.
    public var maxBufferedBytes = defaultMaxBufferedBytes
    /// From the first byte of a request to the end of its head.
    public var headerTimeout: Duration = .seconds(10)
    /// A keep-alive connection with no request for this long is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// From the end of the head to the end of the body (a client that trickles is cut).
    public var bodyTimeout: Duration = .seconds(30)

    public init() {}
}

extension IngestConfiguration {
    /// Reads `[ingest]`; refuses an unsafe combination, naming the key.
    public init(document: ConfigDocument) throws {
        self.init()
        isConfigured = document.contains("ingest")
        let section = try document.section("ingest")
        if let text = try section.string("listen") {
            guard let address = Self.parseAddress(text) else {
                throw section.error("listen", "\"\(text.prefix(80))\" is not host:port (e.g. \"127.0.0.1:8780\" or \"[::1]:8780\")")
            }
            listen = address
        }
        if let path = try section.string("unix_socket") {
            guard path.hasPrefix("/"), path.utf8.count < 100 else {
                throw section.error("unix_socket", "must be an absolute path shorter than 100 bytes")
            }
            unixSocket = path
        }
        token = try section.secret("token")
        if let token {
            guard token.value.utf8.count >= 16, token.value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw section.error("token", "must be at least 16 printable characters without spaces (e.g. from `openssl rand -hex 16`)")
            }
        }
        let cert = try section.string("cert_file")
        let key = try section.string("key_file")
        switch (cert, key) {
        case (nil, nil): break
        case (let cert?, let key?):
            tls = try Self.loadTLS(cert: cert, key: key, section: section)
            tlsSource = [cert, key].map(Self.fileStamp).joined(separator: " ")
        case (nil, _?): throw section.error("cert_file", "is missing: HTTPS needs both cert_file and key_file")
        case (_?, nil): throw section.error("key_file", "is missing: HTTPS needs both cert_file and key_file")
        }
        if !listen.isLoopback {
            // Off loopback, anyone on the network could store records: the token, and TLS so
            // that the token does not travel in clear, are both required.
            if token == nil {
                throw section.error("token", "is required when ingest.listen (\(listen)) is not a loopback address; set it (e.g. from `openssl rand -hex 16`) or listen on 127.0.0.1")
            }
            if tls == nil {
                throw section.error("cert_file", "is required when ingest.listen (\(listen)) is not a loopback address, so the token does not travel in clear; set cert_file and key_file or listen on 127.0.0.1")
            }
        }
        if let n = try section.int("max_connections", range: 1...100_000) { maxConnections = Int(n) }
        if let b = try section.bytes("max_body_bytes", range: 1024...(64 << 20)) { maxBodyBytes = Int(b) }
        if let b = try section.bytes("max_buffered_bytes", range: 1024...(1 << 34)) { maxBufferedBytes = Int(b) }
        guard maxBufferedBytes >= maxBodyBytes else {
            throw section.error("max_buffered_bytes", "must be at least ingest.max_body_bytes (\(maxBodyBytes) bytes), or no request of the largest size could be read")
        }
        if let s = try section.seconds("header_timeout", range: 0.1...3600) { headerTimeout = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("idle_timeout", range: 0.1...86400) { idleTimeout = .milliseconds(Int64(s * 1000)) }
        if let s = try section.seconds("body_timeout", range: 0.1...3600) { bodyTimeout = .milliseconds(Int64(s * 1000)) }
    }

    /// The certificate chain and key as NIO's TLS context (TLS 1.2 or newer). A key file that
    /// others may read is refused: the key would not be secret.
    static func loadTLS(cert: String, key: String, section: ConfigSection) throws -> NIOSSLContext {
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(cert) } catch {
            throw section.error("cert_file", "cannot be read as a PEM certificate chain (\(cert)): \(error)")
        }
        guard !certificates.isEmpty else { throw section.error("cert_file", "holds no PEM certificate (\(cert))") }
        var info = stat()
        guard stat(key, &info) == 0 else { throw section.error("key_file", "cannot be read (\(key)): \(String(cString: strerror(errno)))") }
        if info.st_mode & 0o077 != 0 {
            throw section.error("key_file", "may be read by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 \(key)")
        }
        let privateKey: NIOSSLPrivateKey
        do { privateKey = try NIOSSLPrivateKey(file: key, format: .pem) } catch {
            throw section.error("key_file", "cannot be read as a PEM private key (\(key)): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: certificates.map { .certificate($0) },
                                                                     privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw section.error("key_file", "does not go with cert_file (\(error))")
        }
    }

    /// `path:size:mtime` of a file.
    static func fileStamp(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return path }
        return "\(path):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }

    /// `host:port`, `[v6]:port`.
    static func parseAddress(_ text: String) -> Address? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return Address(host: String(host), port: port)
    }
}

/// Two configurations are equal when every setting is and the TLS files are the same ones,
/// unchanged (`NIOSSLContext` itself cannot be compared).
extension IngestConfiguration: Equatable {
    public static func == (a: IngestConfiguration, b: IngestConfiguration) -> Bool {
        a.isConfigured == b.isConfigured && a.listen == b.listen && a.unixSocket == b.unixSocket
            && a.token == b.token && a.tlsSource == b.tlsSource && (a.tls == nil) == (b.tls == nil)
            && a.maxConnections == b.maxConnections && a.maxBodyBytes == b.maxBodyBytes
            && a.maxBufferedBytes == b.maxBufferedBytes && a.headerTimeout == b.headerTimeout
            && a.idleTimeout == b.idleTimeout && a.bodyTimeout == b.bodyTimeout
    }
}
