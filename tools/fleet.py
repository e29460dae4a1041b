#!/usr/bin/env python3
"""Fleet benchmark (not a test): N `edgebuf run` daemons, each with its own database and device
identity, against one platform simulator; each is fed a sensor stream through its own
`edgebuf enqueue --jsonl --ack`. With --no-jitter (or the second run of --compare) the
uplink's backoff has no jitter and the downlink no re-handshake spread. The platform is cut off (every IoTDA request answered 503)
for --outage seconds and restored. Reported per second: requests the platform saw, how many
it answered 2xx / 503 / 429, records it accepted; then the time until every daemon's backlog
(what was acknowledged before the platform came back) has arrived, reconciliation (records
acknowledged but never accepted: must be 0; duplicates), peak RSS per daemon and total CPU.
Then the downlink: every daemon holds a Bayeux long poll; the Bayeux server "restarts" (all
sessions killed) and the handshakes per 100 ms show whether the re-handshakes spread out.

Usage: fleet.py --edgebuf PATH [--devices 200] [--rate 0.2] [--steady 20] [--outage 60]
       [--no-jitter] [--json FILE]
Python standard library only. Everything listens on 127.0.0.1.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
USER, PASSWORD = "t1/alice", "pw-1"


def control(base, method, path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read() or b"null")


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Device:
    """One daemon, its producer and what the producer got acknowledged."""

    def __init__(self, index, work, edgebuf, base, jitter):
        self.id = f"dev-{index:04d}"
        self.dir = os.path.join(work, self.id)
        os.makedirs(self.dir)
        self.db = os.path.join(self.dir, "edgebuf.db")
        self.config = os.path.join(self.dir, "edgebuf.toml")
        with open(self.config, "w") as f:
            f.write(f'[uplink]\nplatform = "iotda"\nurl = "{base}"\nallow_plain_http = true\n'
                    f'device_id = "{self.id}"\nsecret = "secret-{self.id}"\n'
                    + ("" if jitter else "backoff_jitter = false\n")
                    + f'[downlink]\nurl = "{base}/notification/realtime"\nallow_plain_http = true\n'
                    f'channels = ["/operations/{self.id}"]\nusername = "{USER}"\npassword = "{PASSWORD}"\n'
                    + ("" if jitter else 'rehandshake_spread = "0s"\n'))
        self.edgebuf = edgebuf
        self.sent = 0
        self.acked = set()
        self.lock = threading.Lock()

    def start(self):
        self.daemon = subprocess.Popen([self.edgebuf, "--db", self.db, "--config", self.config, "run"],
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "run.err"), "w"))
        self.producer = subprocess.Popen([self.edgebuf, "--db", self.db, "enqueue", "--jsonl", "--ack"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=open(os.path.join(self.dir, "enqueue.err"), "w"), bufsize=0)
        self.reader = threading.Thread(target=self._read_acks, daemon=True)
        self.reader.start()

    def _read_acks(self):
        for line in self.producer.stdout:
            try:
                number = json.loads(line)["line"]
            except (ValueError, KeyError):
                continue
            with self.lock:
                self.acked.add(number)  # line n carries seq n

    def send_one(self):
        self.sent += 1
        line = ('{"kind":"property","device_id":"%s","service_id":"Sensor","properties":{"seq":%d,"t":%.3f}}\n'
                % (self.id, self.sent, time.time()))
        try:
            self.producer.stdin.write(line.encode())
        except (BrokenPipeError, ValueError):
            pass

    def acked_now(self):
        with self.lock:
            return set(self.acked)


class Collector:
    """Polls the simulator's request log and accepted records."""

    def __init__(self, base):
        self.base = base
        self.since_request = 1
        self.since_record = 0
        self.requests = []    # (at, status)
        self.at_of_seq = {}
        self.records = []     # (at, device, seq)
        self.accepted = {}    # device -> set of seq
        self.duplicates = 0

    def poll(self):
        for entry in control(self.base, "GET", f"/_sim/requests?since={self.since_request}")["requests"]:
            self.since_request = max(self.since_request, entry["seq"] + 1)
            if "/sys/" in entry["path"]:
                self.requests.append((entry["at"], entry["status"]))
                self.at_of_seq[entry["seq"]] = entry["at"]
        answer = control(self.base, "GET", f"/_sim/accepted?since={self.since_record}")
        for record in answer["records"]:
            device, seq = record["device_id"], record["properties"]["seq"]
            got = self.accepted.setdefault(device, set())
            if seq in got:
                self.duplicates += 1
            got.add(seq)
            self.records.append((self.at_of_seq.get(record["request"]), device, seq))
        self.since_record = answer["next"]


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_fleet(args, jitter, label):
    cpu_before = children_cpu()
    work = tempfile.mkdtemp(prefix=f"edgebuf-fleet-{label}.", dir="/var/tmp")
    ready = os.path.join(work, "ready.json")
    devices_args = []
    for i in range(args.devices):
        devices_args += ["--device", f"dev-{i:04d}=secret-dev-{i:04d}"]
    sim = subprocess.Popen([sys.executable, os.path.join(HERE, "simulator.py"), "--ready-file", ready,
                            "--state-dir", os.path.join(work, "state"), "--cumulocity-user", f"{USER}:{PASSWORD}"]
                           + devices_args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sim.err"), "w"))
    fleet = []
    keep_work = False
    result = {"label": label, "jitter": jitter, "devices": args.devices, "rate_per_device": args.rate,
              "outage_s": args.outage}
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if time.monotonic() > deadline or sim.poll() is not None:
                sys.exit("the simulator did not start")
            time.sleep(0.05)
        time.sleep(0.1)
        base = json.load(open(ready))["url"]
        fleet = [Device(i, work, args.edgebuf, base, jitter) for i in range(args.devices)]
        print(f"[{label}] starting {args.devices} daemons and producers", flush=True)
        for device in fleet:
            device.start()
        collector = Collector(base)
        stop_feeding = threading.Event()

        def feed():
            # Each device sends `rate` records a second, the devices spread over the second.
            period = 1.0 / args.rate
            start = time.monotonic()
            tick = 0
            while not stop_feeding.is_set():
                for index, device in enumerate(fleet):
                    due = start + tick * period + period * index / len(fleet)
                    delay = due - time.monotonic()
                    if delay > 0:
                        if stop_feeding.wait(delay):
                            return
                    device.send_one()
                tick += 1

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        t0 = time.monotonic()

        def watch(seconds, until=None):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(0.5)
                collector.poll()
                if until is not None and until():
                    return True
            return False

        watch(args.steady)
        marks = {}
        collector.poll()
        marks["outage_start"] = time.monotonic()
        control(base, "POST", "/_sim/faults", {"count": 10 ** 9, "action": "respond", "status": 503,
                                                "path": "^/v5/"})
        print(f"[{label}] platform cut off for {args.outage} s", flush=True)
        watch(args.outage)
        control(base, "DELETE", "/_sim/faults")
        marks["outage_end"] = time.monotonic()
        backlog = {device.id: device.acked_now() for device in fleet}
        print(f"[{label}] platform back; waiting for every backlog (up to {3 * args.outage} s)", flush=True)

        def drained():
            return all(backlog[d.id] <= collector.accepted.get(d.id, set()) for d in fleet)

        all_drained = watch(3 * args.outage, until=drained)
        marks["drained"] = time.monotonic() if all_drained else None
        watch(5)

        # The downlink: a Bayeux server restart, handshakes per 100 ms.
        stats = control(base, "GET", "/_sim/bayeux/stats")
        handshakes_before = stats["handshakes"]
        control(base, "POST", "/_sim/bayeux/kill", {})
        marks["bayeux_kill"] = time.monotonic()
        handshake_series = []
        end = time.monotonic() + args.rehandshake_window
        last = handshakes_before
        while time.monotonic() < end:
            time.sleep(0.1)
            now = control(base, "GET", "/_sim/bayeux/stats")["handshakes"]
            handshake_series.append(now - last)
            last = now
            if now - handshakes_before >= args.devices and sum(handshake_series[-20:]) == 0:
                break
        collector.poll()

        # Stop the producers, then let the last records drain and reconcile.
        stop_feeding.set()
        feeder.join()
        for device in fleet:
            try:
                device.producer.stdin.close()
            except OSError:
                pass
        for device in fleet:
            device.producer.wait(timeout=60)
            device.reader.join(timeout=10)
        final = {device.id: device.acked_now() for device in fleet}
        watch(60, until=lambda: all(final[d.id] <= collector.accepted.get(d.id, set()) for d in fleet))

        rss = [proc_status(d.daemon.pid, "VmHWM") or 0 for d in fleet]
        # VmHWM counts the pages of the binary and the libraries, which all daemons share;
        # RssAnon is the daemon's own memory (now, not its peak).
        anon = [proc_status(d.daemon.pid, "RssAnon") or 0 for d in fleet]
        cpu_daemons = sum(proc_cpu_seconds(d.daemon.pid) for d in fleet)
        for device in fleet:
            device.daemon.send_signal(signal.SIGTERM)
        exits = []
        for device in fleet:
            try:
                exits.append(device.daemon.wait(timeout=30))
            except subprocess.TimeoutExpired:
                device.daemon.kill()
                exits.append(None)
        # What is still in each outbox after the stop: acknowledged, not delivered, not lost.
        waiting = 0
        for device in fleet:
            try:
                with sqlite3.connect(f"file:{device.db}?mode=ro", uri=True) as db:
                    waiting += db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            except sqlite3.Error:
                pass
        failed = [d for d, e in zip(fleet, exits) if e != 0]
        for device in failed[:3]:
            with open(os.path.join(device.dir, "run.err"), errors="replace") as f:
                tail = f.read()[-1500:]
            print(f"[{label}] {device.id}: edgebuf run did not exit 0 on SIGTERM; its log ends:\n{tail}", flush=True)
        if failed:
            keep_work = True
        cpu_sim = proc_cpu_seconds(sim.pid)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=10)
        result["cpu_s_all"] = children_cpu() - cpu_before

        # The series, per second since the feed started. The simulator stamps requests with
        # its time.monotonic(), the same CLOCK_MONOTONIC as ours.
        origin = t0
        seconds = int(time.monotonic() - origin) + 1
        series = [{"t": s, "requests": 0, "ok": 0, "503": 0, "429": 0, "other": 0, "records": 0} for s in range(seconds)]
        for at, status in collector.requests:
            index = int(at - origin)
            if 0 <= index < seconds:
                row = series[index]
                row["requests"] += 1
                key = "ok" if status is not None and 200 <= status < 300 else str(status) if status in (503, 429) else "other"
                row[key] += 1
        for at, _, _ in collector.records:
            if at is not None and 0 <= int(at - origin) < seconds:
                series[int(at - origin)]["records"] += 1

        s_out, s_end = marks["outage_start"] - origin, marks["outage_end"] - origin
        steady = [r["requests"] for r in series if 3 <= r["t"] < int(s_out)]
        steady_rate = statistics.median(steady) if steady else 0
        after = [r for r in series if int(s_end) <= r["t"] <= int(s_end) + 3 * args.outage]
        peak = max(after, key=lambda r: r["requests"]) if after else {"t": None, "requests": 0}
        undelivered = sum(len(final[d.id] - collector.accepted.get(d.id, set())) for d in fleet)
        lost = max(0, undelivered - waiting)
        acked_total = sum(len(final[d.id]) for d in fleet)
        hs_total = sum(handshake_series)
        hs_peak = max(handshake_series) if handshake_series else 0
        first_hs = next((i for i, n in enumerate(handshake_series) if n), None)
        last_hs = max((i for i, n in enumerate(handshake_series) if n), default=None)
        result.update({
            "steady_requests_per_s": steady_rate,
            "peak_requests_per_s_after_outage": peak["requests"],
            "peak_at_s_after_outage": None if peak["t"] is None else peak["t"] - int(s_end),
            "peak_ratio": (peak["requests"] / steady_rate) if steady_rate else None,
            "drain_s_after_outage": None if marks["drained"] is None else marks["drained"] - marks["outage_end"],
            "acked": acked_total, "undelivered_at_stop": undelivered, "in_outboxes_at_stop": waiting,
            "lost": lost, "duplicates": collector.duplicates,
            "peak_rss_mib_max": max(rss) / 1024, "peak_rss_mib_median": statistics.median(rss) / 1024,
            "cpu_s_daemons": cpu_daemons, "cpu_s_simulator": cpu_sim,
            "rss_anon_mib_max_at_end": max(anon) / 1024,
            "daemon_exits_nonzero": sum(1 for e in exits if e != 0),
            "rehandshakes": hs_total, "rehandshake_peak_per_100ms": hs_peak,
            "rehandshake_spread_s": None if first_hs is None else (last_hs - first_hs + 1) / 10,
            "rehandshake_per_100ms": handshake_series,
            "outage_start_s": s_out, "outage_end_s": s_end, "series": series,
        })
        return result
    finally:
        for device in fleet:
            for process in (getattr(device, "producer", None), getattr(device, "daemon", None)):
                if process is not None and process.poll() is None:
                    process.kill()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
        if keep_work:
            print(f"[{label}] kept {work} for a look", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(result, outage):
    print(f"\n== {result['label']} (jitter {'on' if result['jitter'] else 'OFF'}), {result['devices']} devices, "
          f"{result['rate_per_device']:g} record/s each ==")
    print(f"{'t':>4} {'requests':>9} {'2xx':>6} {'503':>6} {'429':>5} {'records':>8}")
    for row in result["series"]:
        mark = ""
        if row["t"] == int(result["outage_start_s"]):
            mark = "  <- platform cut off"
        elif row["t"] == int(result["outage_end_s"]):
            mark = "  <- platform back"
        print(f"{row['t']:>4} {row['requests']:>9} {row['ok']:>6} {row['503']:>6} {row['429']:>5} {row['records']:>8}{mark}")
    ratio = result["peak_ratio"]
    drain = result["drain_s_after_outage"]
    print(f"steady rate {result['steady_requests_per_s']:.0f} requests/s; after the outage the busiest second held "
          f"{result['peak_requests_per_s_after_outage']} ({'n/a' if ratio is None else f'{ratio:.2f}x'}, "
          f"{result['peak_at_s_after_outage']} s after it ended)  target <= 2x: "
          f"{'met' if ratio is not None and ratio <= 2 else 'NOT met'}")
    print(f"every backlog delivered {'never (within 3x the outage)' if drain is None else f'{drain:.1f} s'} after the outage"
          f"  target <= {3 * outage} s: {'met' if drain is not None and drain <= 3 * outage else 'NOT met'}")
    print(f"records acknowledged {result['acked']}; not delivered when the daemons were stopped {result['undelivered_at_stop']}, "
          f"of them in the outboxes {result['in_outboxes_at_stop']}; lost {result['lost']} (target 0: "
          f"{'met' if result['lost'] == 0 else 'NOT met'}); duplicates {result['duplicates']}")
    print(f"peak RSS per daemon (VmHWM, shared library pages included): max {result['peak_rss_mib_max']:.1f} MiB, "
          f"median {result['peak_rss_mib_median']:.1f} MiB  target < 30 MiB: {'met' if result['peak_rss_mib_max'] < 30 else 'NOT met'};"
          f" own memory (RssAnon) at the end: max {result['rss_anon_mib_max_at_end']:.1f} MiB")
    print(f"CPU: daemons {result['cpu_s_daemons']:.1f} s, simulator {result['cpu_s_simulator']:.1f} s, "
          f"everything this run started {result['cpu_s_all']:.1f} s; daemons that did not exit 0 on SIGTERM: {result['daemon_exits_nonzero']}")
    print(f"downlink: {result['rehandshakes']} re-handshakes after the Bayeux restart, at most "
          f"{result['rehandshake_peak_per_100ms']} in one 100 ms, spread over {result['rehandshake_spread_s']} s")


def plot(results, path):
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("gnuplot not found: no plot")
        return
    data = {}
    for result in results:
        name = path + f".{result['label']}.dat"
        with open(name, "w") as f:
            for row in result["series"]:
                f.write(f"{row['t'] - result['outage_start_s']:.1f} {row['requests']} {row['ok']}\n")
        data[result["label"]] = name
    outage = results[0]["outage_end_s"] - results[0]["outage_start_s"]
    lines = [f"'{name}' using 1:2 with lines lw 2 title '{label}: requests/s'" for label, name in data.items()]
    script = f"""set terminal pngcairo size 1100,500
set output '{path}'
set title 'edgebuf fleet: {results[0]['devices']} devices, platform cut off for {outage:.0f} s (at 0)'
set xlabel 'seconds since the platform was cut off'
set ylabel 'requests per second at the platform'
set grid
set object 1 rect from 0,graph 0 to {outage:.1f},graph 1 fc rgb '#eeeeee' behind
plot {', '.join(lines)}
"""
    subprocess.run([gnuplot], input=script.encode(), check=True)
    for name in data.values():
        os.remove(name)
    print(f"plot: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edgebuf", required=True)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.2,
                        help="records per second per device (default one every 5 s: 200 devices then make 40 requests/s, "
                             "well inside what the Python simulator serves on this machine, so the platform is not the bottleneck)")
    parser.add_argument("--steady", type=int, default=20, help="seconds before the outage")
    parser.add_argument("--outage", type=int, default=60)
    parser.add_argument("--rehandshake-window", type=int, default=40)
    parser.add_argument("--compare", action="store_true", help="run with the defaults, then without jitter")
    parser.add_argument("--no-jitter", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--plot", help="PNG of requests/s over time (gnuplot)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 16384)), hard))
    runs = [(True, "defaults"), (False, "no-jitter")] if args.compare else [(not args.no_jitter, "no-jitter" if args.no_jitter else "defaults")]
    results = []
    for jitter, label in runs:
        started = time.monotonic()
        result = run_fleet(args, jitter, label)
        result["wall_s"] = time.monotonic() - started
        results.append(result)
        report(result, args.outage)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
