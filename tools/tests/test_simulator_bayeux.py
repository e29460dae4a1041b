"""Tests for the simulator's Bayeux endpoint (tools/simulator_bayeux.py) and its control API.

The simulator runs as a subprocess, as in test_simulator.py; everything here talks HTTP to it.
Run from the repository root:
    python3 -m unittest discover -s tools/tests -v
"""

import base64
import http.client
import itertools
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMULATOR = os.path.join(TOOLS, "simulator.py")
FAYE_START = os.path.join(TOOLS, "faye", "start")
USER, PASSWORD = "t100/alice", "pa:ss"
MOUNT = "/notification/realtime"
DENIED = [{"channel": "/meta/handshake", "successful": False, "error": "403::Handshake denied",
           "advice": {"reconnect": "none"}}]


def basic(user=USER, password=PASSWORD):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Sim:
    """The simulator as a child process (sys.executable, so the pid is the server's)."""

    def __init__(self, *extra):
        self.stderr = tempfile.TemporaryFile()
        args = [sys.executable, SIMULATOR, "--port", "0",
                "--cumulocity-user", f"{USER}:{PASSWORD}"] + list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        if not ready:
            self.stop()
            raise RuntimeError("simulator did not start")
        self.info = json.loads(self.proc.stdout.readline())
        self.port = self.info["port"]
        self.https = self.info["url"].startswith("https")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.proc.stdout.close()
            self.stderr.seek(0)
            self.errors = self.stderr.read().decode(errors="replace")
            self.stderr.close()

    def connection(self, timeout=10):
        if self.https:
            context = ssl.create_default_context(cafile=self.info["ca_file"])
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers, body bytes) over a fresh connection."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def control(self, method, path, body=None):
        status, _, data = self.request(method, path, body,
                                       {"Content-Type": "application/json"})
        if status != 200:
            raise AssertionError(f"{method} {path} -> {status} {data!r}")
        return json.loads(data)

    def raw_socket(self, timeout=10):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.https:
            context = ssl.create_default_context(cafile=self.info["ca_file"])
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        return sock


class BayeuxTestCase(unittest.TestCase):
    """One simulator per class; Bayeux state and config are reset before each test."""

    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.extra_args)

    @classmethod
    def tearDownClass(cls):
        code = cls.sim.stop()
        if code != 0 or "Traceback" in cls.sim.errors:
            raise AssertionError(f"simulator exited with {code}: {cls.sim.errors}")

    def setUp(self):
        self.sim.control("POST", "/_sim/bayeux/reset", {"config": True})
        self.ids = itertools.count(1)

    # -- helpers ---------------------------------------------------------------------------------

    def post(self, messages, timeout=10, auth=True, conn=None):
        """(status, headers, parsed JSON or the raw bytes when they are not JSON)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = auth if isinstance(auth, str) else basic()
        body = messages if isinstance(messages, bytes) else json.dumps(messages).encode()
        own = conn is None
        conn = conn or self.sim.connection(timeout)
        try:
            conn.request("POST", MOUNT, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            if own:
                conn.close()
        try:
            return resp.status, resp.headers, json.loads(data)
        except ValueError:
            return resp.status, resp.headers, data

    def bayeux(self, messages, **kwargs):
        status, _, answer = self.post(messages, **kwargs)
        self.assertEqual(status, 200, answer)
        return answer

    def msg(self, channel, **fields):
        fields.update(channel=channel, id=str(next(self.ids)))
        return fields

    def handshake_message(self, timeout_ms=None, **fields):
        message = self.msg("/meta/handshake", version="1.0",
                           supportedConnectionTypes=["long-polling"], **fields)
        if timeout_ms is not None:
            message["advice"] = {"timeout": timeout_ms, "interval": 0}
        return message

    def handshake(self, timeout_ms=None):
        reply = self.bayeux([self.handshake_message(timeout_ms)])[0]
        self.assertTrue(reply["successful"], reply)
        return reply["clientId"]

    def connect_message(self, client_id, timeout_ms=None):
        message = self.msg("/meta/connect", clientId=client_id, connectionType="long-polling")
        if timeout_ms is not None:
            message["advice"] = {"timeout": timeout_ms}
        return message

    def connect(self, client_id, timeout_ms=None, **kwargs):
        return self.bayeux([self.connect_message(client_id, timeout_ms)], **kwargs)

    def subscribe(self, client_id, *channels):
        answer = self.bayeux([self.msg("/meta/subscribe", clientId=client_id, subscription=c)
                              for c in channels])
        self.assertTrue(all(r["successful"] for r in answer if r["channel"] == "/meta/subscribe"),
                        answer)
        return answer

    def session(self, timeout_ms=500, channels=("/operations/4711",)):
        """A handshaken, subscribed client whose first connect (timeout 0) has been answered."""
        cid = self.handshake(timeout_ms)
        if channels:
            self.subscribe(cid, *channels)
        self.connect(cid, 0)
        return cid

    def publish(self, channel, *datas, realtime_action=None):
        spec = {"channel": channel, "data": list(datas)}
        if realtime_action:
            spec["realtime_action"] = realtime_action
        return self.sim.control("POST", "/_sim/bayeux/publish", spec)["published"]

    def behave(self, *specs):
        return self.sim.control("POST", "/_sim/bayeux/behaviours", list(specs))

    def config(self, **changes):
        return self.sim.control("POST", "/_sim/bayeux/config", changes)

    def stats(self):
        return self.sim.control("GET", "/_sim/bayeux/stats")

    def sessions(self):
        return {s["client_id"]: s for s in
                self.sim.control("GET", "/_sim/bayeux/sessions")["sessions"]}

    def deliveries(self):
        return self.sim.control("GET", "/_sim/bayeux/deliveries")["deliveries"]

    def later(self, delay, fn, *args, **kwargs):
        timer = threading.Timer(delay, fn, args, kwargs)
        timer.start()
        self.addCleanup(timer.cancel)
        return timer

    def meta(self, answer, channel="/meta/connect"):
        found = [m for m in answer if m.get("channel") == channel]
        self.assertEqual(len(found), 1, answer)
        return found[0]

    def events(self, answer):
        return [m for m in answer if not m["channel"].startswith("/meta/")]


class HandshakeTests(BayeuxTestCase):

    def test_handshake_answer(self):
        message = self.handshake_message(4000)
        reply = self.bayeux([message])[0]
        self.assertEqual(reply["channel"], "/meta/handshake")
        self.assertTrue(reply["successful"])
        self.assertEqual(reply["supportedConnectionTypes"], ["long-polling"])
        self.assertEqual(reply["advice"], {"reconnect": "retry", "interval": 0, "timeout": 4000})
        self.assertEqual(reply["id"], message["id"])
        self.assertRegex(reply["clientId"], r"^[a-z0-9]{26}$")
        self.assertEqual(list(self.sessions()), [reply["clientId"]])
        self.assertEqual(self.sessions()[reply["clientId"]]["user"], USER)

    def test_granted_timeout_is_capped_and_defaulted(self):
        self.config(max_timeout_ms=2000, default_timeout_ms=1500)
        for asked, granted in ((5000, 2000), (None, 1500), (800, 800), (0, 0)):
            reply = self.bayeux([self.handshake_message(asked)])[0]
            self.assertEqual(reply["advice"]["timeout"], granted, asked)

    def test_wrong_or_missing_credentials_denied(self):
        for auth in (basic(password="wrong"), basic(user="t100/bob"), False, "Bearer abc"):
            answer = self.bayeux([self.handshake_message()], auth=auth)
            self.assertEqual([{k: v for k, v in r.items() if k != "id"} for r in answer], DENIED)
        stats = self.stats()
        self.assertEqual((stats["handshakes"], stats["handshakes_denied"]), (0, 4))
        self.assertEqual(self.sessions(), {})

    def test_cumulocity_token_extension(self):
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        bad = base64.b64encode(f"{USER}:nope".encode()).decode()
        ok = self.bayeux([self.handshake_message(ext={"com.cumulocity.authn": {"token": token}})],
                         auth=False)[0]
        self.assertTrue(ok["successful"])
        denied = self.bayeux([self.handshake_message(ext={"com.cumulocity.authn": {"token": bad}})],
                             auth=False)[0]
        self.assertEqual(denied["error"], "403::Handshake denied")

    def test_connection_type_must_include_long_polling(self):
        reply = self.bayeux([self.msg("/meta/handshake", version="1.0",
                                      supportedConnectionTypes=["websocket"])])[0]
        self.assertFalse(reply["successful"])
        self.assertTrue(reply["error"].startswith("301:"), reply)


class FlowTests(BayeuxTestCase):

    def test_subscribe_connect_publish_deliver(self):
        cid = self.handshake(2000)
        answer = self.bayeux([self.msg("/meta/subscribe", clientId=cid, subscription=c)
                              for c in ("/operations/4711", "/alarms/*")])
        self.assertEqual([(r["subscription"], r["successful"]) for r in answer],
                         [("/operations/4711", True), ("/alarms/*", True)])
        first = self.connect(cid, 0)  # the first connect asks timeout 0: answered at once
        self.assertEqual(first, [{"channel": "/meta/connect", "clientId": cid, "successful": True,
                                  "advice": {"reconnect": "retry", "interval": 0, "timeout": 0},
                                  "id": first[0]["id"]}])
        self.later(0.3, self.publish, "/operations/4711", {"id": "1", "status": "PENDING"},
                   realtime_action="CREATE")
        started = time.monotonic()
        answer = self.connect(cid)
        self.assertLess(time.monotonic() - started, 1.5)  # woken by the event, not the timeout
        self.assertEqual(answer[0], {"channel": "/operations/4711", "id": answer[0]["id"],
                                     "data": {"realtimeAction": "CREATE",
                                              "data": {"id": "1", "status": "PENDING"}}})
        self.assertEqual(self.meta(answer)["advice"]["timeout"], 2000)  # the session's timeout
        self.publish("/alarms/99", {"text": "hot"})
        self.assertEqual(self.events(self.connect(cid))[0]["data"], {"text": "hot"})
        delivered = self.deliveries()
        self.assertEqual([(d["client_id"], d["channel"], d["via"], d["answer"]) for d in delivered],
                         [(cid, "/operations/4711", "connect", "answered"),
                          (cid, "/alarms/99", "connect", "answered")])
        stats = self.stats()
        self.assertEqual((stats["handshakes"], stats["subscribes"], stats["connects"],
                          stats["delivered"]), (1, 2, 3, 2))

    def test_connect_is_held_for_the_granted_timeout(self):
        cid = self.session(timeout_ms=5000)
        started = time.monotonic()
        answer = self.connect(cid, 600)  # the connect's own ask, for this connect only
        held = time.monotonic() - started
        self.assertGreaterEqual(held, 0.55)
        self.assertLess(held, 2.0)
        self.assertEqual(self.meta(answer)["advice"]["timeout"], 600)
        self.config(max_timeout_ms=300)
        started = time.monotonic()
        self.assertEqual(self.meta(self.connect(cid, 5000))["advice"]["timeout"], 300)
        self.assertLess(time.monotonic() - started, 1.5)

    def test_queued_events_answer_at_once_in_the_same_array(self):
        cid = self.session(timeout_ms=10_000)
        self.publish("/operations/4711", {"n": 1}, {"n": 2})
        started = time.monotonic()
        answer = self.connect(cid)
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual([m.get("data") for m in answer], [{"n": 1}, {"n": 2}, None])
        self.config(events_first=False)
        self.publish("/operations/4711", {"n": 3})
        self.assertEqual([m["channel"] for m in self.connect(cid)],
                         ["/meta/connect", "/operations/4711"])

    def test_wildcards_unsubscribe_and_no_subscriber(self):
        cid = self.session(channels=("/measurements/*", "/events/**"))
        published = self.publish("/measurements/1", {"a": 1})
        self.publish("/measurements/1/deeper", {"b": 2})  # * is one segment only
        self.publish("/events/1/deeper", {"c": 3})
        self.assertEqual(published[0]["recipients"], [cid])
        self.assertEqual([e["data"] for e in self.events(self.connect(cid, 0))],
                         [{"a": 1}, {"c": 3}])
        self.bayeux([self.msg("/meta/unsubscribe", clientId=cid, subscription="/measurements/*")])
        self.assertEqual(self.publish("/measurements/1", {"a": 2})[0]["recipients"], [])
        self.assertEqual(self.events(self.connect(cid, 0)), [])
        self.assertEqual(self.sessions()[cid]["subscriptions"], ["/events/**"])
        self.assertEqual(self.stats()["published_unheard"], 2)

    def test_invalid_subscriptions(self):
        cid = self.handshake()
        for channel in ("/meta/connect", "nope", "/a/*/b", None):
            reply = self.bayeux([self.msg("/meta/subscribe", clientId=cid,
                                          subscription=channel)])[0]
            self.assertFalse(reply["successful"], channel)
        self.assertEqual(self.sessions()[cid]["subscriptions"], [])

    def test_client_publish_reaches_other_subscribers(self):
        a, b = self.session(channels=("/chat/x",)), self.session(channels=("/chat/x",))
        reply = self.bayeux([self.msg("/chat/x", clientId=a, data={"hi": 1})])[0]
        self.assertEqual((reply["channel"], reply["successful"]), ("/chat/x", True))
        self.assertEqual(self.events(self.connect(b, 0))[0]["data"], {"hi": 1})

    def test_disconnect_ends_session_and_held_connect(self):
        cid = self.session(timeout_ms=5000)
        self.later(0.3, self.bayeux, [self.msg("/meta/disconnect", clientId=cid)])
        started = time.monotonic()
        reply = self.meta(self.connect(cid))
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(reply["advice"]["reconnect"], "none")
        self.assertEqual(self.sessions(), {})
        self.assertEqual(self.stats()["disconnects"], 1)

    def test_newer_connect_releases_the_older(self):
        cid = self.session(timeout_ms=5000)
        result = {}
        thread = threading.Thread(target=lambda: result.update(answer=self.connect(cid)))
        thread.start()
        time.sleep(0.3)
        self.later(0.3, self.publish, "/operations/4711", {"n": 1})
        newer = self.connect(cid)
        thread.join(5)
        self.assertTrue(self.meta(result["answer"])["advice"]["multiple-clients"])
        self.assertEqual(self.events(newer)[0]["data"], {"n": 1})
        self.assertEqual(self.stats()["multiple_clients"], 1)

    def test_many_long_polls_do_not_block_other_routes(self):
        clients = [self.session(timeout_ms=5000) for _ in range(25)]
        answers = {}

        def poll(cid):
            answers[cid] = self.connect(cid)

        threads = [threading.Thread(target=poll, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while self.stats()["held_connects"] < len(clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.stats()["held_connects"], len(clients))
        started = time.monotonic()
        self.assertEqual(self.sim.request("GET", "/health")[2], b"ok")
        self.handshake()
        self.assertLess(time.monotonic() - started, 1.0)
        self.publish("/operations/4711", {"all": True})
        for thread in threads:
            thread.join(5)
        self.assertEqual(len(answers), len(clients))
        self.assertTrue(all(self.events(a)[0]["data"] == {"all": True} for a in answers.values()))


class SessionTests(BayeuxTestCase):

    def test_unknown_client_on_every_meta_channel(self):
        for channel in ("/meta/connect", "/meta/subscribe", "/meta/unsubscribe",
                        "/meta/disconnect"):
            reply = self.bayeux([self.msg(channel, clientId="nobody", subscription="/a",
                                          connectionType="long-polling")])[0]
            self.assertEqual((reply["successful"], reply["error"]),
                             (False, "402::Unknown client"), channel)
            self.assertEqual(reply["advice"], {"reconnect": "handshake", "interval": 0})
        self.assertEqual(self.stats()["unknown_client"], 4)

    def test_session_expires_after_timeout_interval_margin(self):
        self.config(session_margin_ms=200)
        cid = self.session(timeout_ms=300)
        view = self.sessions()[cid]
        self.assertLessEqual(view["expires_in_s"], 0.5)
        time.sleep(0.3)
        self.connect(cid, 0)  # a connect keeps it alive
        time.sleep(0.3)
        self.assertIn(cid, self.sessions())
        time.sleep(0.4)
        self.assertEqual(self.meta(self.connect(cid, 0))["error"], "402::Unknown client")
        self.assertEqual(self.stats()["sessions_expired"], 1)

    def test_session_never_expires_while_its_connect_is_held(self):
        self.config(session_margin_ms=100)
        cid = self.session(timeout_ms=100)
        answer = self.connect(cid, 1200)  # held far beyond timeout + margin of the session
        self.assertTrue(self.meta(answer)["successful"])
        self.assertTrue(self.meta(self.connect(cid, 0))["successful"])

    def test_kill_closes_held_connects_then_unknown_client(self):
        cid = self.session(timeout_ms=5000)
        self.later(0.3, self.sim.control, "POST", "/_sim/bayeux/kill", {})
        started = time.monotonic()
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.connect(cid)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(self.meta(self.connect(cid))["error"], "402::Unknown client")
        self.assertEqual(self.stats()["sessions_killed"], 1)

    def test_kill_one_client_answering_its_held_connect(self):
        cid, other = self.session(timeout_ms=5000), self.session()
        self.later(0.3, self.sim.control, "POST", "/_sim/bayeux/kill",
                   {"client_id": cid, "held": "unknown_client"})
        reply = self.meta(self.connect(cid))
        self.assertEqual((reply["error"], reply["advice"]["reconnect"]),
                         ("402::Unknown client", "handshake"))
        self.assertEqual(list(self.sessions()), [other])

    def test_auth_on_every_request(self):
        cid = self.handshake()
        status, _, body = self.post([self.connect_message(cid, 0)], auth=False)
        self.assertEqual((status, body["error"]), (401, "security/Unauthorized"))
        status, _, _ = self.post([self.connect_message(cid, 0)], auth=basic(password="x"))
        self.assertEqual(status, 401)
        self.config(auth_every_request=False)
        self.assertTrue(self.meta(self.connect(cid, 0, auth=False))["successful"])
        self.assertEqual(self.stats()["unauthorized"], 2)

    def test_not_bayeux_is_http_400(self):
        for body in (b"{nope", b"[]", b"[1]", b'[{"no":"channel"}]'):
            status, headers, answer = self.post(body)
            self.assertEqual(status, 400, body)
            self.assertIn("error", answer)
        self.assertEqual(self.sim.request("GET", MOUNT)[0], 405)

    def test_connect_needs_long_polling_and_old_path_works(self):
        cid = self.handshake()
        for fields, error in (({}, "402:connectionType:Missing required parameter"),
                              ({"connectionType": "websocket"},
                               "302:websocket:Connection type not supported")):
            reply = self.bayeux([self.msg("/meta/connect", clientId=cid, **fields)])[0]
            self.assertEqual((reply["successful"], reply["error"]), (False, error))
        status, _, body = self.sim.request("POST", "/cep/realtime",
                                           [self.connect_message(cid, 0)],
                                           {"Authorization": basic()})
        self.assertTrue(json.loads(body)[0]["successful"])

    def test_single_message_object_is_accepted(self):
        reply = self.bayeux(self.handshake_message())
        self.assertTrue(reply[0]["successful"])

    def test_operation_create_and_update(self):
        cid = self.session(channels=("/operations/4711",))
        created = self.sim.control("POST", "/_sim/bayeux/operation",
                                   {"deviceId": "4711", "description": "Restart",
                                    "fragments": {"c8y_Restart": {}}})
        op = created["operation"]
        self.assertEqual((op["deviceId"], op["status"], op["description"]),
                         ("4711", "PENDING", "Restart"))
        self.assertEqual(op["c8y_Restart"], {})
        self.assertRegex(op["creationTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(op["lastUpdated"], op["creationTime"])
        self.assertTrue(op["self"].endswith(f"/devicecontrol/operations/{op['id']}"))
        self.assertEqual(created["published"]["recipients"], [cid])
        updated = self.sim.control("POST", "/_sim/bayeux/operation",
                                   {"id": op["id"], "status": "EXECUTING"})["operation"]
        events = self.events(self.connect(cid, 0))
        self.assertEqual([(e["channel"], e["data"]["realtimeAction"], e["data"]["data"]["status"])
                          for e in events],
                         [("/operations/4711", "CREATE", "PENDING"),
                          ("/operations/4711", "UPDATE", "EXECUTING")])
        self.assertEqual(events[1]["data"]["data"], updated)
        ops = self.sim.control("GET", "/_sim/bayeux/operations")["operations"]
        self.assertEqual([o["status"] for o in ops], ["EXECUTING"])

    def test_control_validation(self):
        bad = [("/_sim/bayeux/behaviours", {"action": "explode"}),
               ("/_sim/bayeux/behaviours", {"action": "hang", "on": "nowhere"}),
               ("/_sim/bayeux/behaviours", {"action": "drip", "size": 3}),
               ("/_sim/bayeux/behaviours", {"action": "with_events", "on": "handshake"}),
               ("/_sim/bayeux/config", {"interval_ms": 5, "max_timeout_ms": -1}),
               ("/_sim/bayeux/publish", {"channel": "/a/*", "data": [{}]}),
               ("/_sim/bayeux/publish", {"channel": "/a", "data": {}}),
               ("/_sim/bayeux/operation", {"fragments": {}}),
               ("/_sim/bayeux/kill", {"held": "maybe"})]
        for path, body in bad:
            status, _, data = self.sim.request("POST", path, body)
            self.assertEqual(status, 400, (path, body, data))
        self.assertEqual(self.sim.control("GET", "/_sim/bayeux/config")["interval_ms"], 0)
        self.assertEqual(self.sim.control("GET", "/_sim/bayeux/behaviours"), {"behaviours": []})

    def test_sim_reset_clears_bayeux_and_tokens_drop_sessions(self):
        cid = self.session()
        self.behave({"action": "html"})
        self.config(interval_ms=7)
        self.sim.control("POST", "/_sim/reset")
        self.assertEqual(self.sim.control("GET", "/_sim/bayeux/behaviours"), {"behaviours": []})
        self.assertEqual(self.stats()["handshakes"], 0)
        self.assertIn(cid, self.sessions())
        self.assertEqual(self.sim.control("GET", "/_sim/bayeux/config")["interval_ms"], 7)
        self.sim.control("POST", "/_sim/reset", {"config": True, "tokens": True})
        self.assertEqual(self.sessions(), {})
        self.assertEqual(self.sim.control("GET", "/_sim/bayeux/config")["interval_ms"], 0)

    def test_generic_faults_apply_and_requests_are_logged(self):
        self.sim.control("POST", "/_sim/reset")
        self.sim.control("POST", "/_sim/faults", {"path": "^/notification/", "status": 503})
        self.assertEqual(self.post([self.handshake_message()])[0], 503)
        self.handshake()
        log = self.sim.control("GET", "/_sim/requests")["requests"]
        self.assertEqual([(e["path"], e["status"]) for e in log], [(MOUNT, 503), (MOUNT, 200)])
        self.assertEqual(self.stats()["handshakes"], 1)  # the faulted one never reached Bayeux

    def test_the_request_log_names_the_messages_and_the_behaviour_of_each_post(self):
        self.sim.control("POST", "/_sim/reset")
        cid = self.session(timeout_ms=300)
        self.behave({"action": "advice", "advice": {"interval": 5000}})
        self.connect(cid)
        log = [e for e in self.sim.control("GET", "/_sim/requests")["requests"] if e["path"] == MOUNT]
        self.assertEqual([e["bayeux"]["messages"] for e in log],
                         [["handshake"], ["subscribe"], ["connect"], ["connect"]])
        self.assertEqual([e["bayeux"]["behaviour"] for e in log[:3]], [None, None, None])
        self.assertEqual(log[3]["bayeux"]["behaviour"]["action"], "advice")
        self.assertGreaterEqual(log[3]["finished_s"], log[3]["started_s"])
        self.assertGreaterEqual(log[3]["started_s"], log[2]["finished_s"])


class BehaviourTests(BayeuxTestCase):
    """Queued behaviours, one test each, against a session whose first connect is done."""

    def raw_connect(self, cid, timeout=5):
        """Send a connect over a raw socket; returns the socket (headers not yet read)."""
        body = json.dumps([self.connect_message(cid)]).encode()
        sock = self.sim.raw_socket(timeout)
        sock.sendall(f"POST {MOUNT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Authorization: {basic()}\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        return sock

    def test_heartbeats_stream_whitespace_before_the_answer(self):
        cid = self.session(timeout_ms=400)
        self.behave({"action": "heartbeats", "heartbeats": 3, "heartbeat_interval": 0.15,
                     "whitespace": " \n"})
        self.publish("/operations/4711", {"n": 1})
        with self.raw_connect(cid) as sock:
            started = time.monotonic()
            received, arrivals = b"", []
            while not received.endswith(b"0\r\n\r\n"):
                data = sock.recv(65536)
                if not data:
                    break
                received += data
                arrivals.append((time.monotonic() - started, data))
        head, _, chunked = received.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        body = self.dechunk(chunked)
        self.assertTrue(body.startswith(b" \n \n \n"), body)
        answer = json.loads(body)
        self.assertEqual(self.events(answer)[0]["data"], {"n": 1})
        whitespace_at = next(t for t, d in arrivals if b" \n" in d)
        json_at = next(t for t, d in arrivals if b"[" in d)
        self.assertGreaterEqual(json_at - whitespace_at, 0.25)  # streamed slowly, not at once
        log = self.sim.control("GET", "/_sim/requests")["requests"]
        self.assertEqual(log[-1]["outcome"], "heartbeats")

    @staticmethod
    def dechunk(data):
        out = b""
        while data:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, data = out + data[:size], data[size + 2:]
        return out

    def test_heartbeats_during_a_held_connect(self):
        self.heartbeats_during_hold(self)  # HttpsBayeuxTests repeats it over TLS

    @staticmethod
    def heartbeats_during_hold(case):
        cid = case.session(timeout_ms=800)
        case.behave({"action": "heartbeats", "heartbeats": 0, "heartbeat_interval": 0.2})
        status, headers, body = case.sim.request(
            "POST", MOUNT, json.dumps([case.connect_message(cid)]).encode(),
            {"Authorization": basic(), "Content-Type": "application/json"})
        case.assertEqual(status, 200)
        case.assertGreaterEqual(len(body) - len(body.lstrip()), 3)  # ~4 during 0.8 s
        case.assertTrue(case.meta(json.loads(body))["successful"])

    def test_heartbeats_then_silence(self):
        cid = self.session()
        self.behave({"action": "heartbeats", "heartbeats": 2, "heartbeat_interval": 0.1,
                     "then": "silence"})
        with self.raw_connect(cid, timeout=0.8) as sock:
            received = b""
            with self.assertRaises(socket.timeout):
                while True:
                    data = sock.recv(65536)
                    self.assertTrue(data)
                    received += data
        body = self.dechunk(received.partition(b"\r\n\r\n")[2])
        self.assertEqual(body, b"  ")

    def test_interval_advice_positive_and_negative(self):
        cid = self.session()
        self.behave({"action": "advice", "advice": {"interval": 5000}},
                    {"action": "advice", "advice": {"interval": -1}})
        self.assertEqual(self.meta(self.connect(cid, 0))["advice"],
                         {"reconnect": "retry", "interval": 5000, "timeout": 0})
        self.assertEqual(self.sessions()[cid]["interval_ms"], 5000)  # it extends the lifetime
        self.assertEqual(self.meta(self.connect(cid, 0))["advice"]["interval"], -1)
        self.config(interval_ms=250)
        self.assertEqual(self.meta(self.connect(cid, 0))["advice"]["interval"], 250)

    def test_reconnect_none_on_connect(self):
        cid = self.session()
        self.behave({"action": "advice", "advice": {"reconnect": "none"}})
        reply = self.meta(self.connect(cid, 0))
        self.assertEqual((reply["successful"], reply["advice"]["reconnect"]), (True, "none"))

    def test_error_on_subscribe_and_on_handshake(self):
        cid = self.session(channels=())
        self.behave({"action": "error", "on": "subscribe", "error": "402::Unknown client"},
                    {"action": "error", "on": "handshake", "error": "403::Handshake denied",
                     "advice": {"reconnect": "none"}})
        answer = self.bayeux([self.msg("/meta/subscribe", clientId=cid, subscription=c)
                              for c in ("/a", "/b")])
        self.assertEqual([(r["subscription"], r["error"]) for r in answer],
                         [("/a", "402::Unknown client"), ("/b", "402::Unknown client")])
        self.assertEqual(self.sessions()[cid]["subscriptions"], [])  # not applied
        reply = self.bayeux([self.handshake_message()])[0]
        self.assertEqual((reply["successful"], reply["advice"]), (False, {"reconnect": "none"}))

    def test_answers_from_something_in_front(self):
        """garbage, html, empty and http_status: the messages never reach Bayeux."""
        cid = self.session(channels=())
        self.behave({"action": "garbage", "on": "subscribe"},
                    {"action": "html", "on": "subscribe"},
                    {"action": "empty", "on": "subscribe"},
                    {"action": "http_status", "on": "subscribe", "retry_after": 3},
                    {"action": "http_status", "on": "subscribe", "status": 502,
                     "body": "Bad Gateway"})
        subscribe = [self.msg("/meta/subscribe", clientId=cid, subscription="/x")]
        status, headers, body = self.post(subscribe)
        self.assertEqual((status, headers["Content-Type"]), (200, "application/json;charset=UTF-8"))
        self.assertIsInstance(body, bytes)
        status, headers, body = self.post(subscribe)
        self.assertEqual((status, headers["Content-Type"]), (200, "text/html; charset=utf-8"))
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"))
        status, headers, body = self.post(subscribe)
        self.assertEqual((status, headers["Content-Length"], body), (200, "0", b""))
        status, headers, body = self.post(subscribe)
        self.assertEqual((status, headers["Retry-After"]), (500, "3"))
        self.assertEqual(self.post(subscribe)[::2], (502, b"Bad Gateway"))
        self.assertEqual(self.sessions()[cid]["subscriptions"], [])
        self.assertEqual(self.stats()["subscribes"], 0)

    def test_truncated_json(self):
        cid = self.session()
        self.behave({"action": "truncated_json"})
        status, headers, body = self.post([self.connect_message(cid, 0)])
        self.assertEqual(status, 200)
        self.assertIsInstance(body, bytes)
        self.assertEqual(int(headers["Content-Length"]), len(body))
        self.assertTrue(body.startswith(b'[{"channel":"/meta/connect"'))

    def test_hang_until_the_client_gives_up(self):
        cid = self.session()
        self.behave({"action": "hang"})
        self.publish("/operations/4711", {"n": 1})
        started = time.monotonic()
        with self.assertRaises(socket.timeout):
            self.connect(cid, 0, timeout=0.5)
        self.assertLess(time.monotonic() - started, 1.5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            log = self.sim.control("GET", "/_sim/requests")["requests"]
            if log[-1]["done"]:
                break
            time.sleep(0.05)
        self.assertEqual((log[-1]["status"], log[-1]["outcome"]), (None, "hang"))
        # the event was not taken by the hung connect: the next one gets it
        self.assertEqual(self.events(self.connect(cid, 0))[0]["data"], {"n": 1})

    def test_close_mid_answer_loses_the_events(self):
        cid = self.session()
        self.behave({"action": "close", "after_bytes": 10})
        self.publish("/operations/4711", {"n": 1})
        with self.assertRaises(http.client.IncompleteRead):
            self.connect(cid, 0)
        self.assertEqual([(d["answer"], d["data"]) for d in self.deliveries()],
                         [("close", {"n": 1})])
        self.assertEqual(self.events(self.connect(cid, 0)), [])  # at most once, as Faye
        self.behave({"action": "close", "reset": True})
        with self.assertRaises((ConnectionResetError, http.client.IncompleteRead)):
            self.connect(cid, 0)
        log = self.sim.control("GET", "/_sim/requests")["requests"]
        self.assertEqual([e["outcome"] for e in log[-4:] if e["outcome"] != "answered"],
                         ["close", "reset"])

    def test_data_as_one_element_array(self):
        cid = self.session()
        self.behave({"action": "data_array"})
        self.publish("/operations/4711", {"id": "1"}, realtime_action="CREATE")
        self.publish("/operations/4711", {"bare": True})
        events = self.events(self.connect(cid, 0))
        self.assertEqual([e["data"] for e in events],
                         [{"realtimeAction": "CREATE", "data": [{"id": "1"}]}, [{"bare": True}]])

    def test_events_on_a_subscribe_answer(self):
        cid = self.session()
        self.publish("/operations/4711", {"queued": 1})
        self.behave({"action": "with_events", "on": "subscribe",
                     "events": [{"channel": "/operations/4711", "data": {"inline": 2}}]})
        answer = self.subscribe(cid, "/alarms/4711")
        self.assertEqual([m.get("data") for m in answer], [{"inline": 2}, {"queued": 1}, None])
        self.assertEqual(answer[-1]["channel"], "/meta/subscribe")
        self.assertEqual([d["via"] for d in self.deliveries()], ["inline", "piggyback"])
        self.assertEqual(self.events(self.connect(cid, 0)), [])

    def test_stale_message_id_on_connect(self):
        cid = self.session()
        previous = self.connect(cid, 0)[0]["id"]
        self.behave({"action": "stale_id"}, {"action": "stale_id", "id": "wrong-7"})
        self.assertEqual(self.meta(self.connect(cid, 0))["id"], previous)
        self.assertEqual(self.meta(self.connect(cid, 0))["id"], "wrong-7")

    def test_slow_drip(self):
        cid = self.session()
        self.behave({"action": "drip", "drip_interval": 0.003})
        started = time.monotonic()
        answer = self.connect(cid, 0)
        elapsed = time.monotonic() - started
        body_size = len(json.dumps(answer, separators=(",", ":")))
        self.assertGreaterEqual(elapsed, body_size * 0.003 * 0.9)
        self.assertTrue(self.meta(answer)["successful"])

    def test_huge_answer(self):
        cid = self.session()
        self.behave({"action": "huge", "size": 300_000})
        status, headers, answer = self.post([self.connect_message(cid, 0)])
        self.assertEqual(status, 200)
        self.assertAlmostEqual(int(headers["Content-Length"]), 300_000, delta=16)
        self.assertTrue(self.meta(answer)["successful"])

    def test_single_object_leaves_events_queued(self):
        cid = self.session()
        self.publish("/operations/4711", {"n": 1})
        self.behave({"action": "single_object"})
        self.publish("/operations/4711", {"n": 2})
        reply = self.connect(cid, 0)
        self.assertEqual(reply["channel"], "/meta/connect")
        self.assertEqual([e["data"] for e in self.events(self.connect(cid, 0))],
                         [{"n": 1}, {"n": 2}])

    def test_count_and_client_filter(self):
        a, b = self.session(), self.session()
        self.behave({"action": "advice", "advice": {"interval": 1}, "count": 2, "client_id": b})
        self.assertEqual(self.meta(self.connect(a, 0))["advice"]["interval"], 0)
        self.assertEqual(self.meta(self.connect(b, 0))["advice"]["interval"], 1)
        pending = self.sim.control("GET", "/_sim/bayeux/behaviours")["behaviours"]
        self.assertEqual([(p["remaining"], p["client_id"]) for p in pending], [(1, b)])
        self.assertEqual(self.meta(self.connect(b, 0))["advice"]["interval"], 1)
        self.assertEqual(self.meta(self.connect(b, 0))["advice"]["interval"], 0)
        self.assertEqual(self.stats()["behaviours_applied"], 2)
        self.sim.control("POST", "/_sim/bayeux/behaviours", {"action": "html"})
        self.sim.control("DELETE", "/_sim/bayeux/behaviours")
        self.assertTrue(self.meta(self.connect(a, 0))["successful"])


class HttpsBayeuxTests(BayeuxTestCase):
    extra_args = ("--https",)

    def test_flow_and_heartbeats_over_tls(self):
        BehaviourTests.heartbeats_during_hold(self)
        cid = self.session(timeout_ms=3000)
        self.later(0.2, self.publish, "/operations/4711", {"tls": True})
        self.assertEqual(self.events(self.connect(cid))[0]["data"], {"tls": True})

    def test_client_gone_is_seen_under_tls(self):
        cid = self.session(timeout_ms=5000)
        with self.assertRaises(socket.timeout):
            self.connect(cid, timeout=0.3)
        deadline = time.monotonic() + 2
        while self.stats()["held_connects"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.stats()["connect_ends"].get("client_gone"), 1)
        self.publish("/operations/4711", {"kept": True})  # not taken by the abandoned poll
        self.assertEqual(self.events(self.connect(cid, 0))[0]["data"], {"kept": True})


class Faye:
    """tools/faye/start as a child process; its pid is thin's (the script execs it)."""

    def __init__(self, timeout_s, port=None):
        self.dir = tempfile.mkdtemp(prefix="edgebuf-faye-test-")
        self.ready_file = os.path.join(self.dir, "ready.json")
        env = dict(os.environ, EDGEBUF_FAYE_TIMEOUT=str(timeout_s), EDGEBUF_FAYE_USER=USER,
                   EDGEBUF_FAYE_PASSWORD=PASSWORD)
        if port is not None:
            env["EDGEBUF_FAYE_PORT"] = str(port)
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([FAYE_START, self.ready_file], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.ready_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"faye did not start: {self.output()}")
            time.sleep(0.05)
        with open(self.ready_file) as f:
            self.info = json.load(f)
        self.port = self.info["port"]

    def output(self):
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """SIGINT: thin's quick stop (SIGTERM would wait for held polls)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=15)
        finally:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def connection(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    request = Sim.request


@unittest.skipUnless(shutil.which("thin") and os.path.isdir("/usr/lib/ruby/vendor_ruby/faye"),
                     "needs the Debian packages ruby-faye and thin")
class FayeTests(BayeuxTestCase):
    """The Faye launcher works, and what tools/faye/README.md says of Faye holds."""

    TIMEOUT_S = 2

    @classmethod
    def setUpClass(cls):
        cls.sim = Faye(cls.TIMEOUT_S)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.ids = itertools.count(1)

    def publish(self, channel, *datas, realtime_action=None):
        """A plain POST to the mount path, no clientId: how tests publish to Faye."""
        status, _, body = self.sim.request("POST", MOUNT, [
            {"channel": channel, "data": d, "id": f"p{i}"} for i, d in enumerate(datas)],
            {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        self.assertTrue(all(r["successful"] for r in json.loads(body)), body)

    def test_ready_file(self):
        self.assertEqual(self.sim.info["pid"], self.sim.proc.pid)
        self.assertEqual(self.sim.info["url"],
                         f"http://127.0.0.1:{self.sim.port}/notification/realtime")
        self.assertEqual(self.sim.info["timeout"], self.TIMEOUT_S)
        self.assertEqual(self.sim.request("GET", "/health")[::2], (200, b"ok"))

    def test_flow_and_publish_without_client_id(self):
        reply = self.bayeux([self.handshake_message(60_000)])[0]  # the ask is ignored
        self.assertEqual(reply["advice"], {"reconnect": "retry", "interval": 0,
                                           "timeout": self.TIMEOUT_S * 1000})
        cid = reply["clientId"]
        self.subscribe(cid, "/operations/4711")
        started = time.monotonic()
        self.connect(cid, 0)
        self.assertLess(time.monotonic() - started, 1.0)
        self.publish("/operations/4711", {"realtimeAction": "CREATE", "data": {"x": 1.5}})
        answer = self.connect(cid)
        self.assertEqual(answer[0]["channel"], "/meta/connect")  # the meta reply comes first
        self.assertEqual(answer[1], {"channel": "/operations/4711", "id": "p0",
                                     "data": {"realtimeAction": "CREATE", "data": {"x": 1.5}}})

    def test_idle_connect_held_for_the_server_timeout(self):
        cid = self.handshake()
        started = time.monotonic()
        self.assertEqual(self.meta(self.connect(cid))["advice"]["timeout"], 2000)
        self.assertGreaterEqual(time.monotonic() - started, self.TIMEOUT_S - 0.2)

    def test_denied_handshake_and_token_extension(self):
        for auth in (basic(password="wrong"), False):
            reply = self.bayeux([self.handshake_message()], auth=auth)[0]
            self.assertEqual((reply["successful"], reply["error"], reply["advice"]),
                             (False, "403::Handshake denied", {"reconnect": "none"}))
            self.assertNotIn("clientId", reply)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        ok = self.bayeux([self.handshake_message(ext={"com.cumulocity.authn": {"token": token}})],
                         auth=False)[0]
        self.assertTrue(ok["successful"])

    def test_unknown_and_missing_client(self):
        reply = self.meta(self.connect("nobody", 0))
        self.assertEqual((reply["error"], reply["advice"]),
                         ("401:nobody:Unknown client", {"reconnect": "handshake"}))
        reply = self.bayeux([self.msg("/meta/subscribe", clientId="nobody", subscription="/a")])[0]
        self.assertEqual(reply["error"], "401:nobody:Unknown client")
        self.assertNotIn("advice", reply)
        reply = self.bayeux([self.msg("/meta/connect", connectionType="long-polling")])[0]
        self.assertEqual(reply["error"], "402:clientId:Missing required parameter")

    def test_not_bayeux_is_http_400(self):
        self.assertEqual(self.post(b"[{nope")[:1], (400,))
        status, headers, _ = self.sim.request("POST", MOUNT, b"[]",
                                              {"Content-Type": "text/plain"})
        self.assertEqual((status, headers["Content-Type"]), (400, "text/plain; charset=utf-8"))

    def test_aborted_poll_loses_the_event(self):
        cid = self.handshake()
        self.subscribe(cid, "/operations/4711")
        self.connect(cid, 0)
        with self.assertRaises(socket.timeout):
            self.connect(cid, timeout=0.3)
        self.publish("/operations/4711", {"lost": True})
        self.assertEqual(self.events(self.connect(cid, 0)), [])

    def test_asking_too_long_a_hold_loses_the_session(self):
        cid = self.handshake()
        started = time.monotonic()
        reply = self.meta(self.connect(cid, 60_000))
        self.assertTrue(reply["successful"])  # answered when the session died, 2 x timeout
        self.assertAlmostEqual(time.monotonic() - started, 2 * self.TIMEOUT_S, delta=1.0)
        self.assertEqual(self.meta(self.connect(cid, 0))["error"], f"401:{cid}:Unknown client")

    def test_restart_forgets_every_client(self):
        cid = self.handshake()
        port = self.sim.port
        started = time.monotonic()
        self.sim.stop()
        stop_s = time.monotonic() - started
        type(self).sim = Faye(self.TIMEOUT_S, port=port)
        self.assertLess(stop_s, 5)
        self.assertEqual(self.meta(self.connect(cid, 0))["error"], f"401:{cid}:Unknown client")


class ShutdownTests(BayeuxTestCase):
    """SIGTERM while connects are held or streaming: the simulator still exits 0 at once."""

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self.sim = Sim()
        self.addCleanup(lambda: self.sim.proc.poll() is None and self.sim.stop())
        self.ids = itertools.count(1)

    def test_sigterm_with_held_connects_exits_quickly(self):
        self.behave({"action": "heartbeats", "heartbeats": 100, "heartbeat_interval": 0.1})
        conns = []
        for _ in range(3):
            cid = self.handshake(60_000)
            conn = self.sim.connection(timeout=10)
            self.addCleanup(conn.close)
            conn.request("POST", MOUNT, body=json.dumps([self.connect_message(cid)]),
                         headers={"Authorization": basic(), "Content-Type": "application/json"})
            conns.append(conn)
        deadline = time.monotonic() + 5
        while self.stats()["held_connects"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.stats()["held_connects"], 2)  # the third one is streaming
        started = time.monotonic()
        self.assertEqual(self.sim.stop(), 0)
        self.assertLess(time.monotonic() - started, 3)
        self.assertNotIn("Traceback", self.sim.errors)


if __name__ == "__main__":
    unittest.main()
