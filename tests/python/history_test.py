"""The fault campaign's history checker (tests/netns/history.py) on small made-up histories: a
clean one passes, and each broken property is found."""

import copy
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "netns"))

import history  # noqa: E402


def status(t, epoch, fingerprint, ranks, state="READY"):
    """A status snapshot at `t`: `ranks` maps pod -> (member id, rank)."""
    return {"t": t, "status": {
        "epoch": epoch, "fingerprint": fingerprint, "state": state,
        "members": [{"pod": pod, "member_id": mid, "rank": rank}
                    for pod, (mid, rank) in ranks.items()]}}


def plan(t, agent, epoch, rank, fingerprint, state="READY"):
    return {"t": t, "agent": agent, "plan": {"epoch": epoch, "rank": rank,
                                            "fingerprint": fingerprint, "state": state}}


def clean():
    one = {"a": ("m-0", 0), "b": ("m-1", 1)}
    two = {"a": ("m-0", 1), "b": ("m-1", 0)}
    return {
        "statuses": [status(1, 1, "f1", one), status(5, 2, "f2", two)],
        "plans": [plan(1, "a", 1, 0, "f1"), plan(1, "b", 1, 1, "f1"),
                  plan(5, "a", 2, 1, "f2"), plan(5, "b", 2, 0, "f2")],
        "audit": [{"cluster": "c", "epoch": 1, "kind": "EVENT_KIND_EPOCH_STARTED"},
                  {"cluster": "c", "epoch": 2, "kind": "EVENT_KIND_EPOCH_STARTED"}],
        "restarts": [{"killed": 3, "started": 4}],
        "acks": [{"t": 0, "dp": 2}],
        "clusters": [{"t": 4.5, "cluster": {"topology": {"dims": [{"name": "dp", "size": 2}]}}}],
        "final": status(5, 2, "f2", two)["status"],
        "final_plans": {"a": plan(5, "a", 2, 1, "f2")["plan"],
                        "b": plan(5, "b", 2, 0, "f2")["plan"]},
    }


class HistoryTest(unittest.TestCase):
    def test_a_clean_history_passes(self):
        self.assertEqual(history.check(clean()), [])

    def test_an_epoch_going_back_is_found(self):
        record = clean()
        record["statuses"].append(status(6, 1, "f1", {"a": ("m-0", 0)}))
        self.assertIn("status epoch went back from 2 to 1", "\n".join(history.check(record)))
        record = clean()
        record["audit"].append({"cluster": "c", "epoch": 2, "kind": "EVENT_KIND_EPOCH_STARTED"})
        self.assertIn("epoch 2 started after epoch 2", "\n".join(history.check(record)))

    def test_two_plans_for_one_epoch_are_found(self):
        record = clean()
        record["plans"].append(plan(6, "a", 2, 1, "f2-other"))
        self.assertIn("epoch 2 has two plans: f2 (status) and f2-other",
                      "\n".join(history.check(record)))

    def test_a_member_or_an_acknowledged_dp_lost_in_a_restart_is_found(self):
        record = clean()
        record["statuses"].insert(1, status(4.2, 1, "f1", {"a": ("m-0", 0)}))
        self.assertIn("members ['m-1'] gone after the restart", "\n".join(history.check(record)))
        record = clean()
        record["clusters"][0]["cluster"]["topology"]["dims"][0]["size"] = 3
        self.assertIn("declared dp 3 after the restart", "\n".join(history.check(record)))

    def test_a_reconfigure_of_unknown_outcome_may_stand_and_no_other_size(self):
        record = clean()
        record["clusters"][0]["cluster"]["topology"]["dims"][0]["size"] = 3
        record["unknown"] = [{"t": 2, "dp": 3}]
        self.assertEqual(history.check(record), [])
        record["unknown"] = [{"t": 2, "dp": 1}]
        self.assertIn("declared dp 3 after the restart", "\n".join(history.check(record)))

    def test_a_plan_file_for_a_rank_the_agent_does_not_hold_is_found(self):
        record = clean()
        record["plans"].append(plan(6, "a", 2, 0, "f2"))
        self.assertIn("a wrote a READY plan for epoch 2 rank 0, which it does not hold",
                      "\n".join(history.check(record)))

    def test_an_end_that_is_not_ready_or_lacks_plan_files_is_found(self):
        record = clean()
        record["final"]["state"] = "BOOTSTRAPPING"
        self.assertIn("not READY once the faults stopped", "\n".join(history.check(record)))
        record = clean()
        record["final_plans"]["b"] = copy.deepcopy(record["final_plans"]["a"])
        self.assertIn("without a matching plan file on ['b']", "\n".join(history.check(record)))


if __name__ == "__main__":
    unittest.main()
