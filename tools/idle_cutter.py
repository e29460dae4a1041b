#!/usr/bin/env python3
"""A TCP relay that behaves like a firewall with a short idle timeout (Python standard library).

It forwards every connection to an upstream address. Once a connection has carried no byte in
either direction for --idle seconds, the relay "forgets" it, as a firewall or NAT box does:

  silent (default)  stops forwarding and never closes: bytes from either side are read and
                    dropped, nothing is answered, no FIN, no RST. The client learns nothing
                    until its own timeout. This is the case `edgebuf doctor --idle-probe` must
                    recognise (seeds 000/001), and TCP keepalive cannot rescue it here.
  close             closes both sides (FIN).
  reset             resets the client side (RST) and closes the upstream side.

Start:
    python3 tools/idle_cutter.py --upstream HOST:PORT --idle SECONDS [--mode silent|close|reset]
        [--listen-host 127.0.0.1] [--port 0] [--ready-file FILE]

When listening it prints ONE JSON line to stdout and writes it atomically to --ready-file:
{"port": PORT, "pid": PID}. SIGTERM or SIGINT stops it at once (open connections are dropped).
TLS passes through untouched: the client's handshake is with the upstream server.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

CHUNK = 64 * 1024


def relay(client: socket.socket, upstream_address, idle: float, mode: str, stopping: threading.Event):
    try:
        upstream = socket.create_connection(upstream_address, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer = {client: upstream, upstream: client}
    last_activity = time.monotonic()
    cut = False
    try:
        while not stopping.is_set():
            readable, _, _ = select.select([client, upstream], [], [], 0.05)
            if not cut and time.monotonic() - last_activity > idle:
                cut = True
                if mode == "close":
                    return
                if mode == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
            for sock in readable:
                data = sock.recv(CHUNK)
                if not data:
                    return  # one side closed: close the other (in finally)
                if cut:
                    continue  # forgotten: swallow it, answer nothing
                peer[sock].sendall(data)
                last_activity = time.monotonic()
    except OSError:
        pass
    finally:
        for sock in (client, upstream):
            try:
                sock.close()
            except OSError:
                pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--idle", type=float, required=True, help="seconds without a byte before a connection is forgotten")
    parser.add_argument("--mode", choices=("silent", "close", "reset"), default="silent")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file")
    args = parser.parse_args(argv)

    host, _, port = args.upstream.rpartition(":")
    upstream_address = (host.strip("[]"), int(port))
    stopping = threading.Event()

    listener = socket.socket(socket.AF_INET6 if ":" in args.listen_host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen_host, args.port))
    listener.listen(64)
    listener.settimeout(0.1)

    def stop(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    ready = json.dumps({"port": listener.getsockname()[1], "pid": os.getpid()})
    if args.ready_file:
        temporary = args.ready_file + ".tmp"
        with open(temporary, "w") as f:
            f.write(ready + "\n")
        os.replace(temporary, args.ready_file)
    print(ready, flush=True)

    while not stopping.is_set():
        try:
            client, _ = listener.accept()
        except socket.timeout:
            continue
        except OSError:
            if stopping.is_set():
                break
            raise
        client.settimeout(None)
        threading.Thread(target=relay, args=(client, upstream_address, args.idle, args.mode, stopping), daemon=True).start()
    listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
