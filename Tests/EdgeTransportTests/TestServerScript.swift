/// The HTTPS test server, a real third-party stack (Python's http.server + ssl), written
/// into a temporary directory and run as a subprocess. It binds port 0 and prints
/// `port N`; afterwards one line per event (`request METHOD PATH CLIENTPORT`, `hang`,
/// `hang-end`, `tls VERSION`, `tls-error NAME`, `connect TARGET`).
enum TestServerScript {
    static let source = #"""
    import argparse, http.server, json, os, select, ssl, sys, threading, time

    parser = argparse.ArgumentParser()
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--client-ca")
    parser.add_argument("--tls-max")
    parser.add_argument("--connect-status", type=int, default=405)
    args = parser.parse_args()

    def log(*parts):
        print(*parts, flush=True)

    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        if args.tls_max == "1.1":
            # OpenSSL 3 refuses TLS < 1.2 at its default security level.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without it keep-alive requests stall ~40 ms (Nagle + delayed ACK on loopback).
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):
            pass

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_CONNECT(self):
            log("connect", self.path)
            self.close_connection = True
            self.reply(args.connect_status)

        def handle_any(self):
            path, _, query = self.path.partition("?")
            q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            log("request", self.command, path, self.client_address[1])
            if path == "/echo":
                out = json.dumps({
                    "method": self.command,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "bodyLength": len(body),
                    "bodySum": sum(body) & 0xFFFFFFFF,
                    "clientPort": self.client_address[1],
                }).encode()
                self.reply(200, out, [("Content-Type", "application/json"), ("X-Echo", "yes")])
            elif path == "/bytes":
                size = int(q.get("n", "0"))
                if q.get("chunked") == "1":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    # pause: seconds between chunks; stall: seconds of silence after half.
                    pause = float(q.get("pause", "0"))
                    stall = float(q.get("stall", "0"))
                    left = size
                    while left:
                        k = min(left, 1000)
                        self.wfile.write(b"%x\r\n" % k + b"x" * k + b"\r\n")
                        self.wfile.flush()
                        left -= k
                        if pause:
                            time.sleep(pause)
                        if stall and left <= size // 2:
                            time.sleep(stall)
                            stall = 0
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.reply(200, b"x" * size)
            elif path == "/status":
                extra = [("Retry-After", q["retry-after"])] if "retry-after" in q else []
                self.reply(int(q.get("code", "200")), b"", extra)
            elif path == "/hang":
                log("hang")
                try:
                    while self.connection.recv(1024):
                        pass
                except OSError:
                    pass
                log("hang-end")
                self.close_connection = True
            elif path == "/close":
                self.close_connection = True
            else:
                self.reply(404)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def finish_request(self, request, client_address):
            # Handshake on the connection's own thread, so a stuck client blocks nobody.
            if ctx is not None:
                # Handshake by hand: wrap_socket's own handshake closes the socket when it
                # fails, with the client's request (TLS 1.3 clients send it at once) unread,
                # and that close is a RST that can overtake the alert: the client would see
                # a reset instead of "certificate required".
                request = ctx.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
                try:
                    request.do_handshake()
                except (ssl.SSLError, OSError) as error:
                    log("tls-error", type(error).__name__)
                    # The alert is out; read the raw bytes until the client closes (2 s at most).
                    try:
                        fd = request.fileno()
                        deadline = time.monotonic() + 2
                        while time.monotonic() < deadline:
                            ready, _, _ = select.select([fd], [], [], 0.2)
                            if ready and not os.read(fd, 4096):
                                break
                    except OSError:
                        pass
                    request.close()
                    return
                log("tls", request.version())
            self.RequestHandlerClass(request, client_address, self)

    def exit_with_parent():
        # stdin is a pipe held by the test process: EOF means it is gone (even if it was
        # killed), so no server outlives its test run.
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    server = Server(("127.0.0.1", 0), Handler)
    log("port", server.server_address[1])
    server.serve_forever()
    """#
}
