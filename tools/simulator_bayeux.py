"""Bayeux long-polling endpoint for the platform simulator: Cumulocity real-time notifications.

tools/simulator.py installs it through EXTRA_ROUTE_INSTALLERS when it runs as a program, so a
plain `python3 tools/simulator.py ...` serves it (Python 3 standard library only):

  * POST /notification/realtime (and the older /cep/realtime): Bayeux 1.0 over long polling,
    /meta/handshake (HTTP Basic or the Cumulocity token extension, checked against the
    simulator's --cumulocity-user logins), /meta/connect (held up to the timeout the client
    asks for, capped by max_timeout_ms), /meta/subscribe, /meta/unsubscribe, /meta/disconnect,
    and publishes from the client.
  * Control API under /_sim/bayeux/ (no auth, never faulted, never logged): publish events,
    create operations, read sessions, stats and deliveries, kill sessions (a server restart),
    change the config, and queue "behaviours" that break or reshape the next answers.

See tools/SIMULATOR.md, section "Bayeux", for the wire format and the control JSON.

Code map: constants and helpers; Behaviour (one queued answer shaping); Session; Wire (the raw
connection, for answers a Response cannot express); BayeuxEndpoint (protocol, holds, answers);
the control API; install().

This module never imports simulator.py: install() gets the host module from the router it is
given. Run as a program, simulator.py is `__main__`, and a second import of it would be a
second copy with classes of its own.
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import datetime as dt
import hmac
import itertools
import json
import math
import secrets
import select
import socket
import struct
import sys
import threading
import time

# --------------------------------------------------------------------------------------------
# Constants and helpers
# --------------------------------------------------------------------------------------------

MOUNTS = ("/notification/realtime", "/cep/realtime")
CONTROL = "/_sim/bayeux"
CONTENT_TYPE = "application/json;charset=UTF-8"
DELIVERY_LOG_LIMIT = 10_000
HOLD_POLL = 0.2  # how often a held connect looks at the socket and at shutdown
CLIENT_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

DEFAULT_CONFIG = {
    "max_timeout_ms": 600_000,     # the longest hold the server grants
    "default_timeout_ms": 30_000,  # granted when the client asks for nothing
    "interval_ms": 0,              # advice.interval in connect answers
    "session_margin_ms": 10_000,   # a session dies timeout + interval + margin after a connect
    "auth_every_request": True,    # Basic auth required on every request, not only handshake
    "events_first": True,          # events before the meta answers in an answer array
    "publish_operation_updates": True,  # a device PUT that changes a status publishes UPDATE
}

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Login</title></head>\n"
    b"<body><h1>Network login required</h1><p>Simulated proxy page, served with status 200. "
    b"This is not JSON.</p></body></html>\n"
)
GARBAGE_TEXT = "\x00\x01 this is not JSON }{ ]["

# Device control: which status an operation may move to from each status when a device PUTs
# one. The device moves PENDING -> EXECUTING -> SUCCESSFUL | FAILED (PENDING -> final is
# allowed: a device may report the outcome at once); a final status is never left. The same
# status again is a repeat (a resend after a lost answer): accepted, changes nothing. Stricter
# than the real platform on purpose: the simulator is the test oracle for edgebuf's ordering.
OPERATION_TRANSITIONS = {
    "PENDING": ("EXECUTING", "SUCCESSFUL", "FAILED"),
    "EXECUTING": ("EXECUTING", "SUCCESSFUL", "FAILED"),
    "SUCCESSFUL": ("SUCCESSFUL",),
    "FAILED": ("FAILED",),
}
FINAL_STATUSES = ("SUCCESSFUL", "FAILED")
OPERATION_OWN_FIELDS = ("id", "self", "deviceId", "status", "creationTime", "lastUpdated",
                        "failureReason", "description")
DEFAULT_PAGE_SIZE = 5
MAX_PAGE_SIZE = 2000


def operation_transition(current, wanted):
    """'change', 'repeat' or None (refused) for a device PUT of `wanted` on `current`."""
    if wanted not in OPERATION_TRANSITIONS.get(current, ()):
        return None
    return "repeat" if wanted == current else "change"


UNKNOWN_CLIENT = "402::Unknown client"
HANDSHAKE_DENIED = "403::Handshake denied"


def iso_now() -> str:
    """Cumulocity's time format: yyyy-MM-ddTHH:mm:ss.SSSZ in UTC."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def new_client_id() -> str:
    return "".join(secrets.choice(CLIENT_ID_ALPHABET) for _ in range(26))


def message_kind(channel) -> str | None:
    """handshake/connect/... for meta channels, "publish" for others, None if not a channel."""
    if not isinstance(channel, str) or not channel.startswith("/"):
        return None
    if channel.startswith("/meta/"):
        return channel[len("/meta/"):]
    return "publish"


def valid_channel(name, wildcards) -> bool:
    """A channel name: /a/b; with wildcards also /a/* and /a/** as the last segment."""
    if not isinstance(name, str) or not name.startswith("/") or name == "/":
        return False
    segments = name[1:].split("/")
    if any(not s for s in segments):
        return False
    for i, segment in enumerate(segments):
        if "*" in segment and not (wildcards and i == len(segments) - 1
                                   and segment in ("*", "**")):
            return False
    return True


def channel_matches(pattern: str, channel: str) -> bool:
    """Bayeux globbing: /a/* matches one more segment, /a/** any number (at least one)."""
    p, c = pattern.split("/"), channel.split("/")
    if p[-1] == "**":
        return len(c) > len(p) - 1 and c[:len(p) - 1] == p[:-1]
    if p[-1] == "*":
        return len(c) == len(p) and c[:-1] == p[:-1]
    return p == c


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(cond, msg):
    if not cond:
        raise ValueError(msg)


def with_id(reply: dict, message: dict) -> dict:
    """Echo the request message's id, as Bayeux asks of every reply."""
    if "id" in message:
        reply["id"] = message["id"]
    return reply


# --------------------------------------------------------------------------------------------
# Behaviours: queued shapings or breakages of the next matching answers
# --------------------------------------------------------------------------------------------

# action -> {parameter: (validator, error text)}
_NUM = (lambda v: _is_number(v) and v >= 0, "must be a number >= 0")
_POS = (lambda v: _is_number(v) and v > 0, "must be a number > 0")
BEHAVIOUR_PARAMS = {
    "advice": {"advice": (lambda v: isinstance(v, dict), "must be an object")},
    "error": {"error": (lambda v: isinstance(v, str) and v, "must be a non-empty string"),
              "advice": (lambda v: isinstance(v, dict), "must be an object")},
    "data_array": {},
    "with_events": {"events": (lambda v: isinstance(v, list) and all(
        isinstance(e, dict) and valid_channel(e.get("channel"), False) and "data" in e
        for e in v), "must be a list of {\"channel\", \"data\"}")},
    "stale_id": {"id": (lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
                        "must be a string or an integer")},
    "single_object": {},
    "huge": {"size": (lambda v: _is_int(v) and 1 <= v <= 256 * 1024 * 1024,
                      "must be an integer from 1 to 268435456")},
    "heartbeats": {"heartbeats": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
                   "heartbeat_interval": (lambda v: _is_number(v) and v >= 0.01,
                                          "must be a number >= 0.01"),
                   "whitespace": (lambda v: isinstance(v, str) and v and not v.strip(" \r\n\t"),
                                  "must be spaces, tabs and newlines only"),
                   "then": (lambda v: v in ("answer", "silence"),
                            "must be \"answer\" or \"silence\"")},
    "drip": {"drip_interval": _NUM},
    "truncated_json": {},
    "close": {"after_bytes": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
              "reset": (lambda v: isinstance(v, bool), "must be a boolean")},
    "hang": {},
    "garbage": {"body": (lambda v: isinstance(v, str), "must be a string")},
    "html": {},
    "empty": {},
    "http_status": {"status": (lambda v: _is_int(v) and 100 <= v <= 599,
                               "must be an integer from 100 to 599"),
                    "body": (lambda v: isinstance(v, str), "must be a string"),
                    "retry_after": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0")},
}
BEHAVIOUR_DEFAULTS = {
    "huge": {"size": 2 * 1024 * 1024},
    "heartbeats": {"heartbeats": 3, "heartbeat_interval": 0.2, "whitespace": " ",
                   "then": "answer"},
    "drip": {"drip_interval": 0.05},
    "close": {"after_bytes": None, "reset": False},
    "garbage": {"body": GARBAGE_TEXT},
    "http_status": {"status": 500, "body": None, "retry_after": None},
    "with_events": {"events": []},
    "stale_id": {"id": None},
}
# Answered by "something in front of the server": the Bayeux messages are not processed at all.
UNPROCESSED_ACTIONS = ("garbage", "html", "empty", "http_status")
# Need the raw connection (headers first, then the body in pieces, or no answer at all).
WIRE_ACTIONS = ("heartbeats", "drip", "close", "hang")
BEHAVIOUR_ON = ("handshake", "connect", "subscribe", "unsubscribe", "disconnect", "publish",
                "any")


class Behaviour:
    """One queued behaviour: applies to the next `count` answers to a POST holding a message
    of kind `on` (from client `client_id`, if given)."""

    def __init__(self, spec, behaviour_id):
        _require(isinstance(spec, dict), "a behaviour must be a JSON object")
        action = spec.get("action")
        _require(action in BEHAVIOUR_PARAMS,
                 f"action must be one of {sorted(BEHAVIOUR_PARAMS)}")
        params = BEHAVIOUR_PARAMS[action]
        unknown = set(spec) - {"action", "on", "count", "client_id"} - set(params)
        _require(not unknown, f"unknown fields for action {action}: {sorted(unknown)}")
        self.id = behaviour_id
        self.action = action
        self.on = spec.get("on", "connect")
        _require(self.on in BEHAVIOUR_ON, f"on must be one of {list(BEHAVIOUR_ON)}")
        self.remaining = spec.get("count", 1)
        _require(_is_int(self.remaining) and self.remaining >= 1, "count must be an integer >= 1")
        self.client_id = spec.get("client_id")
        _require(self.client_id is None or isinstance(self.client_id, str),
                 "client_id must be a string")
        _require(action != "error" or "error" in spec, "action error needs \"error\"")
        _require(action != "advice" or "advice" in spec, "action advice needs \"advice\"")
        _require(not (action == "with_events" and self.on == "handshake"),
                 "a handshake answer carries no events (Bayeux 1.0)")
        self.params = dict(BEHAVIOUR_DEFAULTS.get(action, {}))
        for key, (check, text) in params.items():
            if key in spec:
                _require(check(spec[key]), f"{key} {text}")
                self.params[key] = copy.deepcopy(spec[key])

    def applies_to(self, message) -> bool:
        if self.client_id is not None and message.get("clientId") != self.client_id:
            return False
        return self.on == "any" or message_kind(message.get("channel")) == self.on

    def describe(self):
        out = {"id": self.id, "action": self.action, "on": self.on, "remaining": self.remaining,
               "client_id": self.client_id}
        out.update(self.params)
        return out


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


class Session:
    """One handshaken client. Guarded by the endpoint's lock."""

    def __init__(self, client_id, user, timeout_ms, interval_ms):
        self.id = client_id
        self.user = user
        self.created = iso_now()
        self.timeout_ms = timeout_ms
        self.interval_ms = interval_ms
        self.subscriptions: set[str] = set()
        self.queue: list[dict] = []
        self.holds: list[Hold] = []
        self.connects = 0
        self.delivered = 0
        self.last_connect_id = None
        self.touched = time.monotonic()

    def touch(self):
        self.touched = time.monotonic()

    def lifetime(self, margin_ms) -> float:
        """Seconds a session lives after its last connect (CometD: timeout + maxInterval)."""
        return (self.timeout_ms + max(self.interval_ms, 0) + margin_ms) / 1000.0

    def subscribed(self, channel) -> bool:
        return any(channel_matches(p, channel) for p in self.subscriptions)

    def view(self, margin_ms):
        now = time.monotonic()
        idle = now - self.touched
        return {"client_id": self.id, "user": self.user, "created": self.created,
                "subscriptions": sorted(self.subscriptions), "queued": len(self.queue),
                "holding": bool(self.holds), "timeout_ms": self.timeout_ms,
                "interval_ms": self.interval_ms, "connects": self.connects,
                "delivered": self.delivered, "idle_s": round(idle, 3),
                "expires_in_s": None if self.holds
                else round(max(self.lifetime(margin_ms) - idle, 0.0), 3)}


class Hold:
    """A /meta/connect waiting for events. `end` is set by others: superseded (a newer connect
    of the same client), killed_close / killed_answer (kill), disconnected."""

    def __init__(self, session, timeout_ms):
        self.session = session
        self.timeout_ms = timeout_ms
        self.end = None


# --------------------------------------------------------------------------------------------
# Wire: the raw connection under the current request
# --------------------------------------------------------------------------------------------


class _Sink:
    """Stands in for the handler's wfile once an answer went out raw: the Response the route
    still returns must not reach the socket as a second answer."""

    closed = False

    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def close(self):
        self.closed = True


class Wire:
    """Raw access to the connection of the request being served.

    The simulator's route handlers return complete Responses; whitespace heartbeats, slow
    drips, answers cut mid-body and connects that are never answered are not expressible that
    way, and simulator.py is not to be changed for it. Every connection has its own thread and
    the route handler runs synchronously under Handler._dispatch, so the handler object is a
    caller frame's `self`. Anything streamed here ends with `Connection: close`; finish() then
    records the outcome in the request log and swallows the Response the route returns.
    """

    def __init__(self, handler):
        self.handler = handler
        self.sock = handler.connection
        self.out = handler.wfile  # kept: finish() swaps the handler's for a sink

    @classmethod
    def current(cls, handler_class):
        frame = sys._getframe(1)
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, handler_class):
                return cls(candidate)
            frame = frame.f_back
        return None

    def faulted(self) -> bool:
        """True when a generic /_sim/faults fault with accept runs this route: that fault
        decides what goes on the wire, so nothing may be streamed here."""
        pending = getattr(self.handler, "_pending", None)
        return bool(pending and pending[1] is not None)

    def client_gone(self) -> bool:
        """The peer closed (FIN/RST), seen without reading: a pipelined request or a TLS record
        would otherwise be consumed. POLLRDHUP is Linux; elsewhere a peek on plain TCP."""
        try:
            if hasattr(select, "POLLRDHUP"):
                poller = select.poll()
                poller.register(self.sock.fileno(),
                                select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                return bool(poller.poll(0))
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and socket.socket.recv(self.sock, 1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def write(self, data: bytes) -> bool:
        try:
            self.out.write(data)
            return True
        except OSError:
            return False

    def finish(self, status, outcome):
        """Log the outcome and close after this answer; the route's Response goes nowhere."""
        record = getattr(self.handler, "_record", None)
        if record is not None:
            record(status, outcome)
        self.handler.close_connection = True
        self.handler.wfile = _Sink()

    def reset(self):
        """Abort with a TCP RST: SO_LINGER 0, then close."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.handler.rfile.close()
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def head(status, content_type, length=None, chunked=False, extra=()):
        reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", "Server: edgebuf-simulator/1"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        lines.extend(extra)
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


# --------------------------------------------------------------------------------------------
# The endpoint
# --------------------------------------------------------------------------------------------


class Exchange:
    """One POST: its messages, the behaviour applied to it, its answer as it is built."""

    def __init__(self, req, messages, behaviour, wire):
        self.req = req
        self.messages = messages
        self.behaviour = behaviour
        self.wire = wire
        self.replies: list[dict] = []       # meta answers, in message order
        self.answered: list[dict] = []      # the request message of each reply
        self.events: list[tuple] = []       # (session, event message, via)
        self.hold: Hold | None = None       # the connect to hold, if any
        self.connect_message = None
        self.previous_connect_id = None     # the id of this client's connect before this one
        self.streaming = False              # headers already on the wire (heartbeats)

    def reply(self, reply, message):
        self.replies.append(reply)
        self.answered.append(message)

    @property
    def action(self):
        return self.behaviour.action if self.behaviour else None

    def param(self, name):
        return self.behaviour.params[name]


class BayeuxEndpoint:
    """All Bayeux state, guarded by one condition variable (held connects wait on it)."""

    def __init__(self, host, sim):
        self.host = host          # the simulator module (Response, ApiError, Handler, ...)
        self.sim = sim
        self.cond = threading.Condition()
        self.config = dict(DEFAULT_CONFIG)
        self._event_ids = itertools.count(1)
        self._behaviour_ids = itertools.count(1)
        self.sessions: dict[str, Session] = {}
        self.stats = collections.Counter()
        self.reset(restore_config=True)

    # -- state ---------------------------------------------------------------------------------

    def reset(self, restore_config=False, drop_sessions=True):
        with self.cond:
            if drop_sessions:
                self._kill(None, "close")
            self.behaviours: list[Behaviour] = []
            self.deliveries = collections.deque(maxlen=DELIVERY_LOG_LIMIT)
            self.delivery_count = 0
            self.operations: dict[str, dict] = {}
            self.transitions: list[dict] = []  # every accepted device PUT, in order
            self.refused_transitions: list[dict] = []
            self.stats = collections.Counter()
            if restore_config:
                self.config = dict(DEFAULT_CONFIG)
            self.cond.notify_all()

    def _sweep(self):
        """Drop sessions without a connect for timeout + interval + margin (lock held)."""
        now = time.monotonic()
        margin = self.config["session_margin_ms"]
        for session in list(self.sessions.values()):
            if not session.holds and now - session.touched > session.lifetime(margin):
                del self.sessions[session.id]
                self.stats["sessions_expired"] += 1

    def _kill(self, client_id, held):
        """Remove sessions (lock held); their held connects end as `held` says."""
        ids = [client_id] if client_id is not None else list(self.sessions)
        killed = []
        for cid in ids:
            session = self.sessions.pop(cid, None)
            if session is None:
                continue
            killed.append(cid)
            for hold in session.holds:
                hold.end = "killed_close" if held == "close" else "killed_answer"
        self.stats["sessions_killed"] += len(killed)
        self.cond.notify_all()
        return killed

    def _take_behaviour(self, messages):
        for behaviour in self.behaviours:
            if any(behaviour.applies_to(m) for m in messages):
                behaviour.remaining -= 1
                if behaviour.remaining <= 0:
                    self.behaviours.remove(behaviour)
                self.stats["behaviours_applied"] += 1
                return behaviour
        return None

    def _granted(self, message, fallback_ms):
        """The hold the server grants: what the client asks in advice.timeout, capped."""
        advice = message.get("advice")
        asked = advice.get("timeout") if isinstance(advice, dict) else None
        wanted = asked if _is_number(asked) else fallback_ms
        return int(min(max(wanted, 0), self.config["max_timeout_ms"]))

    # -- HTTP entry point ----------------------------------------------------------------------

    def handle(self, sim, req):
        try:
            messages = self._parse(req)
        except ValueError as exc:
            with self.cond:
                self.stats["bad_requests"] += 1
            # Not Bayeux at all: CometD and Faye answer HTTP 400 here, not a Bayeux error.
            return self._json(400, {"error": f"bad Bayeux request: {exc}"})
        wire = Wire.current(self.host.Handler)
        if wire is not None and wire.faulted():
            wire = None
        with self.cond:
            self._sweep()
            behaviour = self._take_behaviour(messages)
        sim.annotate_request(req.seq, bayeux={
            "messages": [message_kind(m.get("channel")) for m in messages],
            "behaviour": {"id": behaviour.id, "action": behaviour.action} if behaviour else None})
        ex = Exchange(req, messages, behaviour, wire)
        if ex.action in UNPROCESSED_ACTIONS:
            return self._unprocessed_answer(ex)
        if any(message_kind(m.get("channel")) != "handshake" for m in messages):
            denied = self._check_request_auth(req)
            if denied is not None:
                return denied
        for message in messages:
            self._process(ex, message)
        if ex.action == "hang":
            return self._hang(ex)
        if ex.action == "heartbeats":
            if not self._leading_heartbeats(ex):
                return self.host.Response(200)  # the client is gone or the server stops
        if ex.hold is not None:
            end = self._hold(ex)
            if end in ("client_gone", "stopping", "killed_close"):
                if ex.wire is not None:  # killed_close: a restarting server closes (FIN)
                    ex.wire.finish(None, end)
                return self.host.Response(200)
            ex.reply(self._connect_reply(ex, end), ex.connect_message)
        return self._answer(ex)

    def _parse(self, req):
        if req.body is None:
            raise ValueError("body too large")
        try:
            data = json.loads(req.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ValueError("the body is not JSON")
        messages = data if isinstance(data, list) else [data]
        if not messages:
            raise ValueError("no messages")
        for message in messages:
            if not isinstance(message, dict) or message_kind(message.get("channel")) is None:
                raise ValueError("every message needs a channel")
        return messages

    def _check_request_auth(self, req):
        """Long polling sends Basic auth on every request; a wrong login is HTTP 401."""
        header = req.header("Authorization")
        if header is None and not self.config["auth_every_request"]:
            return None
        try:
            self.host.c8y_authenticate(self.sim, req)
            return None
        except self.host.ApiError as err:
            with self.cond:
                self.stats["unauthorized"] += 1
            return err.response

    def _json(self, status, obj, headers=None):
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        return self.host.Response(status, body, CONTENT_TYPE, headers)

    # -- messages ------------------------------------------------------------------------------

    def _process(self, ex, message):
        kind = message_kind(message["channel"])
        if ex.action == "error" and ex.behaviour.applies_to(message):
            reply = {"channel": message["channel"], "successful": False,
                     "error": ex.param("error")}
            for key in ("clientId", "subscription"):
                if key in message:
                    reply[key] = message[key]
            if "advice" in ex.behaviour.params:
                reply["advice"] = copy.deepcopy(ex.param("advice"))
            ex.reply(with_id(reply, message), message)
            return
        handler = {"handshake": self._handshake, "connect": self._connect,
                   "subscribe": self._subscribe, "unsubscribe": self._subscribe,
                   "disconnect": self._disconnect, "publish": self._client_publish}.get(kind)
        if handler is None:
            ex.reply(with_id({"channel": message["channel"], "successful": False,
                              "error": f"400:{message['channel']}:Unknown meta channel"},
                             message), message)
            return
        reply = handler(ex, message)
        if reply is not None:
            ex.reply(reply, message)

    def _session(self, message):
        """(session, None) or (None, the 402 reply); lock held."""
        session = self.sessions.get(message.get("clientId"))
        if session is not None:
            return session, None
        self.stats["unknown_client"] += 1
        reply = {"channel": message["channel"], "successful": False, "error": UNKNOWN_CLIENT,
                 "advice": {"reconnect": "handshake", "interval": 0}}
        for key in ("clientId", "subscription"):
            if key in message:
                reply[key] = message[key]
        return None, with_id(reply, message)

    def _handshake(self, ex, message):
        user = self._handshake_user(ex.req, message)
        with self.cond:
            if user is None:
                self.stats["handshakes_denied"] += 1
                return with_id({"channel": "/meta/handshake", "successful": False,
                                "error": HANDSHAKE_DENIED, "advice": {"reconnect": "none"}},
                               message)
            types = message.get("supportedConnectionTypes")
            if not isinstance(types, list) or "long-polling" not in types:
                self.stats["handshakes_failed"] += 1
                return with_id({"channel": "/meta/handshake", "successful": False,
                                "error": f"301:{','.join(map(str, types or []))}:"
                                         "Connection types not supported",
                                "supportedConnectionTypes": ["long-polling"],
                                "advice": {"reconnect": "none"}}, message)
            granted = self._granted(message, self.config["default_timeout_ms"])
            session = Session(new_client_id(), user, granted, self.config["interval_ms"])
            self.sessions[session.id] = session
            self.stats["handshakes"] += 1
            return with_id({"channel": "/meta/handshake", "version": "1.0",
                            "minimumVersion": "1.0",
                            "supportedConnectionTypes": ["long-polling"],
                            "clientId": session.id, "successful": True,
                            "advice": {"reconnect": "retry", "interval": 0,
                                       "timeout": granted}}, message)

    def _handshake_user(self, req, message):
        """The Basic header if present, else ext["com.cumulocity.authn"]["token"] (Base64 of
        tenant/user:password, as Cumulocity takes it). None when denied."""
        if req.header("Authorization") is not None:
            try:
                user = self.host.c8y_authenticate(self.sim, req)
            except self.host.ApiError:
                user = None
        else:
            user = None
            ext = message.get("ext")
            authn = ext.get("com.cumulocity.authn") if isinstance(ext, dict) else None
            token = authn.get("token") if isinstance(authn, dict) else None
            if isinstance(token, str):
                try:
                    name, _, password = base64.b64decode(token, validate=True) \
                        .decode("utf-8").partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    name = password = None
                expected = self.sim.c8y_password(name) if name else None
                if expected is not None and hmac.compare_digest(expected.encode(),
                                                                password.encode()):
                    user = name
        self.sim.count_auth(user is not None)
        return user

    def _connect(self, ex, message):
        with self.cond:
            session, error = self._session(message)
            if error is not None:
                return error
            self.stats["connects"] += 1
            if ex.hold is not None:  # one connect per POST
                return with_id({"channel": "/meta/connect", "clientId": session.id,
                                "successful": False,
                                "error": "400::Only one /meta/connect per request"}, message)
            kind = message.get("connectionType")
            if kind != "long-polling":
                error = "402:connectionType:Missing required parameter" if kind is None \
                    else f"302:{kind}:Connection type not supported"
                return with_id({"channel": "/meta/connect", "clientId": session.id,
                                "successful": False, "error": error,
                                "advice": {"reconnect": "retry", "interval": 0}}, message)
            session.connects += 1
            session.touch()
            # The asked timeout holds for this connect only (CometD's "transient timeout"):
            # {timeout: 0} on the first connect must not make every later connect return at
            # once. A positive ask becomes the session's hold time, which its lifetime uses.
            granted = self._granted(message, session.timeout_ms)
            if granted > 0:
                session.timeout_ms = granted
            ex.hold = Hold(session, granted)
            ex.connect_message = message
        return None  # answered after the hold

    def _subscribe(self, ex, message):
        subscribe = message["channel"] == "/meta/subscribe"
        with self.cond:
            session, error = self._session(message)
            if error is not None:
                return error
            wanted = message.get("subscription")
            channels = wanted if isinstance(wanted, list) else [wanted]
            reply = {"channel": message["channel"], "clientId": session.id,
                     "subscription": wanted}
            bad = [c for c in channels if not valid_channel(c, True)
                   or (isinstance(c, str) and c.startswith("/meta/"))]
            if bad or not channels:
                reply.update(successful=False, error=f"405:{bad[0] if bad else ''}:"
                                                     "Invalid channel")
                return with_id(reply, message)
            for channel in channels:
                if subscribe:
                    session.subscriptions.add(channel)
                else:
                    session.subscriptions.discard(channel)
            self.stats["subscribes" if subscribe else "unsubscribes"] += 1
            if ex.action == "with_events" and ex.behaviour.applies_to(message):
                self._piggyback(ex, session)
            reply["successful"] = True
            return with_id(reply, message)

    def _piggyback(self, ex, session):
        """Queued events (and the behaviour's own) ride on this non-connect answer."""
        for event in ex.param("events"):
            ex.events.append((session, {"channel": event["channel"],
                                        "data": copy.deepcopy(event["data"]),
                                        "id": str(next(self._event_ids))}, "inline"))
        ex.events.extend((session, e, "piggyback") for e in session.queue)
        session.queue = []

    def _disconnect(self, ex, message):
        with self.cond:
            session, error = self._session(message)
            if error is not None:
                return error
            del self.sessions[session.id]
            for hold in session.holds:
                hold.end = "disconnected"
            self.stats["disconnects"] += 1
            self.cond.notify_all()
            return with_id({"channel": "/meta/disconnect", "clientId": session.id,
                            "successful": True}, message)

    def _client_publish(self, ex, message):
        with self.cond:
            session, error = self._session(message)
            if error is not None:
                return error
            channel = message["channel"]
            reply = {"channel": channel, "successful": True}
            if not valid_channel(channel, False):
                reply.update(successful=False, error=f"405:{channel}:Invalid channel")
            else:
                self.stats["client_publishes"] += 1
                if not channel.startswith("/service/"):
                    self._publish(channel, [message.get("data")])
            return with_id(reply, message)

    def _publish(self, channel, datas):
        """Queue events for every subscribed session (lock held); wakes held connects."""
        published = []
        for data in datas:
            event = {"channel": channel, "data": data, "id": str(next(self._event_ids))}
            recipients = []
            for session in self.sessions.values():
                if session.subscribed(channel):
                    session.queue.append(copy.deepcopy(event))
                    recipients.append(session.id)
            self.stats["published"] += 1
            if not recipients:
                self.stats["published_unheard"] += 1
            published.append({"id": event["id"], "channel": channel, "recipients": recipients})
        self.cond.notify_all()
        return published

    # -- holding a connect ---------------------------------------------------------------------

    def _hold(self, ex):
        """Wait for events, the granted timeout, or an end set by someone else. Returns why it
        ended: events, timeout, superseded, disconnected, killed_close, killed_answer,
        client_gone, stopping."""
        hold, session = ex.hold, ex.hold.session
        heartbeat = ex.param("heartbeat_interval") if ex.streaming else None
        with self.cond:
            for older in session.holds:  # one outstanding connect per client, as in CometD
                older.end = "superseded"
                self.stats["multiple_clients"] += 1
            session.holds.append(hold)
            self.cond.notify_all()
        started = time.monotonic()
        deadline = started + hold.timeout_ms / 1000.0
        next_beat = started + heartbeat if heartbeat else math.inf
        end = None
        try:
            while end is None:
                end = self._hold_step(ex, deadline, next_beat)
                if end is None and time.monotonic() >= next_beat:
                    if not ex.wire.write(chunk(ex.param("whitespace").encode())):
                        end = "client_gone"
                    next_beat += heartbeat
            return end
        finally:
            with self.cond:
                if hold in session.holds:
                    session.holds.remove(hold)
                session.touch()
                self.stats[f"connect_end_{end or 'error'}"] += 1

    def _hold_step(self, ex, deadline, next_beat):
        """One wait of at most HOLD_POLL; the reason the hold ends, or None to go on."""
        hold, session = ex.hold, ex.hold.session
        with self.cond:
            if hold.end is not None:
                return hold.end
            if session.queue:
                ex.events.extend((session, e, "connect") for e in session.queue)
                session.queue = []
                return "events"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            self.cond.wait(max(min(deadline, next_beat, now + HOLD_POLL) - now, 0))
        if self.sim.stopping.is_set():
            return "stopping"
        if ex.wire is not None and ex.wire.client_gone():
            return "client_gone"
        return None

    def _connect_reply(self, ex, end):
        session, message = ex.hold.session, ex.connect_message
        with self.cond:
            if end == "killed_answer":
                self.stats["unknown_client"] += 1
                reply = {"channel": "/meta/connect", "clientId": session.id,
                         "successful": False, "error": UNKNOWN_CLIENT,
                         "advice": {"reconnect": "handshake", "interval": 0}}
                return with_id(reply, message)
            advice = {"reconnect": "none" if end == "disconnected" else "retry",
                      "interval": self.config["interval_ms"], "timeout": ex.hold.timeout_ms}
            if end == "superseded":
                advice["multiple-clients"] = True
            session.interval_ms = self.config["interval_ms"]
            ex.previous_connect_id = session.last_connect_id
            session.last_connect_id = message.get("id")
            return with_id({"channel": "/meta/connect", "clientId": session.id,
                            "successful": True, "advice": advice}, message)

    # -- answers -------------------------------------------------------------------------------

    def _shape(self, ex):
        """The answer array after the behaviour's Bayeux-level changes."""
        action = ex.action
        replies = ex.replies
        targets = [r for r, m in zip(replies, ex.answered)
                   if ex.behaviour.applies_to(m)] if action else []
        if action == "advice":
            for reply in targets:
                reply.setdefault("advice", {}).update(copy.deepcopy(ex.param("advice")))
                interval = ex.param("advice").get("interval")
                if reply.get("channel") == "/meta/connect" and ex.hold is not None \
                        and _is_number(interval):
                    with self.cond:  # the advised interval extends the session's lifetime
                        ex.hold.session.interval_ms = interval
        elif action == "stale_id":
            for reply in targets:
                stale = ex.param("id")
                if stale is None:  # the previous connect's id, as a late answer would carry
                    previous = ex.previous_connect_id
                    stale = previous if previous not in (None, reply.get("id")) else "stale-0"
                reply["id"] = stale
        elif action == "huge" and replies:
            target = targets[0] if targets else replies[0]
            target["ext"] = {"padding": ""}
            current = len(json.dumps(self._ordered(replies, ex.events),
                                     separators=(",", ":")))
            target["ext"]["padding"] = "x" * max(ex.param("size") - current, 0)
        events = ex.events
        if action == "data_array":
            events = [(s, self._data_as_array(e), via) for s, e, via in events]
        if action == "single_object" and len(replies) == 1:
            with self.cond:  # events cannot ride on a single object: they stay queued
                for session, event, _ in reversed(events):
                    session.queue.insert(0, event)
                self.cond.notify_all()
            return replies[0], []
        return self._ordered(replies, events), events

    def _ordered(self, replies, events):
        messages = [e for _, e, _ in events]
        return messages + replies if self.config["events_first"] else replies + messages

    @staticmethod
    def _data_as_array(event):
        """Cumulocity's docs show `data` as an object and as a one-element array: the inner
        data of {"realtimeAction", "data"}, or the whole data when it is not in that shape."""
        event = copy.deepcopy(event)
        data = event.get("data")
        if isinstance(data, dict) and "realtimeAction" in data and "data" in data:
            data["data"] = [data["data"]]
        else:
            event["data"] = [data]
        return event

    def _record_deliveries(self, ex, events, outcome):
        with self.cond:
            for session, event, via in events:
                session.delivered += 1
                self.stats["delivered"] += 1
                self.deliveries.append({"index": self.delivery_count, "client_id": session.id,
                                        "channel": event["channel"], "id": event.get("id"),
                                        "data": copy.deepcopy(event.get("data")), "via": via,
                                        "answer": outcome, "request": ex.req.seq,
                                        "at": iso_now()})
                self.delivery_count += 1

    def _answer(self, ex):
        answer, events = self._shape(ex)
        body = json.dumps(answer, separators=(",", ":")).encode("utf-8")
        action = ex.action
        if ex.wire is None and action in WIRE_ACTIONS:
            action = None  # no raw connection (a generic fault owns this request): plain answer
        self._record_deliveries(ex, events, action or "answered")
        if action == "truncated_json":
            return self.host.Response(200, body[:len(body) // 2], CONTENT_TYPE)
        if action == "heartbeats":
            ex.wire.finish(200, "heartbeats")
            ex.wire.write(chunk(body) + b"0\r\n\r\n")
            return self.host.Response(200)
        if action == "close":
            cut = ex.param("after_bytes")
            cut = len(body) // 2 if cut is None else min(cut, max(len(body) - 1, 0))
            ex.wire.finish(200, "reset" if ex.param("reset") else "close")
            ex.wire.write(Wire.head(200, CONTENT_TYPE, len(body)) + body[:cut])
            if ex.param("reset"):
                ex.wire.reset()
            return self.host.Response(200)
        if action == "drip":
            return self._drip(ex, body)
        return self.host.Response(200, body, CONTENT_TYPE)

    def _drip(self, ex, body):
        """Headers at once, then the body one byte per drip_interval."""
        ex.wire.finish(200, "drip")
        if not ex.wire.write(Wire.head(200, CONTENT_TYPE, len(body))):
            return self.host.Response(200)
        for i in range(len(body)):
            if not ex.wire.write(body[i:i + 1]):
                break
            if i + 1 < len(body) and self.sim.stopping.wait(ex.param("drip_interval")):
                break
        return self.host.Response(200)

    def _unprocessed_answer(self, ex):
        """Something in front of the server answered: the messages never reached Bayeux."""
        action = ex.action
        if action == "garbage":
            return self.host.Response(200, ex.param("body").encode("utf-8"), CONTENT_TYPE)
        if action == "html":
            return self.host.Response(200, HTML_PAGE, "text/html; charset=utf-8")
        if action == "empty":
            return self.host.Response(200, b"", CONTENT_TYPE)
        status, body = ex.param("status"), ex.param("body")
        headers = [("Retry-After", str(ex.param("retry_after")))] \
            if ex.param("retry_after") is not None else []
        if body is None:
            return self._json(status, {"error": "general/internalError",
                                       "message": "Simulated HTTP error."}, headers)
        return self.host.Response(status, body.encode("utf-8"), "text/plain; charset=utf-8",
                                  headers)

    def _hang(self, ex):
        """Processed (a connect counts as seen, events stay queued) but never answered: wait
        until the client gives up or the server stops."""
        if ex.wire is None:
            self.sim.stopping.wait()
            return self.host.Response(200)
        while not self.sim.stopping.wait(HOLD_POLL):
            if ex.wire.client_gone():
                break
        ex.wire.finish(None, "hang")
        return self.host.Response(200)

    def _leading_heartbeats(self, ex) -> bool:
        """Headers, then `heartbeats` whitespace chunks one interval apart. With then=silence
        nothing follows. False when there is nothing more to send."""
        if ex.wire is None:
            return True
        ex.streaming = True
        if not ex.wire.write(Wire.head(200, CONTENT_TYPE, chunked=True)):
            ex.wire.finish(None, "client_gone")
            return False
        for _ in range(ex.param("heartbeats")):
            if not ex.wire.write(chunk(ex.param("whitespace").encode())):
                ex.wire.finish(None, "client_gone")
                return False
            if self.sim.stopping.wait(ex.param("heartbeat_interval")):
                ex.wire.finish(None, "server_stopping")
                return False
        if ex.param("then") == "silence":
            ex.wire.finish(200, "heartbeats_then_silence")
            while not self.sim.stopping.wait(HOLD_POLL):
                if ex.wire.client_gone():
                    break
            return False
        return True

    # -- control API ---------------------------------------------------------------------------

    def control_routes(self):
        return [("GET", "/sessions", self.ctl_sessions),
                ("GET", "/stats", self.ctl_stats),
                ("GET", "/deliveries", self.ctl_deliveries),
                ("GET", "/config", self.ctl_get_config),
                ("POST", "/config", self.ctl_set_config),
                ("POST", "/publish", self.ctl_publish),
                ("POST", "/operation", self.ctl_operation),
                ("GET", "/operations", self.ctl_operations),
                ("POST", "/kill", self.ctl_kill),
                ("POST", "/behaviours", self.ctl_add_behaviours),
                ("GET", "/behaviours", self.ctl_list_behaviours),
                ("DELETE", "/behaviours", self.ctl_clear_behaviours),
                ("POST", "/reset", self.ctl_reset)]

    def _body(self, req, default=None):
        return self.host.control_json(req, default)

    def _bad(self, msg):
        return self.host.control_error(msg)

    def _ok(self, obj):
        return self.host.Response.json(200, obj)

    def ctl_sessions(self, sim, req):
        with self.cond:
            self._sweep()
            margin = self.config["session_margin_ms"]
            return self._ok({"sessions": [s.view(margin) for s in self.sessions.values()]})

    STATS_KEYS = ("handshakes", "handshakes_denied", "handshakes_failed", "connects",
                  "subscribes", "unsubscribes", "disconnects", "client_publishes",
                  "unknown_client", "unauthorized", "bad_requests", "published",
                  "published_unheard", "delivered", "sessions_expired", "sessions_killed",
                  "multiple_clients", "behaviours_applied")

    def ctl_stats(self, sim, req):
        with self.cond:
            self._sweep()
            out = {key: self.stats[key] for key in self.STATS_KEYS}
            out["connect_ends"] = {k[len("connect_end_"):]: v for k, v in self.stats.items()
                                   if k.startswith("connect_end_")}
            out["sessions"] = len(self.sessions)
            out["held_connects"] = sum(len(s.holds) for s in self.sessions.values())
            out["behaviours_pending"] = len(self.behaviours)
            return self._ok(out)

    def ctl_deliveries(self, sim, req):
        since = req.query_int("since", 0)
        client = (req.query.get("client_id") or [None])[0]
        with self.cond:
            return self._ok({"deliveries": [copy.deepcopy(d) for d in self.deliveries
                                            if d["index"] >= since
                                            and client in (None, d["client_id"])],
                             "next": self.delivery_count})

    def ctl_get_config(self, sim, req):
        with self.cond:
            return self._ok(dict(self.config))

    CONFIG_CHECKS = {
        "max_timeout_ms": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
        "default_timeout_ms": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
        "interval_ms": (_is_int, "must be an integer"),
        "session_margin_ms": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
        "auth_every_request": (lambda v: isinstance(v, bool), "must be a boolean"),
        "events_first": (lambda v: isinstance(v, bool), "must be a boolean"),
        "publish_operation_updates": (lambda v: isinstance(v, bool), "must be a boolean"),
    }

    def ctl_set_config(self, sim, req):
        body = self._body(req)
        if not isinstance(body, dict):
            raise self._bad("expected a JSON object")
        for key, value in body.items():  # all keys or none
            if key not in self.CONFIG_CHECKS:
                raise self._bad(f"unknown Bayeux config key {key!r}")
            check, text = self.CONFIG_CHECKS[key]
            if not check(value):
                raise self._bad(f"{key} {text}")
        with self.cond:
            self.config.update(body)
            return self._ok(dict(self.config))

    def ctl_publish(self, sim, req):
        body = self._body(req)
        specs = body if isinstance(body, list) else [body]
        for spec in specs:
            if not isinstance(spec, dict) or not valid_channel(spec.get("channel"), False):
                raise self._bad("each publish needs a channel like /operations/123 "
                                "(no wildcards)")
            if not isinstance(spec.get("data"), list):
                raise self._bad("data must be a list of event data objects")
            unknown = set(spec) - {"channel", "data", "realtime_action"}
            if unknown:
                raise self._bad(f"unknown publish fields: {sorted(unknown)}")
            action = spec.get("realtime_action")
            if action is not None and action not in ("CREATE", "UPDATE", "DELETE"):
                raise self._bad("realtime_action must be CREATE, UPDATE or DELETE")
        published = []
        with self.cond:
            for spec in specs:
                action = spec.get("realtime_action")
                datas = [{"realtimeAction": action, "data": d} if action else d
                         for d in spec["data"]]
                published.extend(self._publish(spec["channel"], copy.deepcopy(datas)))
        return self._ok({"published": published})

    OPERATION_FIELDS = {"deviceId", "id", "fragments", "description", "status", "publish"}
    OPERATION_STATUSES = ("PENDING", "EXECUTING", "SUCCESSFUL", "FAILED")

    def ctl_operation(self, sim, req):
        body = self._body(req)
        if not isinstance(body, dict):
            raise self._bad("expected a JSON object")
        unknown = set(body) - self.OPERATION_FIELDS
        if unknown:
            raise self._bad(f"unknown operation fields: {sorted(unknown)}")
        fragments = body.get("fragments", {})
        if not isinstance(fragments, dict) or set(fragments) & {
                "id", "self", "deviceId", "status", "creationTime", "lastUpdated"}:
            raise self._bad("fragments must be an object of fragments (not id, status, ...)")
        status = body.get("status")
        if status is not None and status not in self.OPERATION_STATUSES:
            raise self._bad(f"status must be one of {list(self.OPERATION_STATUSES)}")
        now = iso_now()
        with self.cond:
            if "id" in body:  # an update of an operation created here
                operation = self.operations.get(str(body["id"]))
                if operation is None or "deviceId" in body:
                    raise self._bad("id must name an operation created here (no deviceId)")
                operation.update(copy.deepcopy(fragments))
                operation["status"] = status or operation["status"]
                if "description" in body:
                    operation["description"] = body["description"]
                operation["lastUpdated"] = now
                realtime_action = "UPDATE"
            else:
                device = body.get("deviceId")
                if not isinstance(device, (str, int)) or isinstance(device, bool) \
                        or not valid_channel(f"/operations/{device}", False):
                    raise self._bad("deviceId is required (a string without '/' or '*')")
                op_id = self.sim.next_object_id()
                operation = {"id": op_id,
                             "self": f"{req.base_url()}/devicecontrol/operations/{op_id}",
                             "deviceId": str(device), "status": status or "PENDING",
                             "creationTime": now, "lastUpdated": now,
                             "description": body.get("description", "Operation from the "
                                                                    "simulator")}
                operation.update(copy.deepcopy(fragments))
                self.operations[op_id] = operation
                realtime_action = "CREATE"
            if body.get("publish", True) is False:  # created while the device heard nothing
                return self._ok({"operation": copy.deepcopy(operation), "published": None})
            published = self._publish(f"/operations/{operation['deviceId']}",
                                      [{"realtimeAction": realtime_action,
                                        "data": copy.deepcopy(operation)}])
            return self._ok({"operation": copy.deepcopy(operation),
                             "published": published[0]})

    def ctl_operations(self, sim, req):
        with self.cond:
            return self._ok({"operations": copy.deepcopy(list(self.operations.values())),
                             "transitions": copy.deepcopy(self.transitions),
                             "refused": copy.deepcopy(self.refused_transitions)})

    # -- device control REST (the device's side) -------------------------------------------------

    def _c8y_error(self, status, error, message):
        return self.host.Response.json(status, {"error": error, "message": message})

    def put_operation(self, sim, req, op_id):
        """PUT /devicecontrol/operations/{id}: the device reports a status (and fragments)."""
        self.host.c8y_authenticate(sim, req)
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return self._c8y_error(422, "devicecontrol/Invalid Data", "The body is not valid JSON.")
        if not isinstance(body, dict):
            return self._c8y_error(422, "devicecontrol/Invalid Data", "An operation update is an object.")
        wanted = body.get("status")
        if wanted not in OPERATION_TRANSITIONS:
            return self._c8y_error(422, "devicecontrol/Invalid Data",
                                   f"status {wanted!r} is not an operation status.")
        for key in ("id", "self", "deviceId", "creationTime", "lastUpdated"):
            if key in body:
                return self._c8y_error(422, "devicecontrol/Invalid Data", f"{key} is read-only.")
        with self.cond:
            operation = self.operations.get(op_id)
            if operation is None:
                return self._c8y_error(404, "devicecontrol/Not Found",
                                       f"Finding device control operation with id {op_id}!")
            current = operation["status"]
            kind = operation_transition(current, wanted)
            entry = {"id": op_id, "from": current, "to": wanted, "at": iso_now(),
                     "request": req.seq}
            if kind is None:
                self.refused_transitions.append(entry)
                return self._c8y_error(422, "devicecontrol/Invalid Data",
                                       f"Operation {op_id} cannot go from {current} to {wanted}.")
            entry["repeat"] = kind == "repeat"
            self.transitions.append(entry)
            if kind == "change":
                for key, value in body.items():
                    operation[key] = copy.deepcopy(value)
                operation["lastUpdated"] = iso_now()
                if self.config["publish_operation_updates"]:
                    self._publish(f"/operations/{operation['deviceId']}",
                                  [{"realtimeAction": "UPDATE", "data": copy.deepcopy(operation)}])
            return self.host.Response.json(200, copy.deepcopy(operation),
                                           content_type="application/vnd.com.nsn.cumulocity."
                                                        "operation+json")

    def get_operations(self, sim, req):
        """GET /devicecontrol/operations?deviceId=&status=&pageSize=&currentPage=, oldest first."""
        self.host.c8y_authenticate(sim, req)
        device = (req.query.get("deviceId") or [None])[0]
        status = (req.query.get("status") or [None])[0]
        try:
            size = int((req.query.get("pageSize") or [DEFAULT_PAGE_SIZE])[0])
            page = int((req.query.get("currentPage") or [1])[0])
        except ValueError:
            return self._c8y_error(422, "general/Invalid Data", "pageSize and currentPage are numbers.")
        if not 1 <= size <= MAX_PAGE_SIZE or page < 1:
            return self._c8y_error(422, "general/Invalid Data",
                                   f"pageSize is 1 to {MAX_PAGE_SIZE}, currentPage from 1.")
        with self.cond:
            self.stats["operation_queries"] += 1
            chosen = [op for op in self.operations.values()
                      if (device is None or op["deviceId"] == device)
                      and (status is None or op["status"] == status)]
            chosen.sort(key=lambda op: int(op["id"]) if op["id"].isdigit() else 0)
            part = copy.deepcopy(chosen[(page - 1) * size:page * size])
        base = f"{req.base_url()}/devicecontrol/operations"
        query = {k: v for k, v in (("deviceId", device), ("status", status)) if v is not None}

        def link(n):
            return base + "?" + "&".join(f"{k}={v}" for k, v in
                                         {**query, "pageSize": size, "currentPage": n}.items())
        out = {"operations": part, "statistics": {"currentPage": page, "pageSize": size},
               "self": link(page)}
        if len(part) == size:  # like the platform: a full page links to the next one
            out["next"] = link(page + 1)
        if page > 1:
            out["prev"] = link(page - 1)
        return self.host.Response.json(200, out, content_type="application/vnd.com.nsn."
                                       "cumulocity.operationcollection+json")

    def ctl_kill(self, sim, req):
        body = self._body(req, {}) or {}
        if not isinstance(body, dict) or set(body) - {"client_id", "held"}:
            raise self._bad("expected {\"client_id\"?: ..., \"held\"?: \"close\"|"
                            "\"unknown_client\"}")
        held = body.get("held", "close")
        if held not in ("close", "unknown_client"):
            raise self._bad("held must be \"close\" or \"unknown_client\"")
        with self.cond:
            return self._ok({"killed": self._kill(body.get("client_id"), held)})

    def ctl_add_behaviours(self, sim, req):
        body = self._body(req)
        specs = body if isinstance(body, list) else body.get("behaviours", [body]) \
            if isinstance(body, dict) else None
        if not specs:
            raise self._bad("expected a behaviour, a list of them or {\"behaviours\": [...]}")
        with self.cond:
            try:
                new = [Behaviour(spec, next(self._behaviour_ids)) for spec in specs]
            except ValueError as exc:
                raise self._bad(f"bad behaviour: {exc}")
            self.behaviours.extend(new)
            return self._ok({"queued": [b.id for b in new], "pending": len(self.behaviours)})

    def ctl_list_behaviours(self, sim, req):
        with self.cond:
            return self._ok({"behaviours": [b.describe() for b in self.behaviours]})

    def ctl_clear_behaviours(self, sim, req):
        with self.cond:
            self.behaviours.clear()
            return self._ok({"behaviours": []})

    def ctl_reset(self, sim, req):
        body = self._body(req, {}) or {}
        if not isinstance(body, dict):
            raise self._bad("expected a JSON object or no body")
        self.reset(restore_config=bool(body.get("config")))
        return self._ok({"reset": True})


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def install(router, sim):
    """EXTRA_ROUTE_INSTALLERS entry: the endpoint, its control routes, and /_sim/reset."""
    host = sys.modules[type(router).__module__]
    endpoint = BayeuxEndpoint(host, sim)
    for mount in MOUNTS:
        router.add("POST", mount, endpoint.handle)
    for method, path, handler in endpoint.control_routes():
        router.add(method, CONTROL + path, handler, control=True)
    router.add("PUT", r"/devicecontrol/operations/(?P<op_id>[^/]+)", endpoint.put_operation)
    router.add("GET", r"/devicecontrol/operations", endpoint.get_operations)

    # /_sim/reset clears Bayeux stats, deliveries and behaviours too; {"config": true} also
    # restores the Bayeux config and {"tokens": true} also drops the sessions (they are the
    # Bayeux side's credentials). Wrapped on this Simulator instance only.
    clear = sim.clear

    def clear_all(restore_config=False, drop_tokens=False):
        clear(restore_config=restore_config, drop_tokens=drop_tokens)
        endpoint.reset(restore_config=restore_config, drop_sessions=drop_tokens)

    sim.clear = clear_all
    return endpoint
