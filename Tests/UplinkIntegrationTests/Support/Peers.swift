import Foundation
import TestSupport

/// A throwaway CA and a server certificate for localhost, 127.0.0.1 and ::1, made with the
/// openssl CLI at test time in the caller's temporary directory (never committed).
struct TestCertificates {
    let caFile: String
    let certificate: String
    let key: String

    init(in directory: TemporaryDirectory) throws {
        func openssl(_ arguments: [String]) throws {
            let result = try run(try which("openssl"), arguments)
            guard result.status == 0 else { throw TestFailure("openssl \(arguments.first ?? ""): \(result.stderr)") }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        caFile = directory.file("ca.crt")
        certificate = directory.file("server.crt")
        key = directory.file("server.key")
        try openssl(["req", "-x509"] + ec + ["-keyout", directory.file("ca.key"), "-out", caFile, "-days", "2",
                     "-subj", "/O=edgebuf uplink tests/CN=Edgebuf Uplink Test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
            .write(toFile: directory.file("server.ext"), atomically: true, encoding: .utf8)
        try openssl(["req"] + ec + ["-keyout", key, "-out", directory.file("server.csr"), "-subj", "/CN=localhost"])
        try openssl(["x509", "-req", "-in", directory.file("server.csr"), "-CA", caFile, "-CAkey", directory.file("ca.key"),
                     "-CAcreateserial", "-out", certificate, "-days", "2", "-extfile", directory.file("server.ext")])
    }
}

/// nginx as a TLS 1.2-only front with IoTDA's 1 MB body limit, proxying to an upstream
/// (the HTTP simulator). `underscores_in_headers on`, or nginx drops `access_token`.
final class Nginx: @unchecked Sendable {
    let directory = TemporaryDirectory("edgebuf-nginx")
    let certificates: TestCertificates
    let port: Int
    let process: ChildProcess
    var url: String { "https://127.0.0.1:\(port)" }
    var caFile: String { certificates.caFile }
    var accessLog: String { directory.file("access.log") }

    init(upstreamPort: Int) throws {
        certificates = try TestCertificates(in: directory)
        port = try freePort()
        for name in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            try FileManager.default.createDirectory(atPath: directory.file(name), withIntermediateDirectories: true)
        }
        let d = directory.path
        // As root, workers would switch to nobody and could not use the 0700 temp directory.
        let user = geteuid() == 0 ? "user root root;" : ""
        let conf = """
            daemon off;
            worker_processes 1;
            pid \(d)/nginx.pid;
            error_log \(d)/error.log info;
            \(user)
            events { worker_connections 128; }
            http {
                log_format edgebuf '$status $request_length $content_length "$request"';
                access_log \(d)/access.log edgebuf;
                client_body_temp_path \(d)/body;
                proxy_temp_path \(d)/proxy;
                fastcgi_temp_path \(d)/fastcgi;
                uwsgi_temp_path \(d)/uwsgi;
                scgi_temp_path \(d)/scgi;
                server {
                    listen 127.0.0.1:\(port) ssl;
                    ssl_certificate \(certificates.certificate);
                    ssl_certificate_key \(certificates.key);
                    ssl_protocols TLSv1.2;
                    client_max_body_size 1m;
                    underscores_in_headers on;
                    location / {
                        proxy_pass http://127.0.0.1:\(upstreamPort);
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                    }
                }
            }
            """
        try conf.write(toFile: directory.file("nginx.conf"), atomically: true, encoding: .utf8)
        process = try ChildProcess(try which("nginx"), ["-p", d, "-c", directory.file("nginx.conf"), "-e", directory.file("error.log")],
                                   stdout: directory.file("stdout"), stderr: directory.file("stderr"))
        let port = self.port
        guard poll(timeout: .seconds(10), { isListening(port: port) || !process.isRunning }), process.isRunning else {
            let log = (try? String(contentsOfFile: directory.file("error.log"), encoding: .utf8)) ?? ""
            throw TestFailure("nginx did not start: \(process.stderrText) \(log)")
        }
    }

    deinit { process.stop() }

    /// The access log: one `status request_length content_length "request"` line per request.
    func accessLines() -> [String] {
        ((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}
