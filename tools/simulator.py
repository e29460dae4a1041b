#!/usr/bin/env python3
"""Platform simulator for edgebuf: Huawei IoTDA device API and Cumulocity measurements.

The real cloud platforms cannot be reached from the test machines, so this single-file server
(Python 3 standard library only) stands in for them in tests, benchmarks and the README demo.

Platforms served (same listening socket):
  * IoTDA device API over HTTP(S): POST /v5/device-auth (HMAC-SHA256 password, access tokens),
    properties report, messages up, gateway child-device properties report.
  * Cumulocity: POST /measurement/measurements (HTTP Basic auth, collection or single).
  * Control API under /_sim/ (no auth): fault injection, accepted records, request log, stats,
    runtime configuration, reset.  GET /health answers "ok".

Start:
    python3 tools/simulator.py [--host 127.0.0.1] [--port 0] [--https] [--cert F --key F]
        [--state-dir DIR] [--device ID=SECRET ...] [--cumulocity-user TENANT/USER:PASSWORD ...]
        [--token-lifetime SECONDS] [--keep all|count] [--ready-file FILE] [--verbose]

When listening it prints ONE JSON line to stdout: {"url": ..., "port": ..., "ca_file": ...,
"pid": ...}. Signal that pid: a launcher such as a pyenv shim may have forked in between.
See tools/SIMULATOR.md for the full reference.

Code map (top to bottom): constants and small helpers; Request/Response/ApiError; fault queue;
Simulator state (one lock); TLS certificate generation; IoTDA handlers; Cumulocity handlers;
control API handlers; Router (with the extension point for a Bayeux endpoint); the HTTP
request handler that applies faults at the socket level; server start-up and main().
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import copy
import datetime as dt
import email.utils
import hashlib
import hmac
import http
import http.server
import itertools
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

DEFAULT_TOKEN_LIFETIME = 86399
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_REAUTH_GRACE = 30.0
DEFAULT_MAX_CHILDREN = 50
REQUEST_LOG_LIMIT = 10_000
STORE_CAP_BYTES = 64 * 1024 * 1024  # bodies larger than this are counted, then discarded
READ_CHUNK = 64 * 1024
TLS_HANDSHAKE_TIMEOUT = 10.0

EVENT_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", re.ASCII)
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$", re.ASCII)
AUTH_TIMESTAMP_RE = re.compile(r"^\d{10}$", re.ASCII)

C8Y_COLLECTION = "application/vnd.com.nsn.cumulocity.measurementcollection+json"
C8Y_MEASUREMENT = "application/vnd.com.nsn.cumulocity.measurement+json"

FAULT_ACTIONS = ("respond", "close", "reset", "truncate", "garbage", "huge", "hang", "slow_drip", "pass")

GARBAGE_BODY = (
    b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n"
    b"<body><h1>Network login required</h1><p>Simulated captive portal / proxy page. "
    b"This is not JSON.</p></body></html>\n"
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_event_time(moment: dt.datetime) -> str:
    """yyyy-MM-ddTHH:mm:ss.SSSZ in UTC."""
    moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def valid_event_time(value) -> bool:
    if not isinstance(value, str) or not EVENT_TIME_RE.match(value):
        return False
    try:
        dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------------------------------
# Request, Response, ApiError
# --------------------------------------------------------------------------------------------


class Request:
    """One parsed HTTP request as handlers see it (body fully read)."""

    def __init__(self, method, target, headers, body, body_bytes, seq, conn_id, scheme):
        parts = urllib.parse.urlsplit(target)
        self.method = method
        self.path = parts.path or "/"
        self.query = urllib.parse.parse_qs(parts.query)
        self.headers = headers
        self.body = body  # bytes, or None when larger than STORE_CAP_BYTES
        self.body_bytes = body_bytes
        self.seq = seq
        self.conn_id = conn_id
        self.scheme = scheme
        self.received = utc_now()

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def query_int(self, name, default=0):
        values = self.query.get(name)
        if not values:
            return default
        try:
            return int(values[0])
        except ValueError:
            raise control_error(f"query parameter {name} must be an integer")

    def json(self):
        """Parse the body as JSON; raises ValueError on anything malformed."""
        if self.body is None:
            raise ValueError("body too large")
        return json.loads(self.body.decode("utf-8"))

    def base_url(self):
        return f"{self.scheme}://{self.header('Host', 'localhost')}"


class Response:
    """A complete answer: status, extra headers and body bytes."""

    def __init__(self, status, body=b"", content_type=None, headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers or [])

    @classmethod
    def json(cls, status, obj, content_type="application/json", headers=None):
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        return cls(status, body, content_type, headers)

    @classmethod
    def text(cls, status, text, content_type="text/plain; charset=utf-8"):
        return cls(status, text.encode("utf-8"), content_type)


class ApiError(Exception):
    """Raised by handlers to answer early with an error response."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def iotda_error(status, code, msg, **extra) -> ApiError:
    body = {"error_code": code, "error_msg": msg}
    body.update(extra)
    return ApiError(Response.json(status, body))


def c8y_error(status, error, msg) -> ApiError:
    return ApiError(Response.json(status, {"error": error, "message": msg}))


def control_error(msg, status=400) -> ApiError:
    return ApiError(Response.json(status, {"error": msg}))


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


class Fault:
    """One queued fault: applies to the next `count` non-control requests matching `path`."""

    FIELDS = {"count", "path", "status", "error_code", "error_msg", "error", "retry_after",
              "delay", "action", "accept", "drip_interval", "size"}

    def __init__(self, spec: dict, fault_id: int):
        if not isinstance(spec, dict):
            raise ValueError("a fault must be a JSON object")
        unknown = set(spec) - self.FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        self.id = fault_id
        self.action = spec.get("action", "respond")
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"action must be one of {list(FAULT_ACTIONS)}")
        self.remaining = self._int(spec, "count", 1, minimum=1)
        self.path = spec.get("path")
        self.path_re = re.compile(self.path) if self.path is not None else None
        self.status = self._int(spec, "status", None, minimum=100, maximum=599)
        self.error_code = spec.get("error_code")
        self.error = spec.get("error")
        self.error_msg = spec.get("error_msg", "Simulated fault.")
        self.retry_after = spec.get("retry_after")
        self.delay = self._number(spec, "delay", 0.0)
        self.drip_interval = self._number(spec, "drip_interval", 1.0)
        self.size = self._int(spec, "size", 8 << 20, minimum=2, maximum=256 << 20)
        self.accept = bool(spec.get("accept", False))

    @staticmethod
    def _int(spec, key, default, minimum=None, maximum=None):
        value = spec.get(key, default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key} must be an integer")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(f"{key} out of range")
        return value

    @staticmethod
    def _number(spec, key, default):
        value = spec.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be a non-negative number")
        return float(value)

    def matches(self, path):
        return self.path_re is None or self.path_re.search(path) is not None

    def summary(self):
        return {"id": self.id, "action": self.action, "status": self.status,
                "accept": self.accept, "delay": self.delay, "path": self.path}

    def describe(self):
        out = self.summary()
        out.update(remaining=self.remaining, error_code=self.error_code,
                   retry_after=self.retry_after)
        return out


class FaultQueue:
    """Faults in the order they were posted. Not locked itself: Simulator holds the lock."""

    def __init__(self):
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec) -> Fault:
        fault = Fault(spec, next(self._ids))
        self._faults.append(fault)
        return fault

    def take(self, path) -> Fault | None:
        for fault in self._faults:
            if fault.matches(path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def pending(self):
        return [f.describe() for f in self._faults]

    def clear(self):
        self._faults.clear()


# --------------------------------------------------------------------------------------------
# Simulator state
# --------------------------------------------------------------------------------------------


def default_config(token_lifetime=DEFAULT_TOKEN_LIFETIME, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
    return {
        "token_lifetime": token_lifetime,
        "max_body_bytes": max_body_bytes,
        "strict_event_time": False,
        "rate_limit_per_second": None,
        "missing_children": [],
        "children_limit_status": 403,
        "max_children": DEFAULT_MAX_CHILDREN,
        "reauth_grace_seconds": DEFAULT_REAUTH_GRACE,
    }


class Simulator:
    """All mutable state, guarded by one lock. Handlers call the public methods only."""

    def __init__(self, config, devices, c8y_users, keep="all", verbose=False, first_id=10001):
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.epoch = time.monotonic()  # the request log's started_s / finished_s count from here
        self.verbose = verbose
        self.keep_all = keep == "all"
        self._initial = (copy.deepcopy(config), dict(devices), dict(c8y_users))
        self.config = copy.deepcopy(config)
        self.devices = dict(devices)
        self.c8y_users = dict(c8y_users)  # "tenant/user" -> password
        self.tokens: dict[str, list] = {}  # token -> [device_id, expires_at (monotonic)]
        self._seq = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._object_ids = itertools.count(first_id)
        self.faults = FaultQueue()
        self.clear()

    # -- reset ---------------------------------------------------------------------------------

    def clear(self, restore_config=False, drop_tokens=False):
        with self.lock:
            self.records: list[dict] = []
            self.record_count = 0
            self.by_kind = collections.Counter()
            self.requests = collections.deque(maxlen=REQUEST_LOG_LIMIT)
            self.faults.clear()
            self.rate_windows: dict = {}
            self.stats = {"requests": 0, "connections": 0, "statuses": collections.Counter(),
                          "auths": collections.Counter(), "max_body_bytes": 0,
                          "faults_applied": 0}
            if restore_config:
                config, devices, users = self._initial
                self.config = copy.deepcopy(config)
                self.devices = dict(devices)
                self.c8y_users = dict(users)
            if drop_tokens:
                self.tokens.clear()

    # -- config --------------------------------------------------------------------------------

    def cfg(self, key):
        with self.lock:
            return self.config[key]

    def update_config(self, changes: dict):
        """All keys or none: an invalid key leaves everything as it was."""
        with self.lock:
            saved = (copy.deepcopy(self.config), dict(self.devices), dict(self.c8y_users),
                     dict(self.tokens))
            try:
                for key, value in changes.items():
                    apply_config_change(self, key, value)
            except ValueError:
                self.config, self.devices, self.c8y_users, self.tokens = saved
                raise
            return self.config_view()

    def config_view(self):
        with self.lock:
            view = copy.deepcopy(self.config)
            view["devices"] = sorted(self.devices)
            view["cumulocity_users"] = sorted(self.c8y_users)
            view["keep"] = "all" if self.keep_all else "count"
            view["active_tokens"] = len(self.tokens)
            return view

    # -- credentials and tokens ----------------------------------------------------------------

    def device_secret(self, device_id):
        with self.lock:
            return self.devices.get(device_id)

    def c8y_password(self, user):
        with self.lock:
            return self.c8y_users.get(user)

    def count_auth(self, ok: bool):
        with self.lock:
            self.stats["auths"]["ok" if ok else "failed"] += 1

    def issue_token(self, device_id):
        """New token; older tokens of the device stay valid for the grace period at most."""
        with self.lock:
            now = time.monotonic()
            lifetime = self.config["token_lifetime"]
            grace_end = now + self.config["reauth_grace_seconds"]
            for token, entry in list(self.tokens.items()):
                if entry[1] <= now:
                    del self.tokens[token]
                elif entry[0] == device_id:
                    entry[1] = min(entry[1], grace_end)
            token = secrets.token_hex(32)
            self.tokens[token] = [device_id, now + lifetime]
            return token, lifetime

    def token_device(self, token):
        with self.lock:
            entry = self.tokens.get(token)
            if entry is None or entry[1] <= time.monotonic():
                return None
            return entry[0]

    def admit(self, key, limit) -> bool:
        """Sliding one-second window per key; True if the request may proceed."""
        if not limit:
            return True
        with self.lock:
            now = time.monotonic()
            window = self.rate_windows.setdefault(key, collections.deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True

    # -- accepted records ----------------------------------------------------------------------

    def accept(self, records: list[dict]) -> list[int]:
        """Record accepted data atomically; returns the index given to each record."""
        with self.lock:
            indices = []
            for record in records:
                record["index"] = self.record_count
                indices.append(self.record_count)
                self.record_count += 1
                self.by_kind[record["kind"]] += 1
                if self.keep_all:
                    self.records.append(record)
            return indices

    def accepted_view(self, since):
        with self.lock:
            if not self.keep_all:
                return {"count": self.record_count, "by_kind": dict(self.by_kind)}
            return {"records": copy.deepcopy(self.records[max(since, 0):]),
                    "next": len(self.records)}

    def next_object_id(self):
        with self.lock:
            return str(next(self._object_ids))

    # -- request log and statistics ------------------------------------------------------------

    def next_seq(self):
        with self.lock:
            return next(self._seq)

    def new_connection(self):
        with self.lock:
            self.stats["connections"] += 1
            return next(self._conn_ids)

    def log_start(self, req: Request, fault: Fault | None, started: float):
        """started: time.monotonic() when the request's headers had been read."""
        entry = {"seq": req.seq, "connection": req.conn_id, "method": req.method,
                 "path": req.path, "status": None, "outcome": None, "body_bytes": req.body_bytes,
                 "had_access_token": req.header("access_token") is not None,
                 "had_authorization": req.header("Authorization") is not None,
                 "content_type": req.header("Content-Type"),
                 "fault": fault.summary() if fault else None,
                 "started_s": round(started - self.epoch, 3), "finished_s": None,
                 "duration_ms": None, "done": False,
                 "at": round(started, 4)}
        with self.lock:
            self.requests.append(entry)
            self.stats["requests"] += 1
            self.stats["faults_applied"] += fault is not None
            self.stats["max_body_bytes"] = max(self.stats["max_body_bytes"], req.body_bytes)
        return entry

    def annotate_request(self, seq, **fields):
        """Adds fields to request `seq`'s log entry (an extra route saying what it did)."""
        with self.lock:
            for entry in reversed(self.requests):
                if entry["seq"] == seq:
                    entry.update(fields)
                    return

    def log_finish(self, entry, status, outcome, started):
        """status: the status line sent (None if none); outcome: answered, close, reset, ..."""
        with self.lock:
            now = time.monotonic()
            entry.update(status=status, outcome=outcome, done=True,
                         finished_s=round(now - self.epoch, 3),
                         duration_ms=round((now - started) * 1000, 3))
            self.stats["statuses"][str(status) if status is not None else outcome] += 1

    def requests_view(self, since):
        with self.lock:
            return {"requests": [dict(e) for e in self.requests if e["seq"] >= since]}

    def stats_view(self):
        with self.lock:
            out = dict(self.stats)
            out["statuses"] = dict(self.stats["statuses"])
            out["auths"] = {"ok": self.stats["auths"]["ok"],
                            "failed": self.stats["auths"]["failed"]}
            out["accepted"] = dict(self.by_kind)
            out["accepted"]["total"] = self.record_count
            out["faults_pending"] = len(self.faults.pending())
            return out

    # -- faults --------------------------------------------------------------------------------

    def add_faults(self, specs):
        with self.lock:
            return [self.faults.add(spec).id for spec in specs]

    def take_fault(self, path):
        with self.lock:
            return self.faults.take(path)

    def pending_faults(self):
        with self.lock:
            return self.faults.pending()

    def clear_faults(self):
        with self.lock:
            self.faults.clear()


def _require(cond, msg):
    if not cond:
        raise ValueError(msg)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# /_sim/config keys that simply replace a config value: key -> (validator, error message)
SIMPLE_CONFIG_KEYS = {
    "token_lifetime": (lambda v: _is_number(v) and v > 0, "token_lifetime must be > 0"),
    "max_body_bytes": (_positive_int, "max_body_bytes must be a positive integer"),
    "max_children": (_positive_int, "max_children must be a positive integer"),
    "strict_event_time": (lambda v: isinstance(v, bool), "strict_event_time must be a boolean"),
    "rate_limit_per_second": (lambda v: v is None or (_is_number(v) and v >= 0),
                              "rate_limit_per_second must be a number >= 0 or null"),
    "missing_children": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                         "missing_children must be a list of device ids"),
    "children_limit_status": (lambda v: v in (400, 403),
                              "children_limit_status must be 400 or 403"),
    "reauth_grace_seconds": (lambda v: _is_number(v) and v >= 0,
                             "reauth_grace_seconds must be >= 0"),
}


def apply_config_change(sim: Simulator, key, value):
    """Validate and apply one /_sim/config key (caller holds the lock)."""
    if key in SIMPLE_CONFIG_KEYS:
        check, msg = SIMPLE_CONFIG_KEYS[key]
        _require(check(value), msg)
        sim.config[key] = copy.deepcopy(value)
        if key == "rate_limit_per_second":
            sim.config[key] = value or None  # 0 means off, like null
            sim.rate_windows.clear()
    elif key == "devices":
        _require(isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in value.items()),
                 "devices must map device id to secret")
        sim.devices.update(value)
    elif key == "cumulocity_users":
        _require(isinstance(value, list), "cumulocity_users must be a list")
        sim.c8y_users.update(parse_c8y_user(v) for v in value)
    elif key == "revoke_tokens":
        _require(value is True, "revoke_tokens must be true")
        sim.tokens.clear()
    else:
        raise ValueError(f"unknown config key {key!r}")


def parse_c8y_user(text):
    """'tenant/user:password' -> ('tenant/user', 'password')."""
    if not isinstance(text, str) or ":" not in text or "/" not in text.split(":", 1)[0]:
        raise ValueError("Cumulocity user must look like TENANT/USER:PASSWORD")
    user, password = text.split(":", 1)
    return user, password


# --------------------------------------------------------------------------------------------
# TLS: throwaway CA and server certificate made with the openssl command-line tool
# --------------------------------------------------------------------------------------------

OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = edgebuf simulator
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""

EC_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _private_file(path):
    """Create (or truncate) a file with mode 0600 before openssl writes a key into it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _openssl(args):
    proc = subprocess.run(["openssl"] + args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def generate_certificates(state_dir):
    """Returns (cert, key, ca) paths: a CA and a server cert for localhost/127.0.0.1/::1."""
    paths = {name: os.path.join(state_dir, name) for name in
             ("ca.crt", "ca.key", "server.crt", "server.key", "server.csr", "openssl.cnf")}
    with open(paths["openssl.cnf"], "w") as f:
        f.write(OPENSSL_CONFIG)
    _private_file(paths["ca.key"])
    _private_file(paths["server.key"])
    _openssl(["req", "-x509", "-config", paths["openssl.cnf"], "-extensions", "v3_ca"]
             + EC_KEY_ARGS + ["-keyout", paths["ca.key"], "-out", paths["ca.crt"],
                              "-days", "30", "-subj", "/CN=edgebuf simulator throwaway CA"])
    _openssl(["req", "-new", "-config", paths["openssl.cnf"]] + EC_KEY_ARGS
             + ["-keyout", paths["server.key"], "-out", paths["server.csr"],
                "-subj", "/CN=localhost"])
    _openssl(["x509", "-req", "-in", paths["server.csr"], "-CA", paths["ca.crt"],
              "-CAkey", paths["ca.key"], "-set_serial", "0x" + secrets.token_hex(8),
              "-days", "30", "-extfile", paths["openssl.cnf"], "-extensions", "v3_server",
              "-out", paths["server.crt"]])
    for key in ("ca.key", "server.key"):
        os.chmod(paths[key], 0o600)
    os.remove(paths["server.csr"])
    return paths["server.crt"], paths["server.key"], os.path.abspath(paths["ca.crt"])


def make_ssl_context(cert, key, tls_max):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


# --------------------------------------------------------------------------------------------
# IoTDA device API
# --------------------------------------------------------------------------------------------


def iotda_check_size(sim, req):
    limit = sim.cfg("max_body_bytes")
    if req.body_bytes > limit:
        raise iotda_error(403, "IOTDA.021105",
                          f"The request body is {req.body_bytes} bytes; the limit is {limit}.")


def iotda_parse(req):
    try:
        return req.json()
    except (ValueError, UnicodeDecodeError):
        raise iotda_error(400, "IOTDA.000006", "Invalid input data: the body is not valid JSON.")


def invalid(msg) -> ApiError:
    return iotda_error(400, "IOTDA.000006", f"Invalid input data: {msg}")


def iotda_require_token(sim, req, device_id):
    token = req.header("access_token")
    owner = sim.token_device(token) if token else None
    if owner is None or owner != device_id:
        raise iotda_error(403, "IOTDA.000004", "Invalid access token.")


def iotda_guard(sim, req, device_id):
    """Checks shared by all IoTDA data endpoints; returns the parsed JSON body."""
    iotda_check_size(sim, req)
    iotda_require_token(sim, req, device_id)
    if not sim.admit(("iotda", device_id), sim.cfg("rate_limit_per_second")):
        raise iotda_error(403, "IOTDA.021101", "The device has exceeded its request rate limit.")
    return iotda_parse(req)


def check_auth_body(body):
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object.")
    device_id, sign_type = body.get("device_id"), body.get("sign_type")
    timestamp, password = body.get("timestamp"), body.get("password")
    if not isinstance(device_id, str) or not DEVICE_ID_RE.match(device_id):
        raise invalid("device_id must be 1..128 characters of [A-Za-z0-9_-].")
    if sign_type not in (0, 1) or isinstance(sign_type, bool):
        raise invalid("sign_type must be 0 or 1.")
    if not isinstance(timestamp, str) or not AUTH_TIMESTAMP_RE.match(timestamp):
        raise invalid("timestamp must be YYYYMMDDHH.")
    try:
        stamp = dt.datetime.strptime(timestamp, "%Y%m%d%H").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise invalid("timestamp must be YYYYMMDDHH.")
    if not isinstance(password, str):
        raise invalid("password must be a string.")
    return device_id, sign_type, timestamp, stamp, password


def timestamp_in_window(stamp: dt.datetime) -> bool:
    """sign_type 1: the device's hour must be within one hour of the server's hour."""
    hour = utc_now().replace(minute=0, second=0, microsecond=0)
    return abs((hour - stamp).total_seconds()) <= 3600


def iotda_auth(sim, req):
    iotda_check_size(sim, req)
    device_id, sign_type, timestamp, stamp, password = check_auth_body(iotda_parse(req))
    secret = sim.device_secret(device_id)
    ok = secret is not None and (sign_type == 0 or timestamp_in_window(stamp))
    if ok:
        expected = hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, password)
    sim.count_auth(ok)
    if not ok:
        raise iotda_error(401, "IOTDA.000002", "Authentication failed: the device does not "
                          "exist, the password is wrong or the timestamp is out of range.")
    token, lifetime = sim.issue_token(device_id)
    return Response.json(200, {"access_token": token, "expires_in": int(round(lifetime))})


def check_services(services, where="services"):
    if not isinstance(services, list) or not services:
        raise invalid(f"{where} must be a non-empty list.")
    for service in services:
        if not isinstance(service, dict) or not isinstance(service.get("service_id"), str):
            raise invalid(f"every entry of {where} needs a string service_id.")
        if not isinstance(service.get("properties"), dict):
            raise invalid(f"service {service['service_id']} needs a properties object.")
        if "poison" in service["properties"]:
            raise invalid(f"service {service['service_id']} holds a poison property.")
    return services


def stamp_event_time(sim, req, service):
    """(event_time, replaced): a malformed or missing one becomes the receive time."""
    value = service.get("event_time")
    if valid_event_time(value):
        return value, False
    if sim.cfg("strict_event_time"):
        raise invalid(f"event_time {value!r} is not yyyy-MM-ddTHH:mm:ss.SSSZ.")
    return format_event_time(req.received), True


def service_record(sim, req, service, kind, **ids):
    event_time, replaced = stamp_event_time(sim, req, service)
    record = {"platform": "iotda", "kind": kind}
    record.update(ids)
    record.update(service_id=service["service_id"], properties=service["properties"],
                  event_time=event_time, event_time_replaced=replaced, request=req.seq)
    if replaced:
        record["event_time_original"] = service.get("event_time")
    return record


def iotda_properties(sim, req, device_id):
    body = iotda_guard(sim, req, device_id)
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object.")
    services = check_services(body.get("services"))
    records = [service_record(sim, req, s, "property", device_id=device_id) for s in services]
    sim.accept(records)
    return Response(200)


def iotda_message(sim, req, device_id):
    body = iotda_guard(sim, req, device_id)
    if isinstance(body, dict):
        name, msg_id, content = body.get("name"), body.get("id"), body.get("content")
    else:
        name, msg_id, content = None, None, body
    if isinstance(content, dict) and "poison" in content:
        raise invalid("the message content holds a poison key.")
    sim.accept([{"platform": "iotda", "kind": "message", "device_id": device_id,
                 "name": name, "id": msg_id, "content": content, "request": req.seq}])
    return Response(200)


def check_children(sim, gateway_id, devices):
    if not isinstance(devices, list) or not devices:
        raise invalid("devices must be a non-empty list.")
    limit = sim.cfg("max_children")
    if len(devices) > limit:
        raise iotda_error(sim.cfg("children_limit_status"), "IOTDA.021103",
                          f"Too many child devices in one request: {len(devices)} > {limit}.")
    for child in devices:
        if not isinstance(child, dict) or not isinstance(child.get("device_id"), str):
            raise invalid("every entry of devices needs a string device_id.")
    missing = set(sim.cfg("missing_children"))
    for child in devices:
        if child["device_id"] in missing:
            raise iotda_error(400, "IOTDA.021104",
                              f"The child device {child['device_id']} does not exist or does "
                              f"not belong to gateway {gateway_id}.",
                              device_id=child["device_id"])
    for child in devices:
        check_services(child.get("services"), f"services of child {child['device_id']}")
    return devices


def iotda_children(sim, req, gateway_id):
    body = iotda_guard(sim, req, gateway_id)
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object.")
    devices = check_children(sim, gateway_id, body.get("devices"))
    records = [service_record(sim, req, s, "child_property", gateway_id=gateway_id,
                              device_id=child["device_id"])
               for child in devices for s in child["services"]]
    sim.accept(records)
    return Response(200)


# --------------------------------------------------------------------------------------------
# Cumulocity measurements
# --------------------------------------------------------------------------------------------


def c8y_authenticate(sim, req):
    """HTTP Basic 'tenant/user:password'; returns the user name or raises 401."""
    header = req.header("Authorization") or ""
    scheme, _, encoded = header.partition(" ")
    user = password = None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = None
    expected = sim.c8y_password(user) if user else None
    if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
        raise c8y_error(401, "security/Unauthorized",
                        "Invalid credentials! : Bad credentials")
    return user


def c8y_invalid(msg) -> ApiError:
    return c8y_error(422, "measurement/Invalid Data", msg)


def c8y_measurement_list(req):
    mtype = media_type(req.header("Content-Type"))
    try:
        body = req.json()
    except (ValueError, UnicodeDecodeError):
        raise c8y_invalid("The body is not valid JSON.")
    if mtype == C8Y_COLLECTION:
        if not isinstance(body, dict) or not isinstance(body.get("measurements"), list):
            raise c8y_invalid("A measurement collection needs a 'measurements' list.")
        return body["measurements"], True
    if mtype in (C8Y_MEASUREMENT, "application/json"):
        return [body], False
    raise c8y_error(415, "general/Unsupported Media Type",
                    f"Content-Type {mtype or '(none)'} is not supported here.")


def c8y_valid_time(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def c8y_check_measurement(m):
    if not isinstance(m, dict):
        raise c8y_invalid("A measurement must be a JSON object.")
    source = m.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("id"), (str, int)):
        raise c8y_invalid("source.id is required.")
    if not isinstance(m.get("type"), str) or not m["type"]:
        raise c8y_invalid("type is required.")
    if not c8y_valid_time(m.get("time")):
        raise c8y_invalid(f"time {m.get('time')!r} is not an ISO 8601 date with offset.")
    if "poison" in m:
        raise c8y_invalid("The measurement holds a poison fragment.")


def c8y_record(req, m):
    fragments = {k: v for k, v in m.items() if k not in ("source", "type", "time")}
    return {"platform": "cumulocity", "kind": "measurement", "source": str(m["source"]["id"]),
            "type": m["type"], "time": m["time"], "fragments": fragments, "request": req.seq}


def c8y_wants_body(req):
    accept = (req.header("Accept") or "").lower()
    return "application/json" in accept or "application/vnd.com.nsn.cumulocity." in accept


def c8y_echo(sim, req, measurements, collection):
    echoed = []
    for m in measurements:
        out = dict(m)
        out["id"] = sim.next_object_id()
        out["self"] = f"{req.base_url()}/measurement/measurements/{out['id']}"
        echoed.append(out)
    if collection:
        return Response.json(201, {"measurements": echoed,
                                   "self": f"{req.base_url()}/measurement/measurements"},
                             content_type=C8Y_COLLECTION)
    return Response.json(201, echoed[0], content_type=C8Y_MEASUREMENT)


def c8y_measurements(sim, req):
    limit = sim.cfg("max_body_bytes")
    if req.body_bytes > limit:
        raise c8y_error(413, "general/Request Entity Too Large",
                        f"The request body is {req.body_bytes} bytes; the limit is {limit}.")
    user = c8y_authenticate(sim, req)
    if not sim.admit(("c8y", user), sim.cfg("rate_limit_per_second")):
        raise c8y_error(429, "general/tooManyRequests", "Too many requests.")
    measurements, collection = c8y_measurement_list(req)
    for m in measurements:
        c8y_check_measurement(m)
    sim.accept([c8y_record(req, m) for m in measurements])
    if not c8y_wants_body(req):
        return Response(200)  # the real platform answers without a body when Accept is missing
    return c8y_echo(sim, req, measurements, collection)


# --------------------------------------------------------------------------------------------
# Control API (/_sim/..., /health): never faulted, never logged
# --------------------------------------------------------------------------------------------


def control_json(req, default=None):
    if not req.body:
        return default
    try:
        return req.json()
    except (ValueError, UnicodeDecodeError):
        raise control_error("body is not valid JSON")


def ctl_health(sim, req):
    return Response.text(200, "ok")


def ctl_add_faults(sim, req):
    body = control_json(req)
    specs = body if isinstance(body, list) else body.get("faults", [body]) \
        if isinstance(body, dict) else None
    if not specs:
        raise control_error("expected a fault object, a list of them or {\"faults\": [...]}")
    try:
        ids = sim.add_faults(specs)
    except (ValueError, re.error) as exc:
        raise control_error(f"bad fault: {exc}")
    return Response.json(200, {"queued": ids, "pending": len(sim.pending_faults())})


def ctl_list_faults(sim, req):
    return Response.json(200, {"faults": sim.pending_faults()})


def ctl_clear_faults(sim, req):
    sim.clear_faults()
    return Response.json(200, {"faults": []})


def ctl_accepted(sim, req):
    return Response.json(200, sim.accepted_view(req.query_int("since", 0)))


def ctl_requests(sim, req):
    return Response.json(200, sim.requests_view(req.query_int("since", 0)))


def ctl_stats(sim, req):
    return Response.json(200, sim.stats_view())


def ctl_get_config(sim, req):
    return Response.json(200, sim.config_view())


def ctl_set_config(sim, req):
    body = control_json(req)
    if not isinstance(body, dict):
        raise control_error("expected a JSON object")
    try:
        return Response.json(200, sim.update_config(body))
    except ValueError as exc:
        raise control_error(str(exc))


def ctl_reset(sim, req):
    body = control_json(req, {}) or {}
    if not isinstance(body, dict):
        raise control_error("expected a JSON object or no body")
    sim.clear(restore_config=bool(body.get("config")), drop_tokens=bool(body.get("tokens")))
    return Response.json(200, {"reset": True})


def ctl_not_found(sim, req):
    return Response.json(404, {"error": f"no control endpoint {req.method} {req.path}"})


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


class Route:
    def __init__(self, method, pattern, handler, control):
        self.method = method
        self.regex = re.compile(pattern)
        self.handler = handler
        self.control = control


class Router:
    """Ordered (method, full-match path regex) -> handler(sim, req, **groups) -> Response.

    Handlers may block (each connection has its own thread) and may raise ApiError.
    Non-control routes are logged in /_sim/requests and subject to queued faults.
    """

    def __init__(self):
        self.routes: list[Route] = []

    def add(self, method, pattern, handler, control=False):
        self.routes.append(Route(method.upper(), pattern, handler, control))

    def match(self, method, path):
        """(route, params, allowed_methods); route is None when nothing matches."""
        allowed = []
        for route in self.routes:
            found = route.regex.fullmatch(path)
            if not found:
                continue
            if route.method == method:
                params = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
                return route, params, allowed
            allowed.append(route.method)
        return None, {}, allowed


def is_control_path(path):
    """Control requests are never faulted nor logged."""
    return path == "/health" or path.startswith("/_sim/")


DEVICE = r"(?P<device_id>[^/]+)"

# ---- EXTENSION POINT: more platform endpoints (e.g. Bayeux at /notification/realtime) ------
# Append a function `install(router, sim)` to EXTRA_ROUTE_INSTALLERS, defined in its own module
# or class, e.g.:
#     def install_bayeux(router, sim):
#         endpoint = BayeuxEndpoint(sim)                   # holds its own state and lock
#         router.add("POST", r"/notification/realtime", endpoint.handle)
#     simulator.EXTRA_ROUTE_INSTALLERS.append(install_bayeux)
# The handler gets (sim, req) and returns a Response; it may block for long polls (wait on
# sim.stopping to end early at shutdown) and may use c8y_authenticate(sim, req) for Basic auth.
# Its requests are then logged and faultable like any other platform request.
EXTRA_ROUTE_INSTALLERS: list = []


def build_router(sim) -> Router:
    router = Router()
    router.add("GET", r"/health", ctl_health, control=True)
    router.add("POST", r"/_sim/faults", ctl_add_faults, control=True)
    router.add("GET", r"/_sim/faults", ctl_list_faults, control=True)
    router.add("DELETE", r"/_sim/faults", ctl_clear_faults, control=True)
    router.add("GET", r"/_sim/accepted", ctl_accepted, control=True)
    router.add("GET", r"/_sim/requests", ctl_requests, control=True)
    router.add("GET", r"/_sim/stats", ctl_stats, control=True)
    router.add("GET", r"/_sim/config", ctl_get_config, control=True)
    router.add("POST", r"/_sim/config", ctl_set_config, control=True)
    router.add("POST", r"/_sim/reset", ctl_reset, control=True)
    router.add("POST", r"/v5/device-auth", iotda_auth)
    router.add("POST", rf"/v5/devices/{DEVICE}/sys/properties/report", iotda_properties)
    router.add("POST", rf"/v5/devices/{DEVICE}/sys/messages/up", iotda_message)
    router.add("POST", r"/v5/devices/(?P<gateway_id>[^/]+)/sys/gateway/sub-devices/properties"
               r"/report", iotda_children)
    router.add("POST", r"/measurement/measurements", c8y_measurements)
    for install in EXTRA_ROUTE_INSTALLERS:
        install(router, sim)
    return router


def run_route(sim, route, params, allowed, req) -> Response:
    if route is None:
        if allowed:
            return Response.json(405, {"error": f"method {req.method} not allowed"},
                                 headers=[("Allow", ", ".join(sorted(set(allowed))))])
        if is_control_path(req.path):
            return ctl_not_found(sim, req)
        return Response.json(404, {"error_msg": f"no such endpoint: {req.path}"})
    try:
        return route.handler(sim, req, **params)
    except ApiError as err:
        return err.response


# --------------------------------------------------------------------------------------------
# HTTP handler: body reading, fault actions at the socket level, response writing
# --------------------------------------------------------------------------------------------


class BadRequest(Exception):
    pass


class ClientGone(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "edgebuf-simulator/1"
    sys_version = ""

    # -- connection set-up ---------------------------------------------------------------------

    def setup(self):
        super().setup()
        self.sim: Simulator = self.server.sim
        self.conn_id = self.sim.new_connection()
        self._pending = None  # (log entry, fault, start time, request) until recorded
        self.tls_ok = self._handshake()

    def _handshake(self):
        if not isinstance(self.connection, ssl.SSLSocket):
            return True
        try:
            self.connection.settimeout(TLS_HANDSHAKE_TIMEOUT)
            self.connection.do_handshake()
            self.connection.settimeout(self.timeout)
            return True
        except (OSError, ValueError) as exc:
            self._debug(f"conn {self.conn_id}: TLS handshake failed: {exc}")
            return False

    def handle(self):
        if self.tls_ok:
            super().handle()

    def log_message(self, fmt, *args):  # quiet; --verbose logs one line per request itself
        pass

    def _debug(self, line):
        if self.sim.verbose:
            print(line, file=sys.stderr, flush=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = lambda self: self._dispatch()

    # -- request reading -----------------------------------------------------------------------

    def _read_exact(self, n, keep):
        chunks, left = [], n
        while left > 0:
            data = self.rfile.read(min(left, READ_CHUNK))
            if not data:
                raise ClientGone()
            if keep:
                chunks.append(data)
            left -= len(data)
        return b"".join(chunks) if keep else None

    def _read_chunked(self):
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ClientGone()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                break
            keep = total + size <= STORE_CAP_BYTES
            data = self._read_exact(size, keep)
            if keep:
                chunks.append(data)
            total += size
            self._read_exact(2, False)
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return (b"".join(chunks) if total <= STORE_CAP_BYTES else None), total

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b"", 0
        try:
            n = int(length)
        except ValueError:
            raise BadRequest("bad Content-Length")
        if n < 0:
            raise BadRequest("bad Content-Length")
        keep = n <= STORE_CAP_BYTES
        return self._read_exact(n, keep), n

    def _make_request(self):
        try:
            body, count = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            self._send(Response.json(400, {"error": str(exc)}))
            return None
        except (ClientGone, OSError):
            self.close_connection = True
            return None
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        return Request(self.command, self.path, self.headers, body, count,
                       self.sim.next_seq(), self.conn_id, scheme)

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self):
        started = time.monotonic()
        req = self._make_request()
        if req is None:
            return
        route, params, allowed = self.server.router.match(req.method, req.path)
        if route.control if route is not None else is_control_path(req.path):
            self._send(self._run(route, params, allowed, req))
            return
        fault = self.sim.take_fault(req.path)
        self._pending = (self.sim.log_start(req, fault, started), fault, started, req)
        if fault is None:
            self._send(self._run(route, params, allowed, req))
        else:
            self._apply_fault(fault, req, route, params, allowed)
        self._record(None, "no_answer")  # no-op when the outcome was recorded already

    def _record(self, status, outcome):
        """Finish the log entry once, BEFORE the answer goes out: a client that reads the
        answer and then asks /_sim/requests or /_sim/stats must find it there."""
        if self._pending is None:
            return
        entry, fault, started, req = self._pending
        self._pending = None
        self.sim.log_finish(entry, status, outcome, started)
        fault_text = f" fault={fault.action}" if fault else ""
        self._debug(f"#{req.seq} conn {self.conn_id} {req.method} {req.path} -> "
                    f"{status if status is not None else outcome} {req.body_bytes}B "
                    f"{(time.monotonic() - started) * 1000:.1f}ms{fault_text}")

    def _run(self, route, params, allowed, req):
        try:
            return run_route(self.sim, route, params, allowed, req)
        except Exception:  # a simulator bug: answer 500 and show it
            traceback.print_exc(file=sys.stderr)
            return Response.json(500, {"error_msg": "simulator internal error"})

    # -- faults --------------------------------------------------------------------------------

    def _apply_fault(self, fault, req, route, params, allowed):
        real = None
        if fault.accept or fault.action == "pass":
            real = self._run(route, params, allowed, req)
        if fault.delay and self.sim.stopping.wait(fault.delay):
            self.close_connection = True
            self._record(None, "server_stopping")
            return
        action = fault.action
        if action == "pass":
            self._send(real)
        elif action == "close":
            self.close_connection = True
            self._record(None, "close")
        elif action == "reset":
            self._record(None, "reset")
            self._reset()
        elif action == "hang":
            self._hang()
            self._record(None, "hang")
        elif action == "truncate":
            self._truncate(fault_response(fault, req, real))
        elif action == "slow_drip":
            self._drip(fault_response(fault, req, real), fault.drip_interval)
        else:  # respond, garbage
            self._send(fault_response(fault, req, real))

    def _reset(self):
        """Abort with a TCP RST: SO_LINGER 0, then close the socket right away."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.rfile.close()  # drop the makefile reference so close() really closes
            self.connection.close()
        except OSError:
            pass

    def _hang(self):
        """Never answer; return once the client closes or the server stops."""
        self.close_connection = True
        sock = self.connection
        while not self.sim.stopping.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.2)
                if readable and not sock.recv(READ_CHUNK):
                    return
            except (OSError, ValueError):
                return

    def _truncate(self, resp):
        """Headers with the full Content-Length, then half of the body, then close."""
        if len(resp.body) < 2:
            resp.body = json.dumps({"error_msg": "simulated truncated answer",
                                    "padding": "x" * 64}).encode()
        self.close_connection = True
        self._record(resp.status, "truncate")
        self._write(self._head(resp) + resp.body[: len(resp.body) // 2])

    def _drip(self, resp, interval):
        """The whole answer, one byte per interval; gives up when the client goes away."""
        data = self._head(resp) + resp.body
        for i in range(len(data)):
            if i + 1 == len(data):
                self._record(resp.status, "answered")
            if not self._write(data[i:i + 1]):
                self._record(None, "client_gone")
                return
            if i + 1 < len(data) and self.sim.stopping.wait(interval):
                self.close_connection = True
                self._record(None, "server_stopping")
                return

    # -- response writing ----------------------------------------------------------------------

    def _head(self, resp: Response) -> bytes:
        try:
            reason = http.HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {resp.status} {reason}",
                 f"Date: {email.utils.formatdate(usegmt=True)}",
                 f"Server: {self.server_version}",
                 f"Content-Length: {len(resp.body)}"]
        if resp.content_type:
            lines.append(f"Content-Type: {resp.content_type}")
        lines.extend(f"{name}: {value}" for name, value in resp.headers)
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, data) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:
            self.close_connection = True
            return False

    def _send(self, resp: Response):
        self._record(resp.status, "answered")
        self._write(self._head(resp) + resp.body)


def fault_response(fault: Fault, req: Request, real: Response | None) -> Response:
    """The answer a respond/garbage/huge/truncate/slow_drip fault sends."""
    if fault.action == "garbage":
        return Response(fault.status or 200, GARBAGE_BODY, "text/html; charset=utf-8")
    if fault.action == "huge":
        # Valid JSON of exactly `size` bytes: {"padding":"xxx...x"}.
        padding = max(fault.size - len(b'{"padding":""}'), 0)
        return Response(fault.status or 200, b'{"padding":"' + b"x" * padding + b'"}', "application/json")
    if fault.action in ("truncate", "slow_drip") and real is not None and fault.status is None:
        return real
    headers = []
    if fault.retry_after is not None:
        headers.append(("Retry-After", str(fault.retry_after)))
    status = fault.status or 503
    if fault.error_code is not None:
        body = {"error_code": fault.error_code, "error_msg": fault.error_msg}
    elif fault.error is not None or req.path.startswith("/measurement/"):
        body = {"error": fault.error or "general/serviceUnavailable", "message": fault.error_msg}
    else:
        body = {"error_msg": fault.error_msg}
    return Response.json(status, body, headers=headers)


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


class SimServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, sim, ssl_context=None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sim = sim
        self.router = build_router(sim)
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def server_bind(self):
        # skip HTTPServer.server_bind's getfqdn(): it can stall on hosts without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:  # handshake later, in the connection's own thread
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError)) and not self.sim.verbose:
            return  # clients going away mid-request are normal here
        super().handle_error(request, client_address)


def parse_args(argv):
    p = argparse.ArgumentParser(description="IoTDA / Cumulocity platform simulator for edgebuf.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 lets the kernel choose")
    p.add_argument("--https", action="store_true")
    p.add_argument("--cert", help="server certificate (PEM); with --key")
    p.add_argument("--key", help="server private key (PEM); with --cert")
    p.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.3",
                   help="highest TLS version offered (1.2 mimics IoTDA exactly)")
    p.add_argument("--state-dir", help="where generated certificates go (default: temp dir)")
    p.add_argument("--device", action="append", default=[], metavar="ID=SECRET")
    p.add_argument("--cumulocity-user", action="append", default=[],
                   metavar="TENANT/USER:PASSWORD")
    p.add_argument("--token-lifetime", type=float, default=DEFAULT_TOKEN_LIFETIME)
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    p.add_argument("--keep", choices=("all", "count"), default="all")
    p.add_argument("--first-id", type=int, default=10001,
                   help="the first id given to a measurement or operation (a platform never "
                        "reuses one: a demo that keeps its database across runs needs new ones)")
    p.add_argument("--ready-file", help="also write the ready JSON line to this file")
    p.add_argument("--verbose", action="store_true", help="one line per request on stderr")
    args = p.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if (args.cert or args.key) and not args.https:
        p.error("--cert/--key need --https")
    if args.token_lifetime <= 0:
        p.error("--token-lifetime must be > 0")
    return args


def parse_devices(items):
    devices = {}
    for item in items:
        device_id, sep, secret = item.partition("=")
        if not sep or not DEVICE_ID_RE.match(device_id):
            raise SystemExit(f"simulator: bad --device {device_id!r}: expected ID=SECRET")
        devices[device_id] = secret
    return devices


def write_ready_file(path, line):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(line + "\n")
    os.replace(tmp, path)


def announce(server, args, ca_file):
    host = args.host if ":" not in args.host else f"[{args.host}]"
    port = server.server_address[1]
    scheme = "https" if args.https else "http"
    line = json.dumps({"url": f"{scheme}://{host}:{port}", "port": port, "ca_file": ca_file,
                       "pid": os.getpid()})
    if args.ready_file:
        write_ready_file(args.ready_file, line)
    print(line, flush=True)


def tls_setup(args):
    """(ssl_context, ca_file, temp_dir_to_remove)."""
    if not args.https:
        return None, None, None
    if args.cert:
        return make_ssl_context(args.cert, args.key, args.tls_max), None, None
    temp_dir = None
    state_dir = args.state_dir
    if state_dir:
        os.makedirs(state_dir, exist_ok=True)
    else:
        state_dir = temp_dir = tempfile.mkdtemp(prefix="edgebuf-sim-")
    cert, key, ca_file = generate_certificates(state_dir)
    return make_ssl_context(cert, key, args.tls_max), ca_file, temp_dir


def install_signal_handlers():
    """SIGTERM/SIGINT set the returned event; installed before the ready line is printed."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def serve_until(stop, server, sim):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="accept", daemon=True)
    thread.start()
    while not stop.wait(0.5):
        pass
    sim.stopping.set()  # wakes hanging, dripping and delayed handlers
    server.shutdown()
    server.server_close()


def main(argv=None):
    args = parse_args(argv)
    devices = parse_devices(args.device)
    try:
        users = dict(parse_c8y_user(u) for u in args.cumulocity_user)
    except ValueError as exc:
        raise SystemExit(f"simulator: {exc}")
    config = default_config(args.token_lifetime, args.max_body_bytes)
    sim = Simulator(config, devices, users, keep=args.keep, verbose=args.verbose,
                    first_id=args.first_id)
    stop = install_signal_handlers()
    ssl_context, ca_file, temp_dir = tls_setup(args)
    try:
        server = SimServer((args.host, args.port), sim, ssl_context)
        announce(server, args, ca_file)
        serve_until(stop, server, sim)
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import simulator_bayeux  # Bayeux at /notification/realtime: tools/simulator_bayeux.py
    EXTRA_ROUTE_INSTALLERS.append(simulator_bayeux.install)
    sys.exit(main())
