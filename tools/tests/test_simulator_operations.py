"""Tests for the simulator's device control REST (tools/simulator_bayeux.py): the operation
store, its transition table, PUT /devicecontrol/operations/{id} and the paged GET.

Run from the repository root:
    python3 -m unittest discover -s tools/tests -v
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import simulator_bayeux  # noqa: E402
from test_simulator_bayeux import Sim, basic  # noqa: E402


class TransitionTableTests(unittest.TestCase):
    """The table alone, every pair."""

    def test_every_pair(self):
        statuses = ("PENDING", "EXECUTING", "SUCCESSFUL", "FAILED")
        allowed = {("PENDING", "EXECUTING"): "change", ("PENDING", "SUCCESSFUL"): "change",
                   ("PENDING", "FAILED"): "change", ("EXECUTING", "EXECUTING"): "repeat",
                   ("EXECUTING", "SUCCESSFUL"): "change", ("EXECUTING", "FAILED"): "change",
                   ("SUCCESSFUL", "SUCCESSFUL"): "repeat", ("FAILED", "FAILED"): "repeat"}
        for current in statuses:
            for wanted in statuses:
                with self.subTest(current=current, wanted=wanted):
                    self.assertEqual(simulator_bayeux.operation_transition(current, wanted),
                                     allowed.get((current, wanted)))

    def test_unknown_statuses_are_refused(self):
        self.assertIsNone(simulator_bayeux.operation_transition("PENDING", "DONE"))
        self.assertIsNone(simulator_bayeux.operation_transition("WEIRD", "EXECUTING"))


class DeviceControlTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        code = cls.sim.stop()
        if code != 0 or "Traceback" in cls.sim.errors:
            raise AssertionError(f"simulator exited with {code}: {cls.sim.errors}")

    def setUp(self):
        self.sim.control("POST", "/_sim/bayeux/reset", {"config": True})

    def create(self, device="4711", publish=True, **extra):
        body = {"deviceId": device, "fragments": {"c8y_Restart": {}}, **extra}
        if not publish:
            body["publish"] = False
        return self.sim.control("POST", "/_sim/bayeux/operation", body)["operation"]

    def put(self, op_id, body, auth=True):
        headers = {"Content-Type": "application/vnd.com.nsn.cumulocity.operation+json",
                   "Accept": "application/json"}
        if auth:
            headers["Authorization"] = basic()
        status, _, data = self.sim.request("PUT", f"/devicecontrol/operations/{op_id}",
                                           body, headers)
        return status, json.loads(data) if data else None

    def get(self, query):
        status, _, data = self.sim.request("GET", f"/devicecontrol/operations?{query}", None,
                                           {"Authorization": basic(),
                                            "Accept": "application/json"})
        self.assertEqual(status, 200, data)
        return json.loads(data)

    def state(self):
        return self.sim.control("GET", "/_sim/bayeux/operations")

    def test_pending_executing_successful_with_fragments(self):
        op = self.create()
        self.assertEqual(self.put(op["id"], {"status": "EXECUTING"})[0], 200)
        status, answer = self.put(op["id"], {"status": "SUCCESSFUL",
                                             "c8y_Result": {"uptime": 5}})
        self.assertEqual((status, answer["status"], answer["c8y_Result"]),
                         (200, "SUCCESSFUL", {"uptime": 5}))
        state = self.state()
        self.assertEqual([(t["from"], t["to"], t["repeat"]) for t in state["transitions"]],
                         [("PENDING", "EXECUTING", False), ("EXECUTING", "SUCCESSFUL", False)])
        self.assertEqual(state["refused"], [])
        self.assertEqual(state["operations"][0]["status"], "SUCCESSFUL")

    def test_illegal_transitions_are_refused_with_422_and_recorded(self):
        op = self.create()
        self.assertEqual(self.put(op["id"], {"status": "FAILED", "failureReason": "no"})[0], 200)
        status, answer = self.put(op["id"], {"status": "EXECUTING"})
        self.assertEqual((status, answer["error"]), (422, "devicecontrol/Invalid Data"))
        self.assertIn("FAILED to EXECUTING", answer["message"])
        self.assertEqual(self.put(op["id"], {"status": "SUCCESSFUL"})[0], 422)
        self.assertEqual(self.put(op["id"], {"status": "PENDING"})[0], 422)
        state = self.state()
        self.assertEqual([(r["from"], r["to"]) for r in state["refused"]],
                         [("FAILED", "EXECUTING"), ("FAILED", "SUCCESSFUL"), ("FAILED", "PENDING")])
        self.assertEqual(state["operations"][0]["status"], "FAILED")
        self.assertEqual(state["operations"][0]["failureReason"], "no")

    def test_a_repeat_is_accepted_and_changes_nothing(self):
        op = self.create()
        self.put(op["id"], {"status": "SUCCESSFUL"})
        before = self.state()["operations"][0]
        self.assertEqual(self.put(op["id"], {"status": "SUCCESSFUL"})[0], 200)
        state = self.state()
        self.assertEqual(state["operations"][0], before)
        self.assertEqual([t["repeat"] for t in state["transitions"]], [False, True])

    def test_unknown_operation_bad_body_and_credentials(self):
        self.assertEqual(self.put("999999", {"status": "EXECUTING"})[0], 404)
        op = self.create()
        self.assertEqual(self.put(op["id"], {"status": "DONE"})[0], 422)
        self.assertEqual(self.put(op["id"], {"status": "EXECUTING", "id": "1"})[0], 422)
        self.assertEqual(self.put(op["id"], {"status": "EXECUTING"}, auth=False)[0], 401)
        self.assertEqual(self.state()["operations"][0]["status"], "PENDING")

    def test_a_status_change_publishes_an_update(self):
        op = self.create()
        self.sim.control("POST", "/_sim/bayeux/config", {"publish_operation_updates": True})
        before = self.sim.control("GET", "/_sim/bayeux/stats")["published"]
        self.put(op["id"], {"status": "EXECUTING"})
        self.put(op["id"], {"status": "EXECUTING"})  # a repeat publishes nothing
        self.assertEqual(self.sim.control("GET", "/_sim/bayeux/stats")["published"], before + 1)

    def test_paged_query_by_device_and_status(self):
        ids = [self.create(publish=(i % 2 == 0))["id"] for i in range(7)]
        self.create(device="other")
        self.put(ids[0], {"status": "EXECUTING"})
        page1 = self.get("deviceId=4711&status=PENDING&pageSize=3&currentPage=1")
        self.assertEqual([o["id"] for o in page1["operations"]], ids[1:4])
        self.assertIn("currentPage=2", page1["next"])
        page2 = self.get("deviceId=4711&status=PENDING&pageSize=3&currentPage=2")
        self.assertEqual([o["id"] for o in page2["operations"]], ids[4:7])
        page3 = self.get("deviceId=4711&status=PENDING&pageSize=3&currentPage=3")
        self.assertEqual((page3["operations"], "next" in page3), ([], False))
        executing = self.get("deviceId=4711&status=EXECUTING")
        self.assertEqual([o["id"] for o in executing["operations"]], [ids[0]])
        self.assertEqual(executing["statistics"], {"currentPage": 1, "pageSize": 5})

    def test_an_operation_created_unpublished_reaches_no_session(self):
        before = self.sim.control("GET", "/_sim/bayeux/stats")["published"]
        op = self.create(publish=False)
        self.assertEqual(op["status"], "PENDING")
        self.assertEqual(self.sim.control("GET", "/_sim/bayeux/stats")["published"], before)


if __name__ == "__main__":
    unittest.main()
