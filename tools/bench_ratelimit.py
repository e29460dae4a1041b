#!/usr/bin/env python3
"""Rate-limit recovery benchmark (not a test): `edgebuf run` drains a backlog to the simulator,
which rate-limits the device for a while (a fixed budget in a sliding one-second window, the
simulator's `rate_limit_per_second`, answered 403 IOTDA.021101 like IoTDA) and then stops.

Prints, per second, the requests the platform saw, accepted and refused, and checks the two
targets against what it saw in the same run:
  - while limiting: no second holds more than 1.2x the budget the platform accepts;
  - after the limit ends: back to the pre-limit request rate (90 % of the median accepted/s
    before the limit) within 30 s.
Writes the series as JSON (--json). Python standard library only.

Usage: bench_ratelimit.py --edgebuf PATH [--budget 20] [--before 10] [--limited 30]
       [--after 40] [--json FILE]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def control(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as answer:
        return json.loads(answer.read() or b"null")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edgebuf", required=True)
    parser.add_argument("--budget", type=float, default=20.0, help="requests per second the platform accepts while limiting")
    parser.add_argument("--before", type=int, default=10, help="seconds unlimited before the limit")
    parser.add_argument("--limited", type=int, default=30, help="seconds of limiting")
    parser.add_argument("--after", type=int, default=40, help="seconds unlimited after the limit")
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--pace", type=float, default=300.0, help="[uplink] max_requests_per_second: the rate before the limit")
    parser.add_argument("--json")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="edgebuf-ratelimit.")
    ready = os.path.join(work, "ready.json")
    sim = subprocess.Popen([sys.executable, os.path.join(HERE, "simulator.py"), "--ready-file", ready,
                            "--state-dir", os.path.join(work, "state"), "--keep", "count",
                            "--device", "gw-1=secret-1"],
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sim.err"), "w"))
    daemon = None
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if time.monotonic() > deadline or sim.poll() is not None:
                sys.exit("the simulator did not start")
            time.sleep(0.05)
        time.sleep(0.05)
        info = json.load(open(ready))
        base = info["url"]
        db = os.path.join(work, "edgebuf.db")
        config = os.path.join(work, "edgebuf.toml")
        # Small bodies, so the drain is many requests: the rate is what is measured.
        with open(config, "w") as f:
            f.write(f'[uplink]\nplatform = "iotda"\nurl = "{base}"\nallow_plain_http = true\n'
                    f'device_id = "gw-1"\nsecret = "secret-1"\nmax_body_bytes = 2048\n'
                    # A configured pace, so the rate to get back to does not depend on how fast
                    # this machine is (a release build drains ~1,250 requests/s here, and the
                    # backlog would run out before the recovery could be seen).
                    f'max_requests_per_second = {args.pace:g}\n')
        lines = "".join(
            '{"kind":"property","device_id":"gw-1","service_id":"S","properties":{"seq":%d}}\n' % i
            for i in range(args.records))
        enqueue = subprocess.run([args.edgebuf, "--db", db, "enqueue", "--jsonl"], input=lines.encode(),
                                 capture_output=True)
        if enqueue.returncode != 0:
            sys.exit(f"enqueue failed: {enqueue.stderr.decode()[:500]}")

        daemon = subprocess.Popen([args.edgebuf, "--db", db, "--config", config, "run"],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "run.err"), "w"))
        seen = []  # (at, status)
        since = 1
        started = None
        phase_marks = {}

        def collect():
            nonlocal since
            for entry in control(base, "GET", f"/_sim/requests?since={since}")["requests"]:
                since = max(since, entry["seq"] + 1)
                if "/sys/properties/report" in entry["path"]:
                    seen.append((entry["at"], entry["status"]))

        # The simulator's clock: read it from the first request; phases are laid on it.
        t0 = time.monotonic()
        total = args.before + args.limited + args.after
        limited_on = limited_off = False
        while time.monotonic() - t0 < total:
            time.sleep(0.25)
            collect()
            if started is None and seen:
                started = seen[0][0]
            elapsed = time.monotonic() - t0
            if not limited_on and elapsed >= args.before:
                control(base, "POST", "/_sim/config", {"rate_limit_per_second": args.budget})
                collect()
                phase_marks["limit_on"] = seen[-1][0] if seen else None
                limited_on = True
            if limited_on and not limited_off and elapsed >= args.before + args.limited:
                control(base, "POST", "/_sim/config", {"rate_limit_per_second": None})
                collect()
                phase_marks["limit_off"] = seen[-1][0] if seen else None
                limited_off = True
        collect()
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()

    if not seen or phase_marks.get("limit_on") is None or phase_marks.get("limit_off") is None:
        sys.exit("too few requests were seen to measure anything (did the backlog drain before the limit?)")
    origin = seen[0][0]
    on = phase_marks["limit_on"] - origin
    off = phase_marks["limit_off"] - origin
    seconds = int(max(at for at, _ in seen) - origin) + 1
    per_second = [{"t": s, "seen": 0, "accepted": 0, "refused": 0} for s in range(seconds)]
    for at, status in seen:
        row = per_second[int(at - origin)]
        row["seen"] += 1
        if status is not None and 200 <= status < 300:
            row["accepted"] += 1
        elif status in (403, 429):
            row["refused"] += 1

    before = [r["accepted"] for r in per_second if 1 <= r["t"] < int(on)]
    pre_limit = statistics.median(before) if before else 0
    # While limiting, after the first refusal's second (the device does not know the budget
    # before the platform tells it).
    first_refusal = next((r["t"] for r in per_second if r["refused"] > 0), None)
    during = [r for r in per_second if first_refusal is not None and first_refusal + 1 <= r["t"] < int(off)]
    worst = max((r["seen"] for r in during), default=0)
    back = next((r["t"] for r in per_second if r["t"] > off and r["accepted"] >= 0.9 * pre_limit), None)
    recovery = None if back is None else back - off
    drained = per_second[-1]["t"]

    print(f"{'t':>4} {'seen':>6} {'accepted':>9} {'refused':>8}   (requests per second at the platform)")
    for r in per_second:
        mark = " <- limit on" if r["t"] == int(on) else (" <- limit off" if r["t"] == int(off) else "")
        print(f"{r['t']:>4} {r['seen']:>6} {r['accepted']:>9} {r['refused']:>8}{mark}")
    print()
    print(f"pre-limit rate (median accepted/s before the limit): {pre_limit:.0f} requests/s; budget {args.budget:g}/s")
    ok_worst = worst <= 1.2 * args.budget
    print(f"while limiting: the busiest second held {worst} requests = {worst / args.budget:.2f}x the budget"
          f"  (target <= 1.2x: {'met' if ok_worst else 'NOT met'})")
    if recovery is None:
        print(f"after the limit: never back to 90 % of the pre-limit rate within the {args.after} s observed  (target <= 30 s: NOT met)")
    else:
        print(f"after the limit: back to >= 90 % of the pre-limit rate after {recovery:.1f} s"
              f"  (target <= 30 s: {'met' if recovery <= 30 else 'NOT met'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"budget": args.budget, "pre_limit_rate": pre_limit, "worst_second_while_limited": worst,
                       "recovery_seconds": recovery, "limit_on_s": on, "limit_off_s": off,
                       "per_second": per_second}, f, indent=1)


if __name__ == "__main__":
    main()
