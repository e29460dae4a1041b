import Foundation

/// The loopback sink the drain benchmark posts to: an nginx of our own on 127.0.0.1 (plain
/// HTTP, a port the kernel picked), in the foreground (`daemon off`) so that its master is
/// our child and stops by pid. It answers IoTDA's `POST /v5/device-auth` with a token and
/// every other request with an empty 200.
///
/// For `return`, nginx discards the request body: it still reads every byte off the socket
/// (and only then logs the request and keeps the connection alive), it just does not buffer
/// it. `checkDelivery` verifies that from the access log: 200s, the Content-Lengths we sent,
/// and a connection that is reused, which nginx only does once a body is fully consumed.
final class NginxSink {
    static let binary = "/usr/sbin/nginx"
    /// A token of the 32+ characters IoTDA hands out; the answer shape is IoTDA's.
    static let authAnswer = #"{"access_token":"0123456789abcdef0123456789abcdef","expires_in":86399}"#

    let directory: String
    let port: UInt16
    let pid: pid_t
    var url: String { "http://127.0.0.1:\(port)" }
    private var accessLogPath: String { directory + "/access.log" }
    private var errorLogPath: String { directory + "/error.log" }
    private var stopped = false

    /// Starts nginx with its config, pid file, logs and temp paths in a new directory under
    /// `parent`; returns once it accepts connections.
    init(under parent: String) throws {
        directory = try ChildProcesses.makeDirectory(under: parent, prefix: "nginx")
        port = try Self.freePort()
        let config = directory + "/nginx.conf"
        try Self.configuration(directory: directory, port: port).write(toFile: config, atomically: true, encoding: .utf8)
        pid = try ChildProcesses.spawn(Self.binary, ["-c", config, "-p", directory + "/", "-e", directory + "/error.log"])
        let deadline = ContinuousClock.now + .seconds(10)
        while !Self.accepts(port: port) {
            if ChildProcesses.hasExited(pid) || ContinuousClock.now > deadline {
                let log = (try? String(contentsOfFile: errorLogPath, encoding: .utf8)) ?? ""
                ChildProcesses.stop(pid)
                ChildProcesses.removeDirectory(directory)
                throw BenchError("nginx did not start on 127.0.0.1:\(port): \(log.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            usleep(5_000)
        }
    }

    deinit { stop() }

    /// Stops nginx (fast shutdown) and removes its directory.
    func stop() {
        guard !stopped else { return }
        stopped = true
        ChildProcesses.stop(pid)
        ChildProcesses.removeDirectory(directory)
    }

    static func configuration(directory d: String, port: UInt16) -> String {
        """
        daemon off;
        worker_processes 1;
        pid \(d)/nginx.pid;
        error_log \(d)/error.log warn;
        events { worker_connections 64; }
        http {
            # $msec is the time the line is written: after the whole body was read.
            log_format sink '$msec $connection $connection_requests $status $request_method $uri $content_length';
            access_log \(d)/access.log sink;
            client_body_temp_path \(d)/client_body;
            proxy_temp_path \(d)/proxy;
            fastcgi_temp_path \(d)/fastcgi;
            uwsgi_temp_path \(d)/uwsgi;
            scgi_temp_path \(d)/scgi;
            client_max_body_size 2m;
            # IoTDA's token header is access_token; nginx drops underscored names by default.
            underscores_in_headers on;
            # One kept-alive connection for the whole run, as the engine keeps with a platform.
            keepalive_requests 1000000;
            keepalive_timeout 300s;
            server {
                listen 127.0.0.1:\(port);
                location = /v5/device-auth {
                    default_type application/json;
                    return 200 '\(authAnswer)';
                }
                location / { return 200; }
            }
        }

        """
    }

    /// A port the kernel considers free on 127.0.0.1 (bound to port 0, then released).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 ? getsockname(fd, pointer, &length) : -1
            }
        }
        guard rc == 0 else { throw BenchError("cannot get a free port: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }

    static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    // MARK: The access log

    /// One access log line.
    struct Request {
        /// $msec in ms (nginx's cached time, ms resolution: truncated, so up to 1 ms early).
        let milliseconds: Int64
        let connection: Int
        let connectionRequests: Int
        let status: Int
        let method: String
        let uri: String
        let contentLength: Int
        var isReport: Bool { uri.hasSuffix("/sys/properties/report") }
    }

    /// Every request logged so far, in order.
    func requests() throws -> [Request] {
        let text = (try? String(contentsOfFile: accessLogPath, encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { line in
            let f = line.split(separator: " ")
            guard f.count == 7, let ms = Int64(f[0].replacingOccurrences(of: ".", with: "")),
                  let connection = Int(f[1]), let serial = Int(f[2]), let status = Int(f[3]) else {
                throw BenchError("unexpected nginx access log line: \(line)")
            }
            return Request(milliseconds: ms, connection: connection, connectionRequests: serial, status: status,
                           method: String(f[4]), uri: String(f[5]), contentLength: Int(f[6]) ?? 0)
        }
    }

    /// What nginx saw of a phase's report POSTs.
    struct Delivery {
        var requests = 0
        var bodyBytes = 0
        var connections = 0
        var summary: String { "\(requests) POSTs, \(connections) connection\(connections == 1 ? "" : "s")" }
    }

    /// The report POSTs logged after the first `since` lines; throws unless every one got a
    /// 200 and their bodies add up to `expectedBytes` (when given).
    func checkDelivery(since: Int, expectedBytes: Int? = nil) throws -> Delivery {
        let reports = try requests().dropFirst(since).filter(\.isReport)
        var delivery = Delivery()
        delivery.requests = reports.count
        delivery.bodyBytes = reports.reduce(0) { $0 + $1.contentLength }
        delivery.connections = Set(reports.map(\.connection)).count
        if let bad = reports.first(where: { $0.status != 200 || $0.method != "POST" }) {
            throw BenchError("nginx logged \(bad.method) \(bad.uri) with status \(bad.status), expected POST with 200")
        }
        if let expectedBytes, expectedBytes != delivery.bodyBytes {
            throw BenchError("nginx received \(delivery.bodyBytes) body bytes, \(expectedBytes) were sent")
        }
        return delivery
    }
}
