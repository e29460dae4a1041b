#!/usr/bin/env python3
"""The downlink benchmark (issue 4): edgebuf's Bayeux client against a real Faye server, next
to a minimal receive-only client measured in the same run. Run it through tools/bench-downlink.

Three measurements, each written to bench-results/downlink-<name>.json:

latency  Faye publishes notifications one at a time, each carrying its publish time
         (time.time_ns(), CLOCK_REALTIME, the clock edgebuf stamps received_at with).
         edgebuf: received_at (ms, truncated) - publish time. received_at is taken just
         before the INSERT transaction, so it does not include the commit itself; a reader
         polling the database every 0.5 ms also gives "visible" - publish time, which does.
         Floor: a Python long-poll loop (raw-client below) that only receives: the time the
         whole HTTP answer was read - publish time. Both clients are subscribed to the same
         channel of the same server at the same time.
intake   Faye publishes paced at fixed rates (50/s, Cumulocity's documented ceiling for long
         polling, then 250/s and 1,000/s; 10 s each), then as fast as it accepts (several
         publisher threads POSTing batches back to back, 25 s). Per stage and client: rate,
         notifications missing, how long after the last publish the client had everything,
         latency under load; edgebuf's CPU time per 1,000 stored notifications, commits and
         peak RSS (VmHWM of the edgebuf process). A 4 kB write + fdatasync every 50 ms on the
         same filesystem shows what the disk allowed meanwhile (a commit needs one).
idle     A second edgebuf (only [downlink], default settings) on a second Faye server with a
         shorter hold (65 s), so that full cycles, each with one keepalive probe at 60 s, fit
         into the run. The kernel's counters of its own TCP sockets (ss -ti: payload bytes,
         segments) and the CPU time of its threads (/proc/PID/task/*/schedstat) are sampled
         twice a second; a counting TCP relay between it and Faye splits HTTP headers from
         JSON bodies. Measured: bytes, segments and CPU per connect cycle, keepalive probes,
         CPU and wakeups while a poll is held. Computed from those: per day at the default
         240 s hold and at a 1 h hold (the seed's 7 kB/day).
         It runs while the other two run (to keep the whole under 3 minutes): its CPU time
         is its own, the others only add scheduling noise.

Subcommands raw-client, inbox-poller and idle-monitor are the helper processes of `run`.
Python 3 standard library only.
"""

import argparse
import base64
import http.client
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

USER = "t1/bench"
PASSWORD = "bench-pw"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CHANNEL = "/operations/4711"
IDLE_CHANNEL = "/operations/4712"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler of a helper process."""


def on_stop(*_):
    raise Stop()


def now_ns():
    return time.time_ns()


def percentiles(values):
    """p50/p90/p99/max (nearest rank), mean and count of a list of milliseconds."""
    if not values:
        return {"count": 0}
    s = sorted(values)

    def rank(p):
        return s[max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))]

    return {"count": len(s), "p50": round(rank(50), 3), "p90": round(rank(90), 3), "p99": round(rank(99), 3),
            "max": round(s[-1], 3), "mean": round(sum(s) / len(s), 3)}


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def parse_received_at(text):
    """edgebuf's received_at ("2026-11-22T09:03:04.123Z") -> ms since the epoch."""
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000 + 0.5)


def event_body(phase, n, t):
    """A Cumulocity-shaped operation notification (about 300 bytes of data), carrying the
    benchmark's phase, sequence number and publish time (ns)."""
    return {"realtimeAction": "CREATE",
            "data": {"id": f"{phase}{n}", "deviceId": "4711", "status": "PENDING", "description": "benchmark operation",
                     "creationTime": "2026-11-22T10:00:00.000Z", "self": f"https://t1.example.com/devicecontrol/operations/{phase}{n}",
                     "c8y_Command": {"text": "set interval 60"}, "bench": {"p": phase, "n": n, "t": t}}}


def bench_of(data):
    """The {"p", "n", "t"} of a stored or received notification's data, or None."""
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, list) and len(inner) == 1:
            inner = inner[0]
        if isinstance(inner, dict) and isinstance(inner.get("bench"), dict):
            return inner["bench"]
    return None


# ---------------------------------------------------------------------------------------------
# Process readings

def read(path):
    with open(path) as f:
        return f.read()


def thread_times(pid):
    """{tid: (run time ns, timeslices, context switches)} of a process's live threads
    (/proc/PID/task/*/schedstat, and voluntary + nonvoluntary_ctxt_switches of its status)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = read(f"/proc/{pid}/task/{tid}/schedstat").split()
            status = read(f"/proc/{pid}/task/{tid}/status")
        except OSError:
            continue
        switches = sum(int(line.split()[1]) for line in status.splitlines()
                       if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        out[tid] = (int(fields[0]), int(fields[2]), switches)
    return out


class CpuMeter:
    """CPU time of a process at ns resolution, summed over its threads, threads that come and
    go included: each reading adds what every thread ran since the previous reading (a new
    thread counts whole). A thread that exits loses what it ran since the last reading, so
    read often (every 0.2-0.5 s). /proc/PID/stat's utime+stime (10 ms ticks, exited threads
    included) is kept beside it as a cross-check."""

    def __init__(self, pid):
        self.pid = pid
        self.lock = threading.Lock()
        self.last = {}
        self.ns = 0
        self.slices = 0
        self.switches = 0
        self.read()

    def read(self):
        with self.lock:
            now = thread_times(self.pid)
            for tid, (ns, slices, switches) in now.items():
                before = self.last.get(tid, (0, 0, 0))
                self.ns += ns - before[0]
                self.slices += slices - before[1]
                self.switches += switches - before[2]
            self.last = now
            stat = read(f"/proc/{self.pid}/stat")
            rest = stat[stat.rfind(")") + 2:].split()
            ticks = int(rest[11]) + int(rest[12])
            return {"ns": self.ns, "slices": self.slices, "switches": self.switches,
                    "stat_ns": ticks * 1_000_000_000 // CLK_TCK}

    def start_sampling(self, interval=0.2):
        stop = threading.Event()

        def loop():
            while not stop.wait(interval):
                try:
                    self.read()
                except OSError:
                    return
        threading.Thread(target=loop, daemon=True).start()
        return stop


def proc_memory(pid):
    out = {}
    for line in read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])  # kB
    return out


def loadavg():
    return read("/proc/loadavg").split()[:3]


# ---------------------------------------------------------------------------------------------
# Helper process: the raw receive-only Bayeux client (the physical floor)

class Bayeux:
    def __init__(self, url):
        u = urlsplit(url)
        self.path = u.path
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        self.next_id = 0

    def post(self, messages):
        for m in messages:
            self.next_id += 1
            m["id"] = str(self.next_id)
        self.conn.request("POST", self.path, body=json.dumps(messages).encode(),
                          headers={"Content-Type": "application/json", "Accept": "application/json", "Authorization": AUTH})
        response = self.conn.getresponse()
        body = response.read()
        return now_ns(), response.status, body


def raw_client(args):
    """Handshake, subscribe, then connect after connect; keeps each answer that carries events
    with the time it was read completely. Parses nothing on the hot path, stores nothing.
    On SIGTERM writes {"answers": [[t_ns, body], ...], ...} to --out."""
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    answers = []
    connects = 0
    client = Bayeux(args.url)
    try:
        _, _, body = client.post([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}])
        client_id = json.loads(body)[0]["clientId"]
        _, _, body = client.post([{"channel": "/meta/subscribe", "clientId": client_id, "subscription": args.channel}])
        if not json.loads(body)[0].get("successful"):
            raise SystemExit(f"raw-client: subscribe failed: {body[:200]!r}")
        advice = {"timeout": 0}
        with open(args.ready + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(args.ready + ".tmp", args.ready)
        while True:
            message = {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}
            if advice is not None:
                message["advice"] = advice
                advice = None
            t, status, body = client.post([message])
            connects += 1
            if b'"data"' in body:
                answers.append((t, body))
            if status != 200 or b'"successful":false' in body:
                raise SystemExit(f"raw-client: connect failed: {status} {body[:200]!r}")
    except Stop:
        pass
    ru = os.times()
    with open(args.out, "w") as f:
        json.dump({"answers": [[t, b.decode()] for t, b in answers], "connects": connects,
                   "cpu_s": ru.user + ru.system}, f)


def raw_events(path):
    """(phase, n, publish_ns, received_ns) of every event the raw client read."""
    with open(path) as f:
        dump = json.load(f)
    events = []
    for t, body in dump["answers"]:
        for message in json.loads(body):
            if "data" in message:
                b = bench_of(message["data"])
                if b:
                    events.append((b["p"], b["n"], b["t"], t))
    return events, dump


# ---------------------------------------------------------------------------------------------
# Helper process: when each row becomes visible to a reader of edgebuf's database

def inbox_poller(args):
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    seen = {}
    con = sqlite3.connect(args.db, timeout=5, isolation_level=None)
    last = con.execute("SELECT coalesce(max(id), 0) FROM inbox").fetchone()[0]
    with open(args.ready, "w") as f:
        f.write("ok")
    try:
        while True:
            rows = con.execute("SELECT id, data FROM inbox WHERE id > ? AND kind = 'notification'", (last,)).fetchall()
            t = now_ns()
            for rid, data in rows:
                last = max(last, rid)
                b = bench_of(json.loads(data))
                if b and b["p"] == "lat":
                    seen[b["n"]] = t
            time.sleep(0.0005)
    except Stop:
        pass
    with open(args.out, "w") as f:
        json.dump(seen, f)


# ---------------------------------------------------------------------------------------------
# Helper process: samples an idle edgebuf's sockets and CPU

SS_FIELDS = ("bytes_sent", "bytes_acked", "bytes_received", "segs_out", "segs_in", "data_segs_out", "data_segs_in",
             "lastsnd", "lastrcv", "lastack")


def ss_sockets(port):
    """The TCP sockets connected to 127.0.0.1:port, with their kernel counters."""
    text = subprocess.run(["ss", "-tinpoH", "state", "all", "dst", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, check=True).stdout
    sockets = {}
    current = None
    for line in text.splitlines():
        if not line.startswith((" ", "\t")):
            parts = line.split()
            # State Recv-Q Send-Q Local Peer [Process/timer...]
            local = parts[3]
            current = {"state": parts[0], "local": local, "options": [], "line": line.strip()}
            m = re.search(r"timer:\(([^)]*)\)", line)
            current["timer"] = m.group(1) if m else None
            m = re.search(r'users:\(\("([^"]+)",pid=(\d+)', line)
            current["process"] = [m.group(1), int(m.group(2))] if m else None
            sockets[local] = current
        elif current is not None:
            for key in SS_FIELDS:
                m = re.search(rf"\b{key}:(\d+)", line)
                current[key] = int(m.group(1)) if m else 0
            current["ts"] = bool(re.search(r"(^|\s)ts(\s|$)", line))
            m = re.search(r"timer:\(([^)]*)\)", line)
            if m:
                current["timer"] = m.group(1)
    return sockets


class CountingProxy:
    """A TCP relay on 127.0.0.1 in front of the server that splits each HTTP message it relays
    into header and body bytes (Content-Length framing, which both Faye and edgebuf use) and
    notes when it was complete. Keepalive probes end at the relay's kernel, which answers
    them as the server's would."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.messages = []  # (monotonic time, connection, ">" request or "<" answer, header bytes, body bytes)
        self.connections = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.connections += 1
            for src, dst, direction in ((client, upstream, ">"), (upstream, client, "<")):
                threading.Thread(target=self.pump, args=(src, dst, direction, self.connections), daemon=True).start()

    def pump(self, src, dst, direction, connection):
        buffer = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                buffer += data
                while True:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", buffer[:end])
                    length = int(m.group(1)) if m else 0
                    if len(buffer) < end + 4 + length:
                        break
                    with self.lock:
                        self.messages.append((time.monotonic(), connection, direction, end + 4, length))
                    buffer = buffer[end + 4 + length:]
        except OSError:
            pass
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def idle_monitor(args):
    """Relays edgebuf's traffic to the server (CountingProxy) and samples its sockets and CPU
    every --interval s until --cycles held connect cycles were seen (a new request at least
    half the hold time after the previous one) or --seconds passed."""
    signal.signal(signal.SIGTERM, on_stop)
    proxy = CountingProxy(args.upstream_port)
    samples = []
    meter = None
    held = 0
    last_requests = 0
    last_change = None
    started = time.monotonic()

    def sample():
        nonlocal meter
        if meter is None and os.path.exists(args.pidfile):
            meter = CpuMeter(int(read(args.pidfile)))
        s = {"t": time.monotonic(), "sockets": ss_sockets(proxy.port)}
        if meter is not None:
            try:
                s["cpu"] = meter.read()
            except OSError:
                pass
        samples.append(s)
        return s

    with open(args.ready + ".tmp", "w") as f:
        json.dump({"port": proxy.port}, f)
    os.rename(args.ready + ".tmp", args.ready)
    try:
        while not os.path.exists(args.pidfile) and time.monotonic() - started < 30:
            time.sleep(0.01)
        while time.monotonic() - started < args.seconds:
            s = sample()
            requests = sum(x.get("data_segs_out", 0) for x in s["sockets"].values())
            if requests > last_requests:
                if last_change is not None and s["t"] - last_change >= args.hold / 2:
                    held += 1
                last_requests = requests
                last_change = s["t"]
            if held >= args.cycles:
                time.sleep(1.0)  # one more sample a second later: the ACK of the last answer
                sample()
                break
            time.sleep(max(0.0, args.interval - (time.monotonic() - s["t"])))
    except Stop:
        pass
    with proxy.lock:
        messages = list(proxy.messages)
    with open(args.out, "w") as f:
        json.dump({"samples": samples, "held_cycles": held, "messages": messages}, f)


# ---------------------------------------------------------------------------------------------
# The pieces `run` starts

class FsyncProbe:
    """The disk's part of a commit, measured beside edgebuf: every 50 ms a 4 kB pwrite plus
    fdatasync of a file in the work directory (the filesystem of edgebuf's database),
    labelled with the phase that runs meanwhile."""

    def __init__(self, work):
        self.path = os.path.join(work, "fsync-probe")
        self.label = None
        self.samples = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        block = b"x" * 4096
        try:
            while not self.stop.wait(0.05):
                t = time.perf_counter()
                os.pwrite(fd, block, 0)
                os.fdatasync(fd)
                if self.label:
                    self.samples.setdefault(self.label, []).append((time.perf_counter() - t) * 1000)
        finally:
            os.close(fd)

    def result(self):
        self.stop.set()
        self.thread.join()
        return {label: percentiles(values) for label, values in self.samples.items()}


class Faye:
    """tools/faye/start with handshake auth; stopped with SIGINT."""

    def __init__(self, root, work, name, timeout):
        self.ready = os.path.join(work, f"faye-{name}.json")
        self.log = open(os.path.join(work, f"faye-{name}.log"), "w")
        env = dict(os.environ, EDGEBUF_FAYE_TIMEOUT=str(timeout), EDGEBUF_FAYE_USER=USER, EDGEBUF_FAYE_PASSWORD=PASSWORD)
        env.pop("EDGEBUF_FAYE_PORT", None)
        self.timeout = timeout
        self.proc = subprocess.Popen(["/bin/bash", os.path.join(root, "tools/faye/start"), self.ready],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait(self):
        deadline = time.monotonic() + 60
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench-downlink: Faye did not start; see {self.log.name}")
            time.sleep(0.05)
        info = json.loads(read(self.ready))
        self.url, self.port = info["url"], info["port"]
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Daemon:
    """`edgebuf run` with only a [downlink] section: default settings apart from the login and
    allow_plain_http (Faye speaks plain HTTP on loopback)."""

    def __init__(self, binary, work, name, url, channel):
        self.binary = binary
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.db = os.path.join(self.dir, "edgebuf.db")
        self.config = os.path.join(self.dir, "edgebuf.toml")
        with open(self.config, "w") as f:
            f.write(f'[downlink]\nurl = "{url}"\nchannels = ["{channel}"]\nusername = "{USER}"\n'
                    f'password = "{PASSWORD}"\nallow_plain_http = true\n'
                    # Flat out, more than the default 100,000 rows arrive: retention would remove
                    # the earlier stages' rows before they are counted.
                    f'[inbox]\nmax_records = 10000000\n')
        self.err = open(os.path.join(self.dir, "run.err"), "w")
        self.proc = subprocess.Popen([binary, "--db", self.db, "--config", self.config, "run"],
                                     stdout=self.err, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def state(self):
        if not os.path.exists(self.db):
            return None
        try:
            con = sqlite3.connect(self.db, timeout=2)
            try:
                row = con.execute("SELECT state FROM runtime_state WHERE component = 'downlink'").fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            return None
        return json.loads(row[0]) if row else None

    def wait_connected(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench-downlink: edgebuf run exited; see {self.err.name}")
            s = self.state()
            if s and s.get("phase") == "connected" and s.get("pid") == self.pid:
                return s
            time.sleep(0.05)
        raise SystemExit(f"bench-downlink: edgebuf did not connect within {timeout} s; state {self.state()}")

    def count(self):
        con = sqlite3.connect(self.db, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM inbox WHERE kind = 'notification'").fetchone()[0]
        finally:
            con.close()

    def cli(self, *arguments):
        out = subprocess.run([self.binary, "--db", self.db, "--config", self.config, *arguments],
                             capture_output=True, text=True, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Helper:
    """This script in one of its helper modes, as a child process."""

    def __init__(self, work, name, *arguments):
        self.ready = os.path.join(work, f"{name}.ready")
        self.out = os.path.join(work, f"{name}.json")
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *arguments, "--ready", self.ready, "--out", self.out],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench-downlink: helper did not start; see {self.log.name}")
            time.sleep(0.02)

    def finish(self, timeout=30, signal_first=True):
        if signal_first and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not os.path.exists(self.out):
            raise SystemExit(f"bench-downlink: helper wrote nothing; see {self.log.name}")
        return self.out


class Publisher:
    """A kept-alive HTTP connection that publishes to Faye (no handshake needed)."""

    def __init__(self, url):
        u = urlsplit(url)
        self.path = u.path
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def publish(self, body):
        self.conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
        answer = self.conn.getresponse().read()
        return answer.count(b'"successful":true')


def publish_batch(publisher, phase, first, count):
    t = now_ns()
    messages = [{"channel": CHANNEL, "data": event_body(phase, first + i, t)} for i in range(count)]
    return t, publisher.publish(json.dumps(messages).encode())


# ---------------------------------------------------------------------------------------------
# The benchmark

def run(args):
    # SIGTERM stops the benchmark like Ctrl-C: everything it started is stopped, by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    git = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    os.makedirs(args.results, exist_ok=True)
    work = tempfile.mkdtemp(prefix="edgebuf-bench-dl.", dir="/var/tmp")
    conditions = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                  "loadavg_start": loadavg(), "edgebuf": args.edgebuf, "git": git,
                  "server": "Faye 1.4.0 (Debian ruby-faye) on thin, 127.0.0.1, plain HTTP, handshake auth",
                  "notification": f"{len(json.dumps(event_body('max', 123456, now_ns())))} bytes of data, Cumulocity "
                                  "operation shape without lastUpdated (edgebuf's dedupe key is then a SHA-256 of the canonical JSON)",
                  "note": "2-core VM shared with other builds and tests: expect noise; compare the ratios"}
    procs = []
    print(f"==> downlink benchmark (work dir {work})", flush=True)
    try:
        faye = Faye(root, work, "main", args.faye_timeout)
        faye_idle = Faye(root, work, "idle", args.idle_hold)
        procs += [faye, faye_idle]
        faye.wait()
        faye_idle.wait()

        # The idle client first: its cycles take longest, and the rest runs meanwhile.
        pidfile = os.path.join(work, "idle.pid")
        monitor = Helper(work, "idle-monitor", "idle-monitor", "--upstream-port", str(faye_idle.port), "--pidfile", pidfile,
                         "--hold", str(args.idle_hold), "--cycles", str(args.idle_cycles),
                         "--seconds", str((args.idle_cycles + 1) * args.idle_hold + 40), "--interval", "0.5")
        procs.append(monitor)
        monitor.wait_ready()
        relay = json.loads(read(monitor.ready))["port"]
        idle = Daemon(args.edgebuf, work, "idle", faye_idle.url.replace(f":{faye_idle.port}/", f":{relay}/"), IDLE_CHANNEL)
        procs.append(idle)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(idle.pid))
        os.rename(pidfile + ".tmp", pidfile)
        idle_started = time.monotonic()

        main = Daemon(args.edgebuf, work, "main", faye.url, CHANNEL)
        procs.append(main)
        raw = Helper(work, "raw-client", "raw-client", "--url", faye.url, "--channel", CHANNEL)
        procs.append(raw)
        main.wait_connected()
        raw.wait_ready()
        idle.wait_connected()
        for pid in (main.pid, idle.pid):
            if read(f"/proc/{pid}/comm").strip() != "edgebuf":
                raise SystemExit("bench-downlink: the measured pid is not edgebuf")
        meter = CpuMeter(main.pid)
        sampling = meter.start_sampling(0.2)

        # Warm-up: both clients receive a few before anything is measured.
        pub = Publisher(faye.url)
        for i in range(5):
            publish_batch(pub, "warm", i, 1)
            time.sleep(0.05)
        wait_count(main, 5, 10)

        fsync = FsyncProbe(work)
        fsync.label = "latency"
        latency = measure_latency(args, work, main, pub)
        stages = []
        for rate in args.paced_rates:
            print(f"==> intake paced at {rate}/s for {args.paced_seconds:g} s", flush=True)
            fsync.label = f"c{rate}"
            stages.append(run_stage(f"c{rate}", main, meter, lambda name, r=rate: paced(faye.url, name, r, args.paced_seconds)))
        print(f"==> intake as fast as Faye accepts: {args.publishers} publishers x batches of {args.batch} "
              f"for {args.intake_seconds:g} s", flush=True)
        fsync.label = "max"
        stages.append(run_stage("max", main, meter, lambda name: flat_out(faye.url, name, args)))
        sampling.set()
        fsync_ms = fsync.result()

        # Everything the raw client read (it stops now); then the inbox through the CLI.
        events, raw_dump = raw_events(raw.finish())
        inbox = main.cli("inbox", "list", "--json", "--limit", "10000000")
        audit = main.cli("audit", "list", "--json", "--limit", "10000000")
        status = main.cli("status", "--json")[0].get("downlink") or {}
        finish_latency(latency, inbox, events)
        latency["fsync_probe_ms"] = fsync_ms.get("latency")
        intake = finish_intake(stages, inbox, events, audit)
        for st in intake["stages"]:
            st["fsync_probe_ms"] = fsync_ms.get(st["stage"])
        intake["edgebuf_status_after"] = status.get("state")
        intake["edgebuf_gap_markers"] = sum(1 for row in inbox if row.get("kind") == "gap")
        log = read(main.err.name).splitlines()
        too_large = [line for line in log if "response_too_large" in line]
        intake["edgebuf_log_response_too_large"] = {"count": len(too_large), "first": too_large[0][:300] if too_large else None}
        intake["raw_client_connects"] = raw_dump["connects"]

        remaining = args.idle_cycles * args.idle_hold + 5 - (time.monotonic() - idle_started)
        print(f"==> idle: waiting for {args.idle_cycles} full cycles of {args.idle_hold} s ({max(0, remaining):.0f} s more)", flush=True)
        idle_result = analyse_idle(args, monitor.finish(timeout=(args.idle_cycles + 1) * args.idle_hold + 60, signal_first=False))
        conditions["loadavg_end"] = loadavg()
    finally:
        for p in reversed(procs):
            try:
                if isinstance(p, Helper):
                    if p.proc.poll() is None:
                        p.proc.kill()
                        p.proc.wait()
                else:
                    p.stop()
            except Exception as e:  # keep stopping the others
                print(f"bench-downlink: stopping {p}: {e}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}")
        else:
            subprocess.run(["rm", "-rf", work])

    for name, result in (("latency", latency), ("intake", intake), ("idle", idle_result)):
        result["conditions"] = conditions
        with open(os.path.join(args.results, f"downlink-{name}.json"), "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    cpu = None
    if args.edgebuf_bench:
        # The dedupe key's share of the intake CPU, without the network (DownlinkCPU.swift).
        out = os.path.join(args.results, "downlink-cpu.json")
        subprocess.run([args.edgebuf_bench, "downlink-cpu", "--json", out], check=True)
        with open(out) as f:
            cpu = json.load(f)
    print_table(latency, intake, idle_result, conditions, cpu)


def wait_count(daemon, count, timeout, quiet=None):
    """Waits until the inbox holds `count` notifications, `timeout` passed, or (with `quiet`)
    nothing new arrived for that many seconds. Returns the count."""
    deadline = time.monotonic() + timeout
    n, changed = daemon.count(), time.monotonic()
    while n < count and time.monotonic() < deadline and (quiet is None or time.monotonic() - changed < quiet):
        time.sleep(0.05)
        m = daemon.count()
        if m != n:
            n, changed = m, time.monotonic()
    return n


def measure_latency(args, work, main, pub):
    print(f"==> latency: {args.latency_count} notifications published one at a time", flush=True)
    poller = Helper(work, "inbox-poller", "inbox-poller", "--db", main.db)
    try:
        poller.wait_ready()
        rng = random.Random(4)
        before = main.count()
        published = 0
        for n in range(args.latency_count):
            _, ok = publish_batch(pub, "lat", n, 1)
            published += ok
            time.sleep(rng.uniform(0.015, 0.030))
        wait_count(main, before + published, 15)
        time.sleep(0.2)
        with open(poller.finish()) as f:
            visible = {int(k): v for k, v in json.load(f).items()}
    finally:
        if poller.proc.poll() is None:
            poller.proc.kill()
            poller.proc.wait()
    return {"published": published, "visible": visible}


def finish_latency(result, inbox, events):
    visible = result.pop("visible")
    eb, eb_visible, floor, floor_ms, commit = [], [], [], [], []
    for row in inbox:
        b = bench_of(row.get("data")) if row.get("kind") == "notification" else None
        if b and b["p"] == "lat":
            at = parse_received_at(row["received_at"])
            eb.append(at - b["t"] / 1e6)
            if b["n"] in visible:
                eb_visible.append((visible[b["n"]] - b["t"]) / 1e6)
                commit.append(visible[b["n"]] / 1e6 - at)
    for p, n, t, received in events:
        if p == "lat":
            floor.append((received - t) / 1e6)
            floor_ms.append(received // 1_000_000 - t / 1e6)
    result.update({
        "what": "notification-to-commit latency, notifications published one at a time (15-30 ms apart), ms",
        "edgebuf_received_at": percentiles(eb),
        "edgebuf_visible_to_reader": percentiles(eb_visible),
        "raw_client": percentiles(floor),
        "raw_client_truncated_to_ms": percentiles(floor_ms),
        "edgebuf_received_at_to_visible": percentiles(commit),
        "definitions": {
            "edgebuf_received_at_to_visible": "visible - received_at: insert + commit (fsync), +0..1 ms of received_at "
                                              "truncation and up to ~0.6 ms of polling",
            "fsync_probe_ms": "4 kB pwrite + fdatasync every 50 ms on the same filesystem during this phase: the disk's "
                              "floor for a commit with synchronous = FULL",
            "publish time": "time.time_ns() (CLOCK_REALTIME, the clock of edgebuf's received_at) just before the publisher's POST",
            "edgebuf_received_at": "inbox received_at - publish time. received_at is taken (ms, truncated) just before "
                                   "the INSERT transaction (DownlinkEngine.commit): the commit itself is not included",
            "edgebuf_visible_to_reader": "when a reader polling the inbox every 0.5 ms first saw the row - publish time: "
                                         "parse, insert, commit with fsync (synchronous = FULL); up to ~0.6 ms of polling granularity",
            "raw_client": "a Python stdlib long-poll loop on the same channel of the same server, subscribed at the same "
                          "time: when the whole HTTP answer was read - publish time; parses and stores nothing on the hot path",
            "raw_client_truncated_to_ms": "the same, its receive time truncated to whole ms as received_at is: the floor "
                                          "for ratio_received_at"},
        "ratio_received_at": {p: ratio(percentiles(eb).get(p), percentiles(floor_ms).get(p)) for p in ("p50", "p90", "p99", "max")},
        "ratio_visible": {p: ratio(percentiles(eb_visible).get(p), percentiles(floor).get(p)) for p in ("p50", "p90", "p99", "max")},
    })


def paced(url, name, rate, seconds):
    """One publisher at `rate` notifications/s: POSTs of rate/100 notifications (at least 1)
    on a fixed schedule."""
    pub = Publisher(url)
    batch = max(1, rate // 100)
    batches = []
    start = time.monotonic()
    k = 0
    while k * batch < rate * seconds:
        due = start + k * batch / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t, ok = publish_batch(pub, name, k * batch, batch)
        batches.append((t, ok, now_ns()))
        k += 1
    return batches


def flat_out(url, name, args):
    """`args.publishers` threads POSTing batches of `args.batch` back to back."""
    stop = threading.Event()
    batches = []
    lock = threading.Lock()
    counter = [0]

    def publisher():
        p = Publisher(url)
        while not stop.is_set():
            with lock:
                first = counter[0]
                counter[0] += args.batch
            t, ok = publish_batch(p, name, first, args.batch)
            done = now_ns()
            with lock:
                batches.append((t, ok, done))

    threads = [threading.Thread(target=publisher) for _ in range(args.publishers)]
    for th in threads:
        th.start()
    time.sleep(args.intake_seconds)
    stop.set()
    for th in threads:
        th.join()
    return batches


def run_stage(name, main, meter, publish):
    before = main.count()
    cpu0 = meter.read()
    batches = publish(name)
    accepted = sum(b[1] for b in batches)
    # Until edgebuf has everything, or it is idle (< 30 ms of CPU in 3 s) and nothing more
    # arrived: what is still missing then was lost. At most 90 s.
    deadline = time.monotonic() + 90
    window = []
    count = main.count()
    while count < before + accepted and time.monotonic() < deadline:
        time.sleep(0.25)
        count = main.count()
        window.append((time.monotonic(), meter.read()["ns"], count))
        window = [w for w in window if w[0] >= window[-1][0] - 3]
        if window[-1][0] - window[0][0] >= 2.5 and window[-1][1] - window[0][1] < 30e6 and window[-1][2] == window[0][2]:
            break
    done = now_ns()
    cpu1 = meter.read()
    return {"name": name, "batches": batches, "accepted": accepted, "stored_count_delta": count - before, "done": done,
            "cpu_ns": cpu1["ns"] - cpu0["ns"], "cpu_stat_ns": cpu1["stat_ns"] - cpu0["stat_ns"],
            "memory": proc_memory(main.pid)}


def finish_intake(stages, inbox, events, audit):
    eb = {}
    for row in inbox:
        b = bench_of(row.get("data")) if row.get("kind") == "notification" else None
        if b:
            eb.setdefault(b["p"], []).append((parse_received_at(row["received_at"]), b["t"] / 1e6))
    raw = {}
    for p, n, t, received in events:
        raw.setdefault(p, []).append((received / 1e6, t / 1e6))
    commits = [(parse_received_at(a["at"]), a["detail"].get("received", 0)) for a in audit
               if a.get("event") == "notifications_received"]
    out = []
    for st in stages:
        batches = st["batches"]
        accepted = st["accepted"]
        t_first = min(b[0] for b in batches) / 1e6
        t_end = max(b[2] for b in batches) / 1e6
        publish_s = (t_end - t_first) / 1e3
        lo, hi = t_first + 2000, t_end - 2000  # steady state: 2 s in, 2 s before the end

        def consumer(pairs):
            if not pairs:
                return {"received": 0, "missing": accepted}
            last = max(r for r, _ in pairs)
            mid = sum(1 for r, _ in pairs if lo <= r < hi)
            return {"received": len(pairs), "missing": accepted - len(pairs),
                    "per_s": round(len(pairs) / ((last - t_first) / 1e3), 1),
                    "steady_per_s": round(mid / ((hi - lo) / 1e3), 1) if hi > lo else None,
                    "done_after_last_publish_ms": round(last - t_end, 1),
                    "latency_ms": percentiles([r - t for r, t in pairs])}

        e = consumer(eb.get(st["name"], []))
        r = consumer(raw.get(st["name"], []))
        sizes = [n for at, n in commits if t_first <= at <= st["done"] / 1e6]
        stored = e["received"]
        cpu_ms_per_1000 = st["cpu_ns"] / 1e6 / stored * 1000 if stored else None
        out.append({
            "stage": st["name"],
            "published": {"accepted": accepted, "posts": len(batches), "seconds": round(publish_s, 2),
                          "per_s": round(accepted / publish_s, 1),
                          "steady_per_s": round(sum(b[1] for b in batches if lo <= b[0] / 1e6 < hi) / ((hi - lo) / 1e3), 1)
                          if hi > lo else None},
            "edgebuf": e,
            "raw_client": r,
            "ratio_edgebuf_to_raw_per_s": ratio(e.get("per_s"), r.get("per_s")),
            "edgebuf_commits": {"count": len(sizes), "mean_per_commit": round(sum(sizes) / len(sizes), 1) if sizes else None,
                                "max_per_commit": max(sizes) if sizes else None},
            "edgebuf_cpu": {"ms": round(st["cpu_ns"] / 1e6, 1), "ms_from_proc_stat_ticks": round(st["cpu_stat_ns"] / 1e6),
                            "ms_per_1000_stored": round(cpu_ms_per_1000, 1) if cpu_ms_per_1000 else None,
                            "implied_per_cpu_second": round(1e6 / cpu_ms_per_1000) if cpu_ms_per_1000 else None},
            "edgebuf_peak_rss_mib_so_far": round(st["memory"].get("VmHWM", 0) / 1024, 1),
        })
    return {
        "what": "intake: Faye publishing paced at fixed rates, then as fast as it accepts; both clients subscribed to "
                "the same channel of the same server",
        "definitions": {
            "per_s": "notifications received / (last receipt - first publish)",
            "steady_per_s": "receipts between 2 s after the first and 2 s before the last publish, per second",
            "missing": "accepted by Faye (successful: true) but never received (Faye delivers at most once)",
            "latency_ms": "receipt (edgebuf: received_at) - publish time of the notification's batch",
            "edgebuf_cpu": "CPU time of the edgebuf process (schedstat of its threads) from the stage's start until it "
                           "stored everything (or was idle with nothing new for 2.5 s); includes answers it downloaded "
                           "and then dropped (response_too_large)",
            "implied_per_cpu_second": "1,000,000 / ms_per_1000_stored: what one fully used core would store",
            "edgebuf_commits": "notifications_received audit rows: one per committed connect answer"},
        "stages": out,
        "cumulocity_long_polling_ceiling_per_s": 50,
    }


def analyse_idle(args, path):
    with open(path) as f:
        dump = json.load(f)
    samples = dump["samples"]
    hold = args.idle_hold
    # Counters per socket, last seen (a socket that closed keeps what it had).
    seen = {}
    totals = []
    for s in samples:
        for local, sock in s["sockets"].items():
            seen[local] = sock
        tot = {k: sum(v.get(k, 0) for v in seen.values()) for k in ("bytes_sent", "bytes_received", "segs_out", "segs_in",
                                                                     "data_segs_out", "data_segs_in")}
        totals.append(tot)
    # Request boundaries: samples where a request was sent. The first sample counts as one
    # when edgebuf had already sent its first requests (handshake, subscribe, first connects).
    changes = [i for i in range(len(samples))
               if totals[i]["data_segs_out"] > (totals[i - 1]["data_segs_out"] if i else 0)]
    held = [i for j, i in enumerate(changes) if j > 0 and samples[i]["t"] - samples[changes[j - 1]]["t"] >= hold / 2]
    if not held:
        return {"what": "idle cost", "error": "no full cycle observed", "samples": len(samples)}
    start = changes[changes.index(held[0]) - 1]  # the sample after the first held connect was sent
    end = held[-1]
    n = len(held)
    if "cpu" not in samples[start] or "cpu" not in samples[end]:
        return {"what": "idle cost", "error": "no CPU reading at the window edges"}
    window_s = samples[end]["t"] - samples[start]["t"]
    d = {k: totals[end][k] - totals[start][k] for k in totals[end]}
    cpu_ns = samples[end]["cpu"]["ns"] - samples[start]["cpu"]["ns"]
    cpu_stat_ns = samples[end]["cpu"]["stat_ns"] - samples[start]["cpu"]["stat_ns"]
    slices = samples[end]["cpu"]["slices"] - samples[start]["cpu"]["slices"]

    # CPU while a poll is held: from 3 s after a boundary to 3 s before the next.
    quiet_ns = quiet_slices = quiet_switches = 0
    quiet_s = 0.0
    bounds = [start] + held
    for a, b in zip(bounds, bounds[1:]):
        ia = next(i for i in range(a, b) if samples[i]["t"] >= samples[a]["t"] + 3)
        ib = max(i for i in range(a, b + 1) if samples[i]["t"] <= samples[b]["t"] - 3)
        if ib > ia:
            quiet_ns += samples[ib]["cpu"]["ns"] - samples[ia]["cpu"]["ns"]
            quiet_slices += samples[ib]["cpu"]["slices"] - samples[ia]["cpu"]["slices"]
            quiet_switches += samples[ib]["cpu"]["switches"] - samples[ia]["cpu"]["switches"]
            quiet_s += samples[ib]["t"] - samples[ia]["t"]
    quiet_rate = quiet_ns / quiet_s if quiet_s else 0.0  # ns of CPU per second of held poll
    per_cycle_cpu_ns = (cpu_ns - quiet_rate * window_s) / n

    # Keepalive probes: a segment out and in with no data either way, long after the last data.
    probes = {}
    first_timer = {}
    for local in seen:
        prev = None
        for i in range(start, end + 1):
            sock = samples[i]["sockets"].get(local)
            if sock is None:
                continue
            first_timer.setdefault(local, sock.get("timer"))
            if prev is not None and sock["segs_out"] > prev["segs_out"] and sock["data_segs_out"] == prev["data_segs_out"] \
                    and sock["data_segs_in"] == prev["data_segs_in"] and sock["lastsnd"] > 10_000 and sock["lastrcv"] > 10_000:
                probes.setdefault(local, []).append({"at_s": round(samples[i]["t"] - samples[start]["t"], 1),
                                                     "idle_s": round(min(sock["lastsnd"], sock["lastrcv"]) / 1000, 1),
                                                     "segs_out": sock["segs_out"] - prev["segs_out"],
                                                     "segs_in": sock["segs_in"] - prev["segs_in"]})
            prev = sock
    probe_count = sum(len(v) for v in probes.values())
    probe_segments = sum(p["segs_out"] + p["segs_in"] for v in probes.values() for p in v)
    # The poll connection: the one that carried the held connects.
    poll_local = max(seen, key=lambda k: seen[k].get("data_segs_out", 0))
    poll_probes = len(probes.get(poll_local, []))
    ts = seen[poll_local].get("ts", True)
    header = 52 if ts else 40  # IPv4 20 + TCP 20 (+ 12 timestamps option, negotiated on loopback)

    http_per_cycle = (d["bytes_sent"] + d["bytes_received"]) / n
    req_per_cycle = d["bytes_sent"] / n
    ans_per_cycle = d["bytes_received"] / n
    segs_per_cycle = (d["segs_out"] + d["segs_in"] - probe_segments) / n
    segs_per_probe = probe_segments / probe_count if probe_count else 2

    # Headers and bodies, from the relay: messages completed inside the window.
    t0, t1 = samples[start]["t"], samples[end]["t"]
    split = {(direction, part): 0 for direction in "><" for part in ("header", "body")}
    for t, _, direction, header_bytes, body_bytes in dump.get("messages", []):
        if t0 < t <= t1:
            split[(direction, "header")] += header_bytes
            split[(direction, "body")] += body_bytes
    body_per_cycle = (split[(">", "body")] + split[("<", "body")]) / n

    def per_day(hold_s):
        cycles = 86400 / hold_s
        # The connect asks, and Faye's answer advises, the hold in ms: more digits than at the measured hold.
        extra_digits = 2 * (len(str(hold_s * 1000)) - len(str(hold * 1000)))
        http_bytes = cycles * (http_per_cycle + extra_digits)
        probes_per_cycle = -(-hold_s // 60) - 1  # keepalive every 60 s of idleness, answered by the peer
        ip_bytes = http_bytes + cycles * (segs_per_cycle + probes_per_cycle * segs_per_probe) * header
        cpu_s = (cycles * per_cycle_cpu_ns + 86400 * quiet_rate) / 1e9
        return {"hold_s": hold_s, "cycles_per_day": round(cycles, 1),
                "json_body_bytes_per_day": round(cycles * (body_per_cycle + extra_digits)),
                "http_bytes_per_day": round(http_bytes),
                "keepalive_probes_per_cycle": probes_per_cycle,
                "ip_bytes_per_day_poll_connection": round(ip_bytes),
                "ip_bytes_per_day_without_keepalive": round(http_bytes + cycles * segs_per_cycle * header),
                "cpu_seconds_per_day": round(cpu_s, 2)}

    control = [k for k in seen if k != poll_local]
    control_probe_ip_bytes_per_day = round(86400 / 60 * segs_per_probe * header)
    return {
        "what": "idle cost of a connected edgebuf run with only a [downlink] section and default settings "
                "(url, channels, username, password, allow_plain_http) "
                "(network_idle_limit 5 min: asks 240 s holds; TCP keepalive 60 s idle / 20 s interval), no notifications",
        "measured": {
            "server_hold_s": hold,
            "note": f"Faye's timeout set to {hold} s so that full cycles (and a keepalive probe at 60 s) fit into the run; "
                    f"edgebuf never asks more than the server advises, so its holds were {hold} s",
            "cycles": n, "window_s": round(window_s, 1),
            "cycle_ends_s": [round(samples[i]["t"] - samples[start]["t"], 1) for i in held],
            "cpu_ms_in_window": round(cpu_ns / 1e6, 2), "cpu_ms_in_window_from_proc_stat_ticks": round(cpu_stat_ns / 1e6),
            "cpu_us_per_second_while_held": round(quiet_rate / 1e3, 1),
            "wakeups_per_second_while_held": round(quiet_slices / quiet_s, 2) if quiet_s else None,
            "context_switches_per_minute_while_held": round(quiet_switches / quiet_s * 60, 1) if quiet_s else None,
            "cpu_ms_per_cycle_beyond_held": round(per_cycle_cpu_ns / 1e6, 3),
            "timeslices_in_window": slices,
            "http_bytes_per_cycle": {"request": round(req_per_cycle, 1), "answer": round(ans_per_cycle, 1),
                                     "total": round(http_per_cycle, 1),
                                     "request_headers": round(split[(">", "header")] / n, 1),
                                     "request_body": round(split[(">", "body")] / n, 1),
                                     "answer_headers": round(split[("<", "header")] / n, 1),
                                     "answer_body": round(split[("<", "body")] / n, 1)},
            "tcp_segments_per_cycle": round(segs_per_cycle, 2),
            "tcp_ip_header_bytes_per_segment": header,
            "keepalive_probes_in_window": {"poll": poll_probes, "other": probe_count - poll_probes,
                                           "segments_per_probe": round(segs_per_probe, 2), "detail": probes},
            "keepalive_timer_first_seen": first_timer,
            "sockets": {k: {"role": "poll (connects)" if k == poll_local else "other (handshake, subscribe)",
                            "state_last_seen": v.get("state"), "requests": v.get("data_segs_out"),
                            "bytes_sent": v.get("bytes_sent"),
                            "bytes_received": v.get("bytes_received"), "segs_out": v.get("segs_out"),
                            "segs_in": v.get("segs_in")} for k, v in seen.items()},
            "how": "ss -ti counters of edgebuf's own sockets (payload bytes = HTTP headers + bodies; segments "
                   "include ACKs and keepalive probes), sampled every 0.5 s; header/body split by a counting TCP relay "
                   "(Python) between edgebuf and Faye, whose kernel answers the keepalive probes as the server's would; "
                   "CPU = schedstat run time of edgebuf's threads. Window: from the sample after the first held connect "
                   "was sent to the sample after the last counted answer and the connect that followed it",
        },
        "computed": {
            "default_240s_hold": per_day(240),
            "one_hour_hold": per_day(3600),
            "seed_figure": "7 kB/day at a one-hour timeout (Cumulocity docs, seed 004: 'does not include received "
                           "notifications and session reconnects')",
            "control_connection": {
                "sockets": len(control),
                "note": "the subscribe connection stays open (curl keeps it) and sends keepalive probes too, until the "
                        "server closes it (thin here: after 2 x timeout + 10 s idle); a server that never closes it "
                        f"would add about {control_probe_ip_bytes_per_day} IP bytes/day",
            },
            "like_for_like": "json_body_bytes_per_day at the 1 h hold is what the seed's 7 kB/day matches (24 cycles x "
                             "~300 B of request + answer JSON); headers, TCP/IP and keepalive come on top",
            "how": "per day = 86400 / hold cycles x (HTTP bytes per cycle, adjusted for the longer timeout numbers + "
                   "TCP segments per cycle x header bytes) + keepalive probes (one per 60 s of idleness, each a probe "
                   "and its ACK) x header bytes; CPU = cycles x CPU per cycle + 86400 x CPU per held second. "
                   "IP level (no Ethernet framing, plain HTTP: TLS would add record overhead and handshakes)",
        },
    }


def print_table(lat, intake, idle, conditions, cpu=None):
    def pct(d):
        return f"p50 {d.get('p50')} / p90 {d.get('p90')} / p99 {d.get('p99')} / max {d.get('max')}" if d.get("count") else "-"

    def short(d):
        return f"p50 {d.get('p50')} p99 {d.get('p99')}" if d and d.get("count") else "-"

    print()
    print(f"Downlink benchmark, {conditions['date']}, {conditions['cpus']} CPUs, load {' '.join(conditions['loadavg_start'])}"
          f" -> {' '.join(conditions.get('loadavg_end', []))} (shared machine: expect noise)")
    rows = [
        ("latency, one at a time (ms)", ""),
        ("  edgebuf received_at", pct(lat["edgebuf_received_at"])),
        ("  edgebuf visible to a reader", pct(lat["edgebuf_visible_to_reader"])),
        ("  raw client (floor)", pct(lat["raw_client"])),
        ("  ratio received_at / floor(ms)", " / ".join(f"{k} {v}x" for k, v in lat["ratio_received_at"].items())),
        ("  ratio visible / floor", " / ".join(f"{k} {v}x" for k, v in lat["ratio_visible"].items())),
        ("  received_at -> visible (commit)", pct(lat["edgebuf_received_at_to_visible"])),
        ("  fsync probe, same filesystem", pct(lat.get("fsync_probe_ms") or {})),
    ]
    for st in intake["stages"]:
        e, r = st["edgebuf"], st["raw_client"]
        rows += [
            (f"intake {st['stage']}", f"Faye accepted {st['published']['per_s']}/s ({st['published']['accepted']} in "
                                      f"{st['published']['seconds']} s)"),
            ("  edgebuf stored", f"{e.get('per_s')}/s, missing {e.get('missing')}, done +{e.get('done_after_last_publish_ms')} ms, "
                                 f"latency {short(e.get('latency_ms'))} ms"),
            ("  raw client", f"{r.get('per_s')}/s, missing {r.get('missing')}, done +{r.get('done_after_last_publish_ms')} ms, "
                             f"latency {short(r.get('latency_ms'))} ms"),
            ("  edgebuf CPU, commits, RSS", f"{st['edgebuf_cpu']['ms_per_1000_stored']} ms per 1,000 (~{st['edgebuf_cpu']['implied_per_cpu_second']}"
                                            f"/s per CPU second); {st['edgebuf_commits']['count']} commits, max "
                                            f"{st['edgebuf_commits']['max_per_commit']}; peak RSS {st['edgebuf_peak_rss_mib_so_far']} MiB"),
            ("  fsync probe (ms)", pct(st.get("fsync_probe_ms") or {})),
        ]
    rows.append(("  edgebuf answers dropped as too large", f"{intake['edgebuf_log_response_too_large']['count']} "
                                                         f"(gap markers: {intake['edgebuf_gap_markers']})"))
    if "error" in idle:
        rows.append(("idle", idle["error"]))
    else:
        m, c = idle["measured"], idle["computed"]
        rows += [
            ("idle, measured", f"{m['cycles']} cycles of {m['server_hold_s']} s in {m['window_s']} s: CPU {m['cpu_ms_in_window']} ms"),
            ("  while a poll is held", f"{m['cpu_us_per_second_while_held']} us CPU/s, {m['wakeups_per_second_while_held']} wakeups/s, "
                                       f"{m['context_switches_per_minute_while_held']} context switches/min"),
            ("  per cycle on top", f"{m['cpu_ms_per_cycle_beyond_held']} ms CPU"),
            ("  bytes per cycle", f"request {m['http_bytes_per_cycle']['request']} B ({m['http_bytes_per_cycle']['request_headers']} "
                                  f"headers + {m['http_bytes_per_cycle']['request_body']} JSON), answer {m['http_bytes_per_cycle']['answer']} B "
                                  f"({m['http_bytes_per_cycle']['answer_headers']} + {m['http_bytes_per_cycle']['answer_body']}), "
                                  f"{m['tcp_segments_per_cycle']} TCP segments"),
            ("  keepalive probes seen", f"{m['keepalive_probes_in_window']['poll']} on the poll connection, "
                                        f"{m['keepalive_probes_in_window']['other']} on the other"),
        ]
        for key, label in (("default_240s_hold", "idle, computed, 240 s hold"), ("one_hour_hold", "idle, computed, 1 h hold")):
            d = c[key]
            rows.append((label, f"per day JSON {d['json_body_bytes_per_day'] / 1000:.1f} kB; HTTP {d['http_bytes_per_day'] / 1000:.1f} kB; IP {d['ip_bytes_per_day_poll_connection'] / 1000:.1f} kB "
                                f"({d['ip_bytes_per_day_without_keepalive'] / 1000:.1f} kB without keepalive); CPU {d['cpu_seconds_per_day']} s"))
        rows.append(("  seed (Cumulocity docs)", "7 kB/day at a 1 h timeout"))
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print_targets(intake, idle, cpu)


def targets(intake, idle, cpu):
    """Issue 12's downlink targets next to this run's figures: (target, figure, met)."""
    out = []
    flat = [st for st in intake["stages"] if st["stage"] == "max"]
    if flat:
        r = flat[0]["ratio_edgebuf_to_raw_per_s"]
        out.append(("stored/s flat out >= 0.8x the receive-only floor",
                    f"{r}x ({flat[0]['edgebuf'].get('per_s')} vs {flat[0]['raw_client'].get('per_s')}/s)", r is not None and r >= 0.8))
    rss = [(st["stage"], st["edgebuf_peak_rss_mib_so_far"]) for st in intake["stages"]]
    out.append(("peak RSS < 50 MiB at every rate", ", ".join(f"{name} {mib} MiB" for name, mib in rss),
                all(mib < 50 for _, mib in rss)))
    refused = intake["edgebuf_log_response_too_large"]["count"]
    out.append(("zero answers refused for their size", f"{refused}", refused == 0))
    if cpu:
        out.append(("dedupe key < 10 % of the CPU per notification",
                    f"{cpu['key_share_of_cpu'] * 100:.1f} % ({cpu['key_us_per_notification']:.1f} of "
                    f"{cpu['intake_us_per_notification']:.1f} us; edgebuf-bench downlink-cpu)", cpu["key_share_of_cpu"] < 0.10))
    if "error" not in idle:
        per_min = idle["measured"]["context_switches_per_minute_while_held"]
        out.append(("idle: at most one wake-up per second (<= 60 context switches/min)", f"{per_min}/min",
                    per_min is not None and per_min <= 60))
    return out


def print_targets(intake, idle, cpu):
    rows = targets(intake, idle, cpu)
    print()
    print("Issue 12 targets (downlink)")
    width = max(len(t) for t, _, _ in rows)
    for target, figure, met in rows:
        print(f"  {'met ' if met else 'MISS'}  {target:<{width}}  {figure}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--edgebuf", required=True)
    r.add_argument("--results", default="bench-results")
    r.add_argument("--edgebuf-bench", help="edgebuf-bench, for the dedupe key's share of the CPU")
    r.add_argument("--latency-count", type=int, default=300)
    r.add_argument("--paced-rates", type=lambda text: [int(x) for x in text.split(",") if x], default=[50, 250, 1000])
    r.add_argument("--paced-seconds", type=float, default=10)
    r.add_argument("--intake-seconds", type=float, default=25)
    r.add_argument("--publishers", type=int, default=4)
    r.add_argument("--batch", type=int, default=50)
    r.add_argument("--faye-timeout", type=int, default=25)
    r.add_argument("--idle-hold", type=int, default=65)
    r.add_argument("--idle-cycles", type=int, default=2)
    r.add_argument("--keep", action="store_true", help="keep the work directory")
    c = sub.add_parser("raw-client")
    c.add_argument("--url", required=True)
    c.add_argument("--channel", required=True)
    p = sub.add_parser("inbox-poller")
    p.add_argument("--db", required=True)
    m = sub.add_parser("idle-monitor")
    m.add_argument("--upstream-port", type=int, required=True)
    m.add_argument("--pidfile", required=True)
    m.add_argument("--hold", type=float, required=True)
    m.add_argument("--cycles", type=int, required=True)
    m.add_argument("--seconds", type=float, required=True)
    m.add_argument("--interval", type=float, default=0.5)
    for s in (c, p, m):
        s.add_argument("--ready", required=True)
        s.add_argument("--out", required=True)
    args = parser.parse_args()
    {"run": run, "raw-client": raw_client, "inbox-poller": inbox_poller, "idle-monitor": idle_monitor}[args.command](args)


if __name__ == "__main__":
    main()
