"""Unit tests of the workload path's pure parts: the endpoint's plan document (with its layout),
where the socket is looked for, what the client does when no agent listens, and create_groups
using the plan's own layout (against the recording stand-in for torch.distributed of
torch_groups_test). No agent, no torch."""

import json
import os
import shutil
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "client", "python"))
sys.path.insert(0, HERE)

import splitd_groups  # noqa: E402
from splitd_groups import PlanError  # noqa: E402
from plan_test import plan_doc  # noqa: E402
from torch_groups_test import WORLD4, create, docs_for, fake_dist  # noqa: E402

LAYOUT4 = [{"kind": "tp", "backend": "cpu:gloo", "groups": [[0, 1], [2, 3]]},
           {"kind": "dp", "backend": "cpu:gloo", "groups": [[0, 2], [1, 3]]}]


def endpoint_doc(rank, socket="/nowhere/splitd.sock", layout=LAYOUT4):
    doc = docs_for(WORLD4, 4)[rank]
    doc.update(socket=socket, readiness="workload", preflight=False, layout=layout)
    return doc


class EndpointDocumentTest(unittest.TestCase):
    def test_parses_socket_readiness_preflight_and_layout(self):
        plan = splitd_groups.parse(endpoint_doc(1))
        self.assertEqual((plan.socket, plan.readiness, plan.preflight),
                         ("/nowhere/splitd.sock", "workload", False))
        self.assertEqual(plan.layout.kinds, ("tp", "dp"))
        self.assertEqual(dict(plan.layout.groups), {"tp": ((0, 1), (2, 3)),
                                                    "dp": ((0, 2), (1, 3))})
        self.assertEqual(dict(plan.layout.backends), {"tp": "cpu:gloo", "dp": "cpu:gloo"})
        self.assertEqual((plan.layout.epoch, plan.layout.world_size), (plan.epoch, 4))

    def test_a_plan_file_without_the_new_fields_parses_as_before(self):
        plan = splitd_groups.parse(plan_doc(0, layout=WORLD4, world=4))
        self.assertEqual((plan.socket, plan.readiness, plan.preflight, plan.layout),
                         (None, None, None, None))

    def test_a_layout_that_contradicts_the_plans_groups_is_refused(self):
        layout = [dict(LAYOUT4[0], groups=[[0, 2], [1, 3]]), LAYOUT4[1]]
        with self.assertRaisesRegex(PlanError, r"layout: kind tp: the plan file's group 0 "
                                               r"\[0, 1\] differs"):
            splitd_groups.parse(endpoint_doc(0, layout=layout))

    def test_malformed_layouts_are_refused_naming_the_field(self):
        cases = [
            ({"kind": "tp", "backend": "cpu:gloo", "groups": [[0, 4]]}, r"layout\[0\]\.groups"),
            ({"kind": "tp", "backend": "gloo", "groups": [[0, 1]]}, r"layout\[0\]\.backend"),
            ({"backend": "cpu:gloo", "groups": [[0, 1]]}, r"layout\[0\]: missing field"),
            ({"kind": "tp", "backend": "cpu:gloo", "groups": [[0, 1], [1, 2]]},
             "rank 1 is in groups 0 and 1"),
        ]
        for entry, pattern in cases:
            with self.assertRaisesRegex(PlanError, pattern):
                splitd_groups.parse(endpoint_doc(0, layout=[entry]))
        with self.assertRaisesRegex(PlanError, "kind tp appears twice"):
            splitd_groups.parse(endpoint_doc(0, layout=[LAYOUT4[0], LAYOUT4[0]]))
        with self.assertRaisesRegex(PlanError, 'field "preflight" must be bool'):
            splitd_groups.parse(dict(endpoint_doc(0), preflight="no"))


class SocketResolutionTest(unittest.TestCase):
    def setUp(self):
        patcher = mock.patch.dict(os.environ, {}, clear=False)
        patcher.start()
        self.addCleanup(patcher.stop)
        os.environ.pop("SPLITD_SOCKET", None)
        self.dir = tempfile.mkdtemp(prefix="splitd-sock-")
        self.addCleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))

    def test_explicit_then_environment_then_plan_then_beside_the_plan_file(self):
        plan_file = os.path.join(self.dir, "plan.json")
        with open(plan_file, "w") as f:
            json.dump(plan_doc(0, layout=WORLD4, world=4), f)
        plain = splitd_groups.load(plan_file)
        named = splitd_groups.parse(endpoint_doc(0, socket="/run/a.sock"))
        resolve = splitd_groups.resolve_socket
        self.assertEqual(resolve(plan=plain), os.path.join(self.dir, "plan.sock"))
        self.assertEqual(resolve(plan=named), "/run/a.sock")
        os.environ["SPLITD_SOCKET"] = "/run/env.sock"
        self.assertEqual(resolve(plan=named), "/run/env.sock")
        self.assertEqual(resolve("/run/explicit.sock", plan=named), "/run/explicit.sock")

    def test_a_plan_file_that_names_its_socket_is_read_for_it(self):
        plan_file = os.path.join(self.dir, "plan.json")
        self.assertEqual(splitd_groups.resolve_socket(plan_file=plan_file),
                         os.path.join(self.dir, "plan.sock"))  # not written yet
        with open(plan_file, "w") as f:
            json.dump(endpoint_doc(0, socket="/run/agent-0.sock"), f)
        self.assertEqual(splitd_groups.resolve_socket(plan_file=plan_file), "/run/agent-0.sock")

    def test_nothing_to_go_by_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "SPLITD_SOCKET"):
            splitd_groups.resolve_socket()


class NoAgentTest(unittest.TestCase):
    """What the client does when nobody listens on the socket."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="splitd-noagent-")
        self.addCleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.socket = os.path.join(self.dir, "splitd.sock")

    def test_requests_raise_unavailable_a_connection_error(self):
        client = splitd_groups.Client(self.socket)
        with self.assertRaises(ConnectionError) as caught:
            client.store_set(1, "k", b"v")
        self.assertIsInstance(caught.exception, splitd_groups.UnavailableError)
        self.assertEqual(caught.exception.code, "UNAVAILABLE")
        self.assertIn(self.socket, str(caught.exception))

    def test_plan_from_agent_waits_for_the_agent_then_times_out_naming_what_it_saw(self):
        with self.assertRaisesRegex(TimeoutError, "no READY plan of any epoch within 0.3 s "
                                                  r"\(last seen: cannot connect"):
            splitd_groups.plan_from_agent(socket=self.socket, timeout=0.3)

    def test_a_failed_report_is_logged_never_raised(self):
        plan = splitd_groups.parse(endpoint_doc(0, socket=self.socket))
        reporter = splitd_groups.Reporter(plan)
        with self.assertLogs("splitd_groups", "WARNING") as logs:
            self.assertFalse(reporter.report("FAILED", error="x" * 10000))
        self.assertIsInstance(reporter.last_error, splitd_groups.UnavailableError)
        self.assertIn("reporting FAILED to the agent failed", logs.output[0])


class CreateGroupsFromTheEndpointPlanTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="splitd-cg-")
        self.addCleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.socket = os.path.join(self.dir, "splitd.sock")  # nobody listens

    def test_the_plans_layout_replaces_the_gather(self):
        docs = [endpoint_doc(r, socket=self.socket) for r in range(4)]
        dist = fake_dist(2, docs, split=False)
        dist.all_gather_object = None  # must not be called
        with self.assertLogs("splitd_groups", "WARNING"):  # the reports find no agent
            groups = create(dist, docs[2], validate=False)
        self.assertEqual(dist.calls, [("new_group", [0, 1], "cpu:gloo"),
                                      ("new_group", [2, 3], "cpu:gloo"),
                                      ("new_group", [0, 2], "cpu:gloo"),
                                      ("new_group", [1, 3], "cpu:gloo")])
        self.assertEqual({k: g.ranks for k, g in groups.items()}, {"tp": [2, 3], "dp": [0, 2]})

    def test_a_failed_report_does_not_hide_the_original_error(self):
        docs = [endpoint_doc(r, socket=self.socket) for r in range(4)]
        dist = fake_dist(1, docs)  # torch rank 1 ...
        with self.assertLogs("splitd_groups", "WARNING") as logs:
            with self.assertRaisesRegex(PlanError, "torch rank 1 of 4, plan rank 3 of 4"):
                create(dist, docs[3])  # ... with rank 3's plan
        self.assertTrue(any("reporting FAILED" in line for line in logs.output), logs.output)
        self.assertEqual(dist.calls, [])

    def test_without_a_socket_nothing_is_reported(self):
        docs = docs_for(WORLD4, 4)
        dist = fake_dist(0, docs, split=False)
        with self.assertNoLogs("splitd_groups", "WARNING"):
            create(dist, docs[0])
        self.assertEqual(len(dist.calls), 4)


if __name__ == "__main__":
    unittest.main()
