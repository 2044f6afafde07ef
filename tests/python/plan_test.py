"""Unit tests of splitd_groups' plan part: parsing, validation, waiting for an epoch, and the
cross-rank consolidation. Standard library only (no torch)."""

import copy
import json
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client",
                                "python"))

import splitd_groups  # noqa: E402
from splitd_groups import PlanError  # noqa: E402

FP = "72d50201ee3cee7f2f3ee636f0c49a13be73a72ab4d7718cedc2f09e7ff5673e"

# The vLLM world 8 of docs/plan-format.md (DP2 PP2 TP2) with an explicit kind, as agent 5 writes it.
PLAN5 = {
    "cluster": "llama-serve", "rank": 5, "world_size": 8, "epoch": 3, "fingerprint": FP,
    "method": "split", "state": "READY",
    "groups": {
        "tp": {"ranks": [4, 5], "local_rank": 1, "group_index": 2, "backend": "cpu:gloo,cuda:nccl"},
        "pp": {"ranks": [5, 7], "local_rank": 0, "group_index": 3, "backend": "cpu:gloo"},
        "dp": {"ranks": [1, 5], "local_rank": 1, "group_index": 1, "backend": "cpu:gloo"},
        "ep": {"ranks": [0, 1, 4, 5], "local_rank": 3, "group_index": 0, "backend": "cpu:gloo"},
        "custom": {"ranks": [5, 6], "local_rank": 0, "group_index": 3, "backend": "cpu:gloo"},
    },
    "timings": {"bootstrap_ms": 12.5, "split_ms": 3.1, "validate_ms": 0.8, "groups_ready_ms": 16.4},
}

VLLM8 = {"tp": [[0, 1], [2, 3], [4, 5], [6, 7]], "pp": [[0, 2], [1, 3], [4, 6], [5, 7]],
         "dp": [[0, 4], [1, 5], [2, 6], [3, 7]], "ep": [[0, 1, 4, 5], [2, 3, 6, 7]],
         "custom": [[0, 3], [1, 2], [4, 7], [5, 6]]}


def plan_doc(rank, layout=VLLM8, world=8, epoch=3, fingerprint=FP, state="READY", skip=()):
    """The plan file agent `rank` writes for `layout`."""
    groups = {}
    for kind, lists in layout.items():
        for index, g in enumerate(lists):
            if rank in g and kind not in skip:
                groups[kind] = {"ranks": g, "local_rank": g.index(rank), "group_index": index,
                                "backend": "cpu:gloo"}
    return {"cluster": "llama-serve", "rank": rank, "world_size": world, "epoch": epoch,
            "fingerprint": fingerprint, "method": "split", "state": state, "groups": groups,
            "timings": {}}


def contributions(docs):
    return [splitd_groups.contribution(splitd_groups.parse(d), i, len(docs))
            for i, d in enumerate(docs)]


class ParseTest(unittest.TestCase):
    def test_parses_the_agents_plan_file_in_kind_order(self):
        plan = splitd_groups.parse(json.dumps(PLAN5, indent=2))
        self.assertEqual((plan.rank, plan.world_size, plan.epoch, plan.state), (5, 8, 3, "READY"))
        self.assertTrue(plan.ready)
        self.assertEqual(plan.kinds, ("tp", "pp", "dp", "ep", "custom"))
        ep = plan.groups["ep"]
        self.assertEqual((ep.ranks, ep.local_rank, ep.group_index, ep.size),
                         ((0, 1, 4, 5), 3, 0, 4))
        self.assertEqual(plan.groups["tp"].backend, "cpu:gloo,cuda:nccl")
        self.assertEqual(plan.timings["groups_ready_ms"], 16.4)

    def test_plan_is_immutable(self):
        plan = splitd_groups.parse(PLAN5)
        with self.assertRaises(TypeError):
            plan.groups["tp"] = None

    def test_parses_spare_failed_and_excluded_plans(self):
        spare = dict(PLAN5, rank=-1, state="SPARE", groups={})
        self.assertEqual(splitd_groups.parse(spare).rank, -1)
        failed = dict(PLAN5, state="FAILED", error="tp: all-reduce timed out")
        self.assertEqual(splitd_groups.parse(failed).error, "tp: all-reduce timed out")
        excluded = dict(PLAN5, state="EXCLUDED", world_size=0, method="", groups={},
                        error="member m-3 was excluded")
        self.assertEqual(splitd_groups.parse(excluded).state, "EXCLUDED")

    def test_refuses_malformed_plans_naming_the_field(self):
        def change(path, value):
            doc = copy.deepcopy(PLAN5)
            target = doc
            for key in path[:-1]:
                target = target[key]
            if value is KeyError:
                del target[path[-1]]
            else:
                target[path[-1]] = value
            return doc

        cases = [
            ("not json", "{", "not JSON"),
            ("a list", "[]", "must be a JSON object"),
            ("no rank", change(["rank"], KeyError), 'missing field "rank"'),
            ("string rank", change(["rank"], "5"), 'field "rank" must be int'),
            ("bool epoch", change(["epoch"], True), 'field "epoch" must be int'),
            ("unknown state", change(["state"], "PLANNED"), 'field "state" must be one of'),
            ("rank outside world", change(["rank"], 8), 'field "rank" must be in [0, 8)'),
            ("short fingerprint", change(["fingerprint"], "72d5"), "64 lowercase hex"),
            ("groups a list", change(["groups"], []), 'field "groups" must be dict'),
            ("member outside world", change(["groups", "tp", "ranks"], [4, 8]),
             "groups.tp.ranks[1] must be a rank in [0, 8), got 8"),
            ("duplicate member", change(["groups", "tp", "ranks"], [5, 5]),
             "groups.tp.ranks[1]: rank 5 appears twice"),
            ("empty group", change(["groups", "tp", "ranks"], []), "non-empty list"),
            ("local rank past end", change(["groups", "tp", "local_rank"], 2),
             "groups.tp.local_rank must be in [0, 2), got 2"),
            ("local rank not this rank", change(["groups", "tp", "local_rank"], 0),
             "groups.tp: ranks[0] (local_rank) must be this rank 5, got 4"),
            ("negative group index", change(["groups", "dp", "group_index"], -1),
             "groups.dp.group_index must be >= 0"),
            ("bad backend", change(["groups", "pp", "backend"], "gloo"),
             'groups.pp.backend must be "<device>:<backend>[,...]"'),
            ("bad kind name", change(["groups"], {"t p": PLAN5["groups"]["tp"]}), "kind name"),
            ("spare with groups", change(["state"], "SPARE"), "a SPARE plan has no groups"),
        ]
        for name, doc, message in cases:
            with self.subTest(name):
                with self.assertRaises(PlanError) as caught:
                    splitd_groups.parse(doc, path="/run/plan.json")
                self.assertIn(message, str(caught.exception))
                self.assertIn("/run/plan.json", str(caught.exception))

    def test_load_reads_the_file_and_names_it_in_errors(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "plan.json")
            with open(path, "w") as f:
                json.dump(PLAN5, f)
            self.assertEqual(splitd_groups.load(path).path, path)
            with open(path, "w") as f:
                f.write("{}")
            with self.assertRaisesRegex(PlanError, f"{path}: missing field"):
                splitd_groups.load(path)
            with self.assertRaises(FileNotFoundError):
                splitd_groups.load(os.path.join(d, "missing.json"))


class WaitForEpochTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "plan.json")

    def tearDown(self):
        self.dir.cleanup()

    def write(self, **changes):
        # As the agent does: a temporary file renamed over the plan file.
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(PLAN5, **changes), f)
        os.replace(tmp, self.path)

    def write_later(self, delay, **changes):
        timer = threading.Timer(delay, lambda: self.write(**changes))
        timer.start()
        self.addCleanup(timer.cancel)

    def test_returns_the_current_ready_plan_without_after(self):
        self.write(epoch=3)
        self.assertEqual(splitd_groups.wait_for_epoch(self.path, timeout=1).epoch, 3)

    def test_waits_for_the_file_to_appear(self):
        self.write_later(0.1, epoch=1)
        self.assertEqual(splitd_groups.wait_for_epoch(self.path, timeout=5).epoch, 1)

    def test_waits_past_the_given_epoch(self):
        self.write(epoch=3)
        self.write_later(0.1, epoch=4)
        started = time.monotonic()
        plan = splitd_groups.wait_for_epoch(self.path, after=3, timeout=5, poll_interval=0.01)
        self.assertEqual(plan.epoch, 4)
        self.assertGreaterEqual(time.monotonic() - started, 0.09)

    def test_waits_past_a_spare_epoch_unless_asked_for_spares(self):
        self.write(epoch=4, rank=-1, state="SPARE", groups={})
        self.assertEqual(splitd_groups.wait_for_epoch(self.path, after=3, timeout=1,
                                                      return_spare=True).state, "SPARE")
        self.write_later(0.1, epoch=5)
        self.assertEqual(splitd_groups.wait_for_epoch(self.path, after=3, timeout=5).epoch, 5)

    def test_failed_epoch_raises_with_the_agents_reason(self):
        self.write(epoch=4, state="FAILED", error="dp: connect timed out")
        with self.assertRaisesRegex(splitd_groups.PlanFailedError,
                                    "epoch 4 .* FAILED on rank 5: dp: connect timed out") as c:
            splitd_groups.wait_for_epoch(self.path, after=3, timeout=1)
        self.assertEqual(c.exception.plan.epoch, 4)

    def test_failed_older_epoch_is_waited_past(self):
        self.write(epoch=3, state="FAILED", error="x")
        self.write_later(0.1, epoch=4)
        self.assertEqual(splitd_groups.wait_for_epoch(self.path, after=3, timeout=5).epoch, 4)

    def test_excluded_raises_even_for_the_current_epoch(self):
        self.write(epoch=3, state="EXCLUDED", world_size=0, groups={}, error="member m-3 was "
                   "excluded")
        with self.assertRaisesRegex(splitd_groups.ExcludedError, "m-3 was excluded"):
            splitd_groups.wait_for_epoch(self.path, after=3, timeout=1)

    def test_timeout_names_what_it_saw_last(self):
        self.write(epoch=3)
        with self.assertRaisesRegex(TimeoutError, r"an epoch after 3 within 0.2 s "
                                                  r"\(last seen: epoch 3 READY\)"):
            splitd_groups.wait_for_epoch(self.path, after=3, timeout=0.2)
        with self.assertRaisesRegex(TimeoutError, "no plan file yet"):
            splitd_groups.wait_for_epoch(self.path + ".none", timeout=0.1)

    def test_malformed_plan_file_raises(self):
        with open(self.path, "w") as f:
            f.write("{\"rank\": 1}")
        with self.assertRaisesRegex(PlanError, "missing field"):
            splitd_groups.wait_for_epoch(self.path, timeout=1)


class ConsolidateTest(unittest.TestCase):
    def test_rebuilds_every_group_in_canonical_order(self):
        layout = splitd_groups.consolidate(contributions([plan_doc(r) for r in range(8)]))
        self.assertEqual(layout.kinds, ("tp", "pp", "dp", "ep", "custom"))
        self.assertEqual({k: [list(g) for g in v] for k, v in layout.groups.items()}, VLLM8)
        self.assertEqual((layout.epoch, layout.fingerprint, layout.world_size), (3, FP, 8))
        self.assertTrue(all(layout.covers_world(k) for k in layout.kinds))

    def test_only_local_rank_zero_sends_the_members(self):
        sent = contributions([plan_doc(r) for r in range(8)])
        per_kind = [sum(1 for c in sent for k in c["kinds"] if k[0] == kind and k[3] is not None)
                    for kind in VLLM8]
        self.assertEqual(per_kind, [4, 4, 4, 2, 4])

    def test_finds_a_kind_that_some_ranks_take_no_part_in(self):
        layout_in = dict(VLLM8, pair=[[1, 6]])
        layout = splitd_groups.consolidate(
            contributions([plan_doc(r, layout=layout_in) for r in range(8)]))
        self.assertEqual(layout.kinds[-1], "pair")
        self.assertEqual(layout.groups["pair"], ((1, 6),))
        self.assertFalse(layout.covers_world("pair"))

    def test_merges_kind_orders_seen_by_different_ranks(self):
        # Kind a only on ranks 0-1, kind b only on 2-3, both after tp: every rank must still
        # compute the same order.
        world = {"tp": [[0, 1], [2, 3]], "a": [[0, 1]], "b": [[2, 3]], "dp": [[0, 2], [1, 3]]}
        docs = [plan_doc(r, layout=world, world=4) for r in range(4)]
        layout = splitd_groups.consolidate(contributions(docs))
        self.assertEqual(layout.kinds, ("tp", "a", "b", "dp"))

    def test_refuses_disagreements_naming_the_ranks(self):
        def docs(**per_rank):
            out = [plan_doc(r) for r in range(8)]
            for rank, changes in per_rank.items():
                out[int(rank[1:])].update(changes)
            return out

        stale = docs(r6=dict(epoch=2))
        wrong_group = [plan_doc(r) for r in range(8)]
        wrong_group[4]["groups"]["tp"] = {"ranks": [4, 7], "local_rank": 0, "group_index": 2,
                                          "backend": "cpu:gloo"}
        missing_kind = [plan_doc(r, skip=("dp",) if r == 7 else ()) for r in range(8)]
        no_leader = [plan_doc(r, skip=("dp",) if r == 3 else ()) for r in range(8)]
        unordered = {"tp": [[2, 3], [0, 1]]}
        backend = [plan_doc(r) for r in range(8)]
        backend[1]["groups"]["tp"]["backend"] = "cuda:nccl"
        cases = [
            ("stale epoch", contributions(stale),
             "ranks disagree on the epoch: 3 on ranks [0, 1, 2, 3, 4, 5, 7], 2 on ranks [6]"),
            ("rank swap", [dict(c, rank=1 - i) if i < 2 else c for i, c in
                           enumerate(contributions([plan_doc(r) for r in range(8)]))],
             "rank 0: torch rank 0 but plan rank 1"),
            ("torch world", contributions([plan_doc(r) for r in range(8)])[:7],
             "torch world size 8, plan world size 8, ranks gathered 7"),
            ("spare", contributions([plan_doc(r) for r in range(7)] +
                                    [dict(plan_doc(7), state="SPARE", rank=-1, groups={})]),
             "rank 7: plan state is SPARE, not READY"),
            ("group members", contributions(wrong_group), "kind tp"),
            ("missing kind", contributions(missing_kind),
             "rank 7: kind dp missing from its plan file, but group 3 (3, 7) holds it"),
            ("no leader", contributions(no_leader),
             "rank 7: kind dp group 3: no rank sends it as its local rank 0"),
            ("order", contributions([plan_doc(r, layout=unordered, world=4) for r in range(4)]),
             "kind tp: groups are not ordered by first member"),
            ("backend", contributions(backend), "kind tp: backend"),
        ]
        for name, sent, message in cases:
            with self.subTest(name):
                with self.assertRaises(PlanError) as caught:
                    splitd_groups.consolidate(sent)
                self.assertIn(message, str(caught.exception))

    def test_conflicting_kind_orders_are_refused(self):
        world = {"a": [[0, 1]], "b": [[0, 1]]}
        docs = [plan_doc(r, layout=world, world=2) for r in range(2)]
        docs[1]["groups"] = dict(reversed(list(docs[1]["groups"].items())))
        with self.assertRaisesRegex(PlanError, r"kinds \['a', 'b'\] in conflicting orders"):
            splitd_groups.consolidate(contributions(docs))


class FullPlanTest(unittest.TestCase):
    SPLITCTL_JSON = json.dumps({"cluster": "llama-serve", "epoch": 3, "fingerprint": FP,
                                "groups": VLLM8}, indent=2)

    def test_parses_splitctl_plan_json(self):
        layout = splitd_groups.parse_full_plan(self.SPLITCTL_JSON, world_size=8)
        self.assertEqual(layout.kinds, tuple(VLLM8))
        self.assertEqual(layout.groups["ep"], ((0, 1, 4, 5), (2, 3, 6, 7)))
        self.assertEqual(splitd_groups.check_plan_against_layout(
            splitd_groups.parse(plan_doc(5)), layout), [])

    def test_reports_where_the_plan_file_and_the_daemon_disagree(self):
        layout = splitd_groups.parse_full_plan(self.SPLITCTL_JSON, world_size=8)
        newer = splitd_groups.parse(plan_doc(5, epoch=4))
        self.assertIn("the daemon's plan is epoch 3", splitd_groups.check_plan_against_layout(
            newer, layout)[0])
        lacking = splitd_groups.parse(plan_doc(5, skip=("dp",)))
        self.assertEqual(splitd_groups.check_plan_against_layout(lacking, layout),
                         ["kind dp: the daemon's plan puts rank 5 in a group the plan file does "
                          "not list"])

    def test_refuses_overlapping_groups(self):
        doc = json.loads(self.SPLITCTL_JSON)
        doc["groups"]["tp"] = [[0, 1], [1, 2]]
        with self.assertRaisesRegex(PlanError, "kind tp: rank 1 is in groups 0 and 1"):
            splitd_groups.parse_full_plan(doc, world_size=8)


class CheckAscendingTest(unittest.TestCase):
    def test_accepts_generated_groups(self):
        splitd_groups.check_ascending(VLLM8)

    def test_refuses_an_explicit_list_that_pytorch_would_reorder(self):
        with self.assertRaisesRegex(PlanError, r"kind custom: group \[3, 0\] is not in "
                                               r"ascending rank order"):
            splitd_groups.check_ascending({"tp": [[0, 1]], "custom": [[3, 0]]})


if __name__ == "__main__":
    unittest.main()
