"""Tests for tools/simulator.py: starts it as a subprocess and talks HTTP(S) to it.

Run from the repository root:
    python3 -m unittest discover -s tools/tests -v
"""

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import select
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

SIMULATOR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "simulator.py")
DEVICES = {"dev-1": "secret-1", "dev-2": "secret-2", "gw-1": "gw-secret"}
C8Y_USER, C8Y_PASSWORD = "t100/alice", "pa:ss"
C8Y_COLLECTION = "application/vnd.com.nsn.cumulocity.measurementcollection+json"
C8Y_MEASUREMENT = "application/vnd.com.nsn.cumulocity.measurement+json"
EVENT_TIME = "2026-11-22T03:10:10.555Z"
LIMIT = 1_048_576


def hour_stamp(offset_hours=0):
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=offset_hours)
    return moment.strftime("%Y%m%d%H")


def sign(secret, stamp):
    return hmac.new(stamp.encode(), secret.encode(), hashlib.sha256).hexdigest()


class SimProcess:
    """The simulator as a child process; stop() sends SIGTERM to that one pid."""

    def __init__(self, *extra):
        self.stderr = tempfile.TemporaryFile()
        args = [sys.executable, SIMULATOR, "--port", "0"]
        for device, secret in DEVICES.items():
            args += ["--device", f"{device}={secret}"]
        args += ["--cumulocity-user", f"{C8Y_USER}:{C8Y_PASSWORD}"] + list(extra)
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
            self.stderr.close()

    def connection(self, timeout=10, context=None):
        if self.https:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=context or self.ssl_context())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.info["ca_file"])

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
        return json.loads(data) if data and data != b"ok" else data

    def raw_socket(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


class SimTestCase(unittest.TestCase):
    """One HTTP simulator for the whole class; state and config are reset before each test."""

    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = SimProcess(*cls.extra_args)

    @classmethod
    def tearDownClass(cls):
        code = cls.sim.stop()
        if code != 0:
            raise AssertionError(f"simulator exited with {code}")

    def setUp(self):
        self.sim.control("POST", "/_sim/reset", {"config": True, "tokens": True})

    # -- helpers ---------------------------------------------------------------------------------

    def auth(self, device="dev-1", secret=None, sign_type=0, stamp=None, password=None):
        stamp = stamp or hour_stamp()
        body = {"device_id": device, "sign_type": sign_type, "timestamp": stamp,
                "password": password or sign(secret or DEVICES.get(device, "x"), stamp)}
        status, _, data = self.sim.request("POST", "/v5/device-auth", body,
                                           {"Content-Type": "application/json"})
        return status, json.loads(data)

    def token(self, device="dev-1"):
        status, body = self.auth(device)
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def post_iotda(self, path, body, token, headers=None):
        all_headers = {"Content-Type": "application/json"}
        if token is not None:
            all_headers["access_token"] = token
        all_headers.update(headers or {})
        status, hdrs, data = self.sim.request("POST", path, body, all_headers)
        return status, (json.loads(data) if data else None)

    def report(self, token, services, device="dev-1"):
        return self.post_iotda(f"/v5/devices/{device}/sys/properties/report",
                               {"services": services}, token)

    def service(self, **props):
        return {"service_id": "Battery", "properties": props or {"level": 87},
                "event_time": EVENT_TIME}

    def accepted(self, since=None):
        path = "/_sim/accepted" + (f"?since={since}" if since is not None else "")
        return self.sim.control("GET", path)

    def fault(self, **spec):
        return self.sim.control("POST", "/_sim/faults", spec)

    def config(self, **changes):
        return self.sim.control("POST", "/_sim/config", changes)

    def c8y(self, body, content_type=C8Y_COLLECTION, accept="application/json",
            user=C8Y_USER, password=C8Y_PASSWORD):
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        if user is not None:
            creds = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {creds}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, _, answer = self.sim.request("POST", "/measurement/measurements", data, headers)
        return status, answer

    def measurement(self, **fragments):
        m = {"source": {"id": "4711"}, "type": "c8y_Temp", "time": EVENT_TIME}
        m.update(fragments or {"c8y_Temp": {"T": {"value": 21.5, "unit": "C"}}})
        return m


class AuthTests(SimTestCase):

    def test_hmac_auth_ok_both_sign_types(self):
        for sign_type in (0, 1):
            status, body = self.auth(sign_type=sign_type)
            self.assertEqual(status, 200, body)
            self.assertRegex(body["access_token"], r"^[0-9a-f]{64}$")
            self.assertEqual(body["expires_in"], 86399)

    def test_wrong_password_and_unknown_device_401(self):
        for kwargs in ({"password": "0" * 64}, {"device": "nobody"},
                       {"password": sign("secret-1", hour_stamp()).upper()}):
            status, body = self.auth(**kwargs)
            self.assertEqual(status, 401)
            self.assertEqual(body["error_code"], "IOTDA.000002")
        self.assertEqual(self.sim.control("GET", "/_sim/stats")["auths"], {"ok": 0, "failed": 3})

    def test_sign_type_1_checks_timestamp_sign_type_0_does_not(self):
        old = hour_stamp(-3)
        self.assertEqual(self.auth(sign_type=1, stamp=old)[0], 401)
        self.assertEqual(self.auth(sign_type=0, stamp=old)[0], 200)
        self.assertEqual(self.auth(sign_type=1, stamp=hour_stamp(-1))[0], 200)

    def test_malformed_auth_body_400(self):
        status, _, data = self.sim.request("POST", "/v5/device-auth", b"{nope")
        self.assertEqual((status, json.loads(data)["error_code"]), (400, "IOTDA.000006"))
        status, _ = self.auth(stamp="2026-11-22")
        self.assertEqual(status, 400)

    def test_token_required(self):
        self.assertEqual(self.report(None, [self.service()]),
                         (403, {"error_code": "IOTDA.000004",
                                "error_msg": "Invalid access token."}))
        self.assertEqual(self.report("f" * 64, [self.service()])[0], 403)
        other = self.token("dev-2")
        status, body = self.report(other, [self.service()])  # another device's token
        self.assertEqual((status, body["error_code"]), (403, "IOTDA.000004"))
        self.assertEqual(self.accepted()["records"], [])

    def test_token_expiry(self):
        self.config(token_lifetime=1)
        status, body = self.auth()
        self.assertEqual(body["expires_in"], 1)
        self.assertEqual(self.report(body["access_token"], [self.service()])[0], 200)
        time.sleep(1.2)
        status, body = self.report(body["access_token"], [self.service()])
        self.assertEqual((status, body["error_code"]), (403, "IOTDA.000004"))

    def test_reauth_keeps_old_token_for_grace_period(self):
        self.config(reauth_grace_seconds=0.5)
        old = self.token()
        new = self.token()
        self.assertNotEqual(old, new)
        self.assertEqual(self.report(old, [self.service()])[0], 200)
        time.sleep(0.7)
        self.assertEqual(self.report(old, [self.service()])[0], 403)
        self.assertEqual(self.report(new, [self.service()])[0], 200)

    def test_revoke_tokens(self):
        token = self.token()
        self.assertEqual(self.report(token, [self.service()])[0], 200)
        self.config(revoke_tokens=True)
        status, body = self.report(token, [self.service()])
        self.assertEqual((status, body["error_code"]), (403, "IOTDA.000004"))
        self.assertEqual(self.report(self.token(), [self.service()])[0], 200)

    def test_devices_added_at_runtime(self):
        self.assertEqual(self.auth("dev-9", secret="s9")[0], 401)
        self.config(devices={"dev-9": "s9"})
        self.assertEqual(self.auth("dev-9", secret="s9")[0], 200)


class IotdaDataTests(SimTestCase):

    def test_properties_accepted(self):
        token = self.token()
        status, body = self.report(token, [self.service(level=87),
                                           {"service_id": "Temp", "properties": {"t": 21.5},
                                            "event_time": "2026-11-22T03:10:11.000Z"}])
        self.assertEqual((status, body), (200, None))
        records = self.accepted()["records"]
        self.assertEqual(len(records), 2)
        first = records[0]
        self.assertEqual({k: first[k] for k in ("platform", "kind", "device_id", "service_id",
                                                "properties", "event_time",
                                                "event_time_replaced")},
                         {"platform": "iotda", "kind": "property", "device_id": "dev-1",
                          "service_id": "Battery", "properties": {"level": 87},
                          "event_time": EVENT_TIME, "event_time_replaced": False})
        self.assertEqual(records[1]["request"], first["request"])

    def test_message_accepted(self):
        token = self.token()
        body = {"name": "alarm", "id": "rec-42", "content": {"code": 7}}
        status, answer = self.post_iotda("/v5/devices/dev-1/sys/messages/up", body, token)
        self.assertEqual((status, answer), (200, None))
        record = self.accepted()["records"][0]
        self.assertEqual({k: record[k] for k in ("kind", "device_id", "name", "id", "content")},
                         {"kind": "message", "device_id": "dev-1", "name": "alarm",
                          "id": "rec-42", "content": {"code": 7}})

    def children_body(self, n, start=0):
        return {"devices": [{"device_id": f"child-{i}", "services": [self.service(t=i)]}
                            for i in range(start, start + n)]}

    def children_path(self, gateway="gw-1"):
        return f"/v5/devices/{gateway}/sys/gateway/sub-devices/properties/report"

    def test_children_accepted_with_gateway_token(self):
        token = self.token("gw-1")
        self.assertEqual(self.post_iotda(self.children_path(), self.children_body(50), token)[0],
                         200)
        records = self.accepted()["records"]
        self.assertEqual(len(records), 50)
        self.assertEqual({k: records[3][k] for k in ("kind", "gateway_id", "device_id",
                                                     "service_id", "properties", "event_time")},
                         {"kind": "child_property", "gateway_id": "gw-1",
                          "device_id": "child-3", "service_id": "Battery",
                          "properties": {"t": 3}, "event_time": EVENT_TIME})
        child_token = self.token("dev-1")  # a child's token is not the gateway's
        self.assertEqual(self.post_iotda(self.children_path(), self.children_body(1),
                                         child_token)[0], 403)

    def test_51_children_rejected(self):
        token = self.token("gw-1")
        status, body = self.post_iotda(self.children_path(), self.children_body(51), token)
        self.assertEqual((status, body["error_code"]), (403, "IOTDA.021103"))
        self.config(children_limit_status=400)
        status, body = self.post_iotda(self.children_path(), self.children_body(51), token)
        self.assertEqual((status, body["error_code"]), (400, "IOTDA.021103"))
        self.assertEqual(self.accepted()["records"], [])

    def test_missing_child_rejected(self):
        self.config(missing_children=["child-2"])
        token = self.token("gw-1")
        status, body = self.post_iotda(self.children_path(), self.children_body(4), token)
        self.assertEqual((status, body["error_code"], body["device_id"]),
                         (400, "IOTDA.021104", "child-2"))
        self.assertIn("child device child-2 ", body["error_msg"])
        self.assertEqual(self.accepted()["records"], [])

    def padded_properties(self, size):
        """A properties report of exactly `size` bytes."""
        def build(pad):
            return json.dumps({"services": [{"service_id": "Blob", "properties": {"pad": pad},
                                             "event_time": EVENT_TIME}]}).encode()
        overhead = len(build(""))
        body = build("x" * (size - overhead))
        self.assertEqual(len(body), size)
        return body

    def test_body_limit_iotda(self):
        token = self.token()
        path = "/v5/devices/dev-1/sys/properties/report"
        self.assertEqual(self.post_iotda(path, self.padded_properties(LIMIT), token)[0], 200)
        status, body = self.post_iotda(path, self.padded_properties(LIMIT + 1), token)
        self.assertEqual((status, body["error_code"]), (403, "IOTDA.021105"))
        self.assertEqual(len(self.accepted()["records"]), 1)
        self.assertEqual(self.sim.control("GET", "/_sim/stats")["max_body_bytes"], LIMIT + 1)

    def test_body_limit_counts_chunked_bytes(self):
        token = self.token()
        conn = self.sim.connection()
        body = self.padded_properties(LIMIT + 1)
        pieces = (body[i:i + 100_000] for i in range(0, len(body), 100_000))
        conn.request("POST", "/v5/devices/dev-1/sys/properties/report", body=pieces,
                     headers={"access_token": token}, encode_chunked=True)
        resp = conn.getresponse()
        self.assertEqual((resp.status, json.loads(resp.read())["error_code"]),
                         (403, "IOTDA.021105"))
        conn.close()

    def test_body_limit_cumulocity(self):
        def build(pad):
            return json.dumps({"measurements": [self.measurement(pad={"v": pad})]}).encode()
        overhead = len(build(""))
        self.assertEqual(self.c8y(build("x" * (LIMIT - overhead)))[0], 201)
        status, answer = self.c8y(build("x" * (LIMIT + 1 - overhead)))
        self.assertEqual(status, 413, answer)
        self.assertEqual(len(self.accepted()["records"]), 1)

    def test_event_time_replaced_flag(self):
        token = self.token()
        services = [self.service(a=1),
                    {"service_id": "S2", "properties": {"b": 2}},
                    {"service_id": "S3", "properties": {"c": 3}, "event_time": "20261122T031010Z"},
                    {"service_id": "S4", "properties": {"d": 4},
                     "event_time": "2026-13-45T03:10:10.555Z"}]
        self.assertEqual(self.report(token, services)[0], 200)
        records = self.accepted()["records"]
        self.assertEqual([r["event_time_replaced"] for r in records], [False, True, True, True])
        for record in records[1:]:
            self.assertRegex(record["event_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertNotEqual(record["event_time"], EVENT_TIME)

    def test_strict_event_time(self):
        self.config(strict_event_time=True)
        token = self.token()
        status, body = self.report(token, [self.service(), {"service_id": "S2",
                                                            "properties": {"b": 2}}])
        self.assertEqual((status, body["error_code"]), (400, "IOTDA.000006"))
        self.assertEqual(self.report(token, [self.service()])[0], 200)
        self.assertEqual(len(self.accepted()["records"]), 1)

    def test_poison_rejects_whole_request(self):
        token = self.token()
        status, body = self.report(token, [self.service(a=1), self.service(poison=True)])
        self.assertEqual((status, body["error_code"]), (400, "IOTDA.000006"))
        status, body = self.post_iotda("/v5/devices/dev-1/sys/messages/up",
                                       {"name": "m", "id": "1", "content": {"poison": 1}}, token)
        self.assertEqual((status, body["error_code"]), (400, "IOTDA.000006"))
        gw = self.token("gw-1")
        children = self.children_body(3)
        children["devices"][1]["services"][0]["properties"]["poison"] = 1
        status, body = self.post_iotda(self.children_path(), children, gw)
        self.assertEqual((status, body["error_code"]), (400, "IOTDA.000006"))
        status, answer = self.c8y({"measurements": [self.measurement(),
                                                    self.measurement(poison={"x": 1})]})
        self.assertEqual((status, json.loads(answer)["error"]), (422, "measurement/Invalid Data"))
        self.assertEqual(self.accepted()["records"], [])

    def test_malformed_json_400(self):
        token = self.token()
        status, _, data = self.sim.request("POST", "/v5/devices/dev-1/sys/properties/report",
                                           b'{"services": [', {"access_token": token})
        self.assertEqual((status, json.loads(data)["error_code"]), (400, "IOTDA.000006"))

    def test_rate_limit(self):
        self.config(rate_limit_per_second=3)
        token = self.token()
        results = [self.report(token, [self.service()]) for _ in range(5)]
        self.assertEqual([s for s, _ in results], [200, 200, 200, 403, 403])
        self.assertEqual(results[3][1]["error_code"], "IOTDA.021101")
        time.sleep(1.05)
        self.assertEqual(self.report(token, [self.service()])[0], 200)

    def test_accepted_since(self):
        token = self.token()
        for level in range(3):
            self.report(token, [self.service(level=level)])
        page = self.accepted(since=1)
        self.assertEqual([r["properties"]["level"] for r in page["records"]], [1, 2])
        self.assertEqual(page["next"], 3)
        self.assertEqual(self.accepted(since=3), {"records": [], "next": 3})


class CumulocityTests(SimTestCase):

    def test_collection_accepted_and_echoed(self):
        status, answer = self.c8y({"measurements": [self.measurement(), self.measurement()]})
        self.assertEqual(status, 201)
        echoed = json.loads(answer)["measurements"]
        self.assertEqual(len(echoed), 2)
        self.assertTrue(all("id" in m for m in echoed))
        record = self.accepted()["records"][0]
        self.assertEqual({k: record[k] for k in ("platform", "kind", "source", "type", "time",
                                                 "fragments")},
                         {"platform": "cumulocity", "kind": "measurement", "source": "4711",
                          "type": "c8y_Temp", "time": EVENT_TIME,
                          "fragments": {"c8y_Temp": {"T": {"value": 21.5, "unit": "C"}}}})

    def test_single_measurement(self):
        status, answer = self.c8y(self.measurement(), content_type=C8Y_MEASUREMENT)
        self.assertEqual(status, 201)
        self.assertEqual(json.loads(answer)["source"], {"id": "4711"})

    def test_basic_auth_required(self):
        for user, password in ((C8Y_USER, "wrong"), (None, None), ("t100/bob", C8Y_PASSWORD)):
            status, answer = self.c8y({"measurements": [self.measurement()]},
                                      user=user, password=password)
            self.assertEqual((status, json.loads(answer)["error"]),
                             (401, "security/Unauthorized"))
        self.assertEqual(self.accepted()["records"], [])

    def test_no_accept_header_gives_empty_body_but_accepts(self):
        status, answer = self.c8y({"measurements": [self.measurement()]}, accept=None)
        self.assertEqual((status, answer), (200, b""))
        self.assertEqual(len(self.accepted()["records"]), 1)

    def test_invalid_measurement_422(self):
        bad = self.measurement()
        del bad["time"]
        self.assertEqual(self.c8y({"measurements": [bad]})[0], 422)
        self.assertEqual(self.c8y(b"{not json")[0], 422)


class FaultTests(SimTestCase):
    PATH = "/v5/devices/dev-1/sys/properties/report"

    def setUp(self):
        super().setUp()
        self.tok = self.token()

    def send(self, timeout=10, conn=None):
        own = conn is None
        conn = conn or self.sim.connection(timeout)
        try:
            conn.request("POST", self.PATH, body=json.dumps({"services": [self.service()]}),
                         headers={"access_token": self.tok, "Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            if own:
                conn.close()

    def records(self):
        return self.accepted()["records"]

    def test_respond_with_retry_after_then_normal(self):
        self.fault(count=2, status=503, error_code="IOTDA.000010", error_msg="busy",
                   retry_after=7)
        for _ in range(2):
            status, headers, body = self.send()
            self.assertEqual((status, headers["Retry-After"]), (503, "7"))
            self.assertEqual(json.loads(body), {"error_code": "IOTDA.000010", "error_msg": "busy"})
        self.assertEqual(self.records(), [])
        self.assertEqual(self.send()[0], 200)
        self.assertEqual(len(self.records()), 1)
        log = self.sim.control("GET", "/_sim/requests")["requests"]
        self.assertEqual([e["fault"]["action"] if e["fault"] else None for e in log[-3:]],
                         ["respond", "respond", None])

    def test_fault_path_filter_and_order(self):
        self.fault(path="/messages/up$", status=500)
        self.fault(status=502)
        self.assertEqual(self.send()[0], 502)  # the first fault does not match this path
        status, _ = self.post_iotda("/v5/devices/dev-1/sys/messages/up",
                                    {"name": "m", "id": "1", "content": {}}, self.tok)
        self.assertEqual(status, 500)
        self.assertEqual(self.sim.control("GET", "/_sim/faults")["faults"], [])

    def test_control_requests_are_not_faulted(self):
        self.fault(status=500)
        self.assertEqual(self.sim.request("GET", "/health")[2], b"ok")
        self.assertEqual(self.sim.control("GET", "/_sim/stats")["requests"], 1)  # the token
        self.assertEqual(self.send()[0], 500)

    def test_close(self):
        self.fault(action="close")
        with self.assertRaises(http.client.RemoteDisconnected):
            self.send()
        self.assertEqual(self.records(), [])
        self.assertEqual(self.send()[0], 200)

    def test_reset(self):
        self.fault(action="reset")
        with self.assertRaises(ConnectionResetError):
            self.send()
        self.assertEqual(self.records(), [])

    def test_truncate(self):
        self.fault(action="truncate", status=200)
        with self.assertRaises(http.client.IncompleteRead):
            self.send()
        self.assertEqual(self.records(), [])

    def test_garbage(self):
        self.fault(action="garbage")
        status, headers, body = self.send()
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        with self.assertRaises(ValueError):
            json.loads(body)
        self.assertEqual(self.records(), [])

    def test_huge(self):
        self.fault(action="huge", size=100_000, accept=True)
        status, headers, body = self.send()
        self.assertEqual(status, 200)
        self.assertEqual(len(body), 100_000)
        self.assertEqual(len(json.loads(body)["padding"]), 100_000 - len('{"padding":""}'))
        self.assertEqual(len(self.records()), 1)  # accepted, then the huge answer

    def test_delay(self):
        self.fault(delay=0.4, status=504)
        started = time.monotonic()
        self.assertEqual(self.send()[0], 504)
        self.assertGreaterEqual(time.monotonic() - started, 0.38)

    def test_pass_with_delay_accepts(self):
        self.fault(action="pass", delay=0.3)
        started = time.monotonic()
        self.assertEqual(self.send()[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.28)
        self.assertEqual(len(self.records()), 1)
        # The request log's times: read at started_s, answered at finished_s, delay between.
        entry = self.sim.control("GET", "/_sim/requests")["requests"][-1]
        self.assertGreaterEqual(entry["started_s"], 0)
        self.assertGreaterEqual(entry["finished_s"] - entry["started_s"], 0.29)
        self.assertAlmostEqual(entry["finished_s"] - entry["started_s"],
                               entry["duration_ms"] / 1000, delta=0.01)

    def test_hang(self):
        self.fault(action="hang")
        started = time.monotonic()
        with self.assertRaises(TimeoutError):
            self.send(timeout=0.5)
        self.assertLess(time.monotonic() - started, 3)
        self.assertEqual(self.records(), [])
        log = self.sim.control("GET", "/_sim/requests")["requests"]
        self.assertEqual(log[-1]["fault"]["action"], "hang")
        self.assertEqual(self.send()[0], 200)

    def test_slow_drip(self):
        self.fault(action="slow_drip", status=200)
        body = json.dumps({"services": [self.service()]}).encode()
        with self.sim.raw_socket(timeout=5) as sock:
            sock.sendall(f"POST {self.PATH} HTTP/1.1\r\nHost: x\r\naccess_token: {self.tok}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            first = sock.recv(100)
            started = time.monotonic()
            second = sock.recv(100)
            elapsed = time.monotonic() - started
        self.assertEqual((first, second), (b"H", b"T"))
        self.assertGreater(elapsed, 0.8)

    def test_accept_then_close_makes_duplicates(self):
        self.fault(action="close", accept=True)
        with self.assertRaises(http.client.RemoteDisconnected):
            self.send()
        self.assertEqual(len(self.records()), 1)
        self.assertEqual(self.send()[0], 200)  # the client resends: a duplicate
        records = self.records()
        self.assertEqual(len(records), 2)
        self.assertEqual(records[0]["properties"], records[1]["properties"])

    def test_accept_then_respond(self):
        self.fault(accept=True, status=502)
        self.assertEqual(self.send()[0], 502)
        self.assertEqual(len(self.records()), 1)

    def test_bad_fault_spec_rejected(self):
        status, _, data = self.sim.request("POST", "/_sim/faults", {"action": "explode"})
        self.assertEqual(status, 400)
        self.assertIn("action", json.loads(data)["error"])


class ServerTests(SimTestCase):

    def test_health(self):
        status, _, body = self.sim.request("GET", "/health")
        self.assertEqual((status, body), (200, b"ok"))

    def test_keep_alive_over_one_connection(self):
        token = self.token()
        conn = self.sim.connection()
        for level in range(5):
            conn.request("POST", "/v5/devices/dev-1/sys/properties/report",
                         body=json.dumps({"services": [self.service(level=level)]}),
                         headers={"access_token": token})
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, b""))
        conn.close()
        log = self.sim.control("GET", "/_sim/requests")["requests"][-5:]
        self.assertEqual(len({e["connection"] for e in log}), 1)
        self.assertEqual(len(self.accepted()["records"]), 5)

    def test_expect_100_continue(self):
        token = self.token()
        body = json.dumps({"services": [self.service()]}).encode()
        with self.sim.raw_socket() as sock:
            sock.sendall(f"POST /v5/devices/dev-1/sys/properties/report HTTP/1.1\r\nHost: x\r\n"
                         f"access_token: {token}\r\nExpect: 100-continue\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode())
            self.assertTrue(sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n"))
            sock.sendall(body)
            self.assertTrue(sock.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n"))

    def test_request_log_never_holds_secrets(self):
        token = self.token()
        self.report(token, [self.service()])
        self.c8y_request()
        raw = json.dumps(self.sim.control("GET", "/_sim/requests"))
        for secret in (token, C8Y_PASSWORD, "secret-1"):
            self.assertNotIn(secret, raw)
        log = json.loads(raw)["requests"]
        self.assertEqual([(e["path"], e["status"], e["had_access_token"], e["had_authorization"])
                          for e in log],
                         [("/v5/device-auth", 200, False, False),
                          ("/v5/devices/dev-1/sys/properties/report", 200, True, False),
                          ("/measurement/measurements", 201, False, True)])
        self.assertTrue(all(e["body_bytes"] > 0 and e["duration_ms"] >= 0 for e in log))

    def c8y_request(self):
        creds = base64.b64encode(f"{C8Y_USER}:{C8Y_PASSWORD}".encode()).decode()
        return self.sim.request("POST", "/measurement/measurements",
                                {"measurements": [{"source": {"id": "1"}, "type": "t",
                                                   "time": EVENT_TIME}]},
                                {"Authorization": f"Basic {creds}",
                                 "Content-Type": C8Y_COLLECTION, "Accept": "application/json"})

    def test_stats(self):
        self.token()
        self.auth(password="0" * 64)
        self.c8y_request()
        stats = self.sim.control("GET", "/_sim/stats")
        self.assertEqual(stats["requests"], 3)
        self.assertEqual(stats["statuses"], {"200": 1, "401": 1, "201": 1})
        self.assertEqual(stats["auths"], {"ok": 1, "failed": 1})
        self.assertEqual(stats["accepted"], {"measurement": 1, "total": 1})

    def test_unknown_path_and_method(self):
        self.assertEqual(self.sim.request("GET", "/v5/nothing")[0], 404)
        self.assertEqual(self.sim.request("GET", "/v5/device-auth")[0], 405)
        self.assertEqual(self.sim.request("POST", "/_sim/config", {"bogus": 1})[0], 400)

    def test_config_change_is_all_or_nothing(self):
        status, _, _ = self.sim.request("POST", "/_sim/config",
                                        {"strict_event_time": True, "max_children": 0})
        self.assertEqual(status, 400)
        config = self.sim.control("GET", "/_sim/config")
        self.assertEqual((config["strict_event_time"], config["max_children"]), (False, 50))
        self.assertNotIn("secret-1", json.dumps(config))

    def test_reset_clears_records_log_and_faults(self):
        self.report(self.token(), [self.service()])
        self.fault(status=500, count=3)
        self.assertEqual(self.sim.control("GET", "/_sim/faults")["faults"][0]["remaining"], 3)
        self.sim.control("POST", "/_sim/reset")
        self.assertEqual(self.accepted(), {"records": [], "next": 0})
        self.assertEqual(self.sim.control("GET", "/_sim/requests"), {"requests": []})
        self.assertEqual(self.sim.control("GET", "/_sim/faults"), {"faults": []})
        self.fault(status=500)
        self.sim.control("DELETE", "/_sim/faults")
        self.assertEqual(self.sim.request("GET", "/v5/nothing")[0], 404)

    def test_concurrent_clients_while_one_hangs(self):
        self.fault(action="hang", path="/messages/up")
        hanging = self.sim.connection(timeout=5)
        hanging.request("POST", "/v5/devices/dev-1/sys/messages/up", body=b"{}")
        token = self.token()  # served while the other connection hangs
        self.assertEqual(self.report(token, [self.service()])[0], 200)
        hanging.close()


class KeepCountTests(SimTestCase):
    extra_args = ("--keep", "count")

    def test_counts_only(self):
        token = self.token()
        self.report(token, [self.service(), self.service()])
        self.assertEqual(self.accepted(), {"count": 2, "by_kind": {"property": 2}})


class HttpsTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.state_dir = tempfile.TemporaryDirectory()
        cls.ready_file = os.path.join(cls.state_dir.name, "ready.json")
        cls.sim = SimProcess("--https", "--state-dir", cls.state_dir.name,
                             "--ready-file", cls.ready_file)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        cls.state_dir.cleanup()

    def test_ready_line_and_file(self):
        info = self.sim.info
        self.assertEqual(info["url"], f"https://127.0.0.1:{info['port']}")
        self.assertEqual(info["pid"], self.sim.proc.pid)
        self.assertEqual(info["ca_file"], os.path.join(self.state_dir.name, "ca.crt"))
        with open(self.ready_file) as f:
            self.assertEqual(json.loads(f.read()), info)

    def test_keys_are_private(self):
        for name in ("ca.key", "server.key"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.state_dir.name, name)).st_mode)
            self.assertEqual(mode, 0o600, name)

    def test_verifies_with_generated_ca(self):
        context = ssl.create_default_context(cafile=self.sim.info["ca_file"])
        for host in ("127.0.0.1", "localhost"):
            url = f"https://{host}:{self.sim.port}/health"
            with urllib.request.urlopen(url, context=context, timeout=10) as resp:
                self.assertEqual(resp.read(), b"ok")

    def test_fails_without_ca(self):
        with self.assertRaises(urllib.error.URLError) as caught:
            urllib.request.urlopen(f"https://127.0.0.1:{self.sim.port}/health",
                                   context=ssl.create_default_context(), timeout=10)
        self.assertIsInstance(caught.exception.reason, ssl.SSLCertVerificationError)

    def test_auth_and_report_over_tls_keep_alive(self):
        stamp = hour_stamp()
        conn = self.sim.connection()
        conn.request("POST", "/v5/device-auth", body=json.dumps(
            {"device_id": "dev-1", "sign_type": 1, "timestamp": stamp,
             "password": sign("secret-1", stamp)}))
        resp = conn.getresponse()
        token = json.loads(resp.read())["access_token"]
        for _ in range(3):
            conn.request("POST", "/v5/devices/dev-1/sys/properties/report",
                         body=json.dumps({"services": [{"service_id": "B",
                                                        "properties": {"x": 1},
                                                        "event_time": EVENT_TIME}]}),
                         headers={"access_token": token})
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, b""))
        conn.close()
        self.assertEqual(len(self.sim.control("GET", "/_sim/accepted")["records"]), 3)

    def test_tls_faults_reset_and_truncate(self):
        self.sim.control("POST", "/_sim/faults", [{"action": "reset"}, {"action": "truncate"}])
        for _ in range(2):
            with self.assertRaises((ConnectionResetError, http.client.IncompleteRead,
                                    ssl.SSLError)):
                self.sim.request("POST", "/v5/device-auth", b"{}")


class ExtensionPointTests(unittest.TestCase):
    """A later endpoint (e.g. Bayeux) plugs in through EXTRA_ROUTE_INSTALLERS."""

    def test_installed_route_is_served_logged_and_faultable(self):
        import threading
        sys.path.insert(0, os.path.dirname(SIMULATOR))
        try:
            import simulator
        finally:
            sys.path.pop(0)

        def install(router, sim):
            router.add("POST", r"/notification/realtime",
                       lambda sim, req: simulator.Response.json(200, [{"successful": True}]))

        simulator.EXTRA_ROUTE_INSTALLERS.append(install)
        try:
            sim = simulator.Simulator(simulator.default_config(), {}, {})
            server = simulator.SimServer(("127.0.0.1", 0), sim)
        finally:
            simulator.EXTRA_ROUTE_INSTALLERS.remove(install)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            def post():
                conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1],
                                                  timeout=5)
                conn.request("POST", "/notification/realtime", body=b"[]")
                resp = conn.getresponse()
                result = resp.status, resp.read()
                conn.close()
                return result
            self.assertEqual(post(), (200, b'[{"successful":true}]'))
            sim.add_faults([{"path": "^/notification/", "status": 500}])
            self.assertEqual(post()[0], 500)
            self.assertEqual([e["status"] for e in sim.requests_view(0)["requests"]], [200, 500])
        finally:
            sim.stopping.set()
            server.shutdown()
            server.server_close()


class LifecycleTests(unittest.TestCase):

    def test_sigterm_exits_cleanly_and_removes_temp_certs(self):
        sim = SimProcess("--https")
        ca_dir = os.path.dirname(sim.info["ca_file"])
        self.assertTrue(os.path.exists(sim.info["ca_file"]))
        hanging = sim.connection(timeout=5)  # a hanging request must not block the exit
        sim.control("POST", "/_sim/faults", {"action": "hang"})
        hanging.request("POST", "/v5/device-auth", body=b"{}")
        # The premise: the simulator holds that request, unanswered, when SIGTERM comes.
        deadline = time.monotonic() + 10
        held = []
        while not held and time.monotonic() < deadline:
            held = [e for e in sim.control("GET", "/_sim/requests")["requests"]
                    if e["path"] == "/v5/device-auth" and not e["done"]
                    and (e["fault"] or {}).get("action") == "hang"]
            if not held:
                time.sleep(0.05)
        self.assertEqual(len(held), 1, "the hanging request reached the simulator before SIGTERM")
        started = time.monotonic()
        self.assertEqual(sim.stop(), 0)
        self.assertLess(time.monotonic() - started, 5)
        self.assertFalse(os.path.exists(ca_dir))
        # It was never answered: the exit closed it.
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            hanging.getresponse()
        hanging.close()

    def test_sigint_exits_cleanly(self):
        sim = SimProcess()
        sim.proc.send_signal(signal.SIGINT)
        self.assertEqual(sim.proc.wait(timeout=10), 0)
        sim.stop()


if __name__ == "__main__":
    unittest.main()
