"""Unit tests of create_groups' choices (split_group or new_group, backend strings, the calls every
rank makes, in order) against a recording stand-in for torch.distributed. Runs without torch;
the real PyTorch paths are covered by integration_test.py (CPU) and docs/workload.md (GPU)."""

import os
import sys
import types
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "client", "python"))
sys.path.insert(0, HERE)

import splitd_groups  # noqa: E402
from splitd_groups import PlanError  # noqa: E402
from plan_test import plan_doc  # noqa: E402

WORLD4 = {"tp": [[0, 1], [2, 3]], "dp": [[0, 2], [1, 3]]}
NON_MEMBER = object()


class FakeGroup:
    def __init__(self, ranks, rank):
        self.ranks, self.rank = list(ranks), rank


def fake_dist(rank, docs, split=True, bound=True, backend_config=True, nccl=True):
    """A torch.distributed stand-in for `rank` of len(docs) ranks: all_gather_object returns every
    rank's contribution; group creation calls are recorded in .calls."""
    world = len(docs)
    calls = []

    def all_gather_object(out, obj):
        for i, doc in enumerate(docs):
            out[i] = obj if i == rank else splitd_groups.contribution(
                splitd_groups.parse(doc), i, world)

    def made(ranks):
        return FakeGroup(sorted(ranks), rank) if rank in ranks else NON_MEMBER

    def new_group(ranks, timeout=None, backend=None, pg_options=None):
        calls.append(("new_group", list(ranks), backend))
        return made(ranks)

    def split_group(parent_pg=None, split_ranks=None, timeout=None, pg_options=None,
                    group_desc=None):
        calls.append(("split_group", [list(g) for g in split_ranks], group_desc))
        mine = [g for g in split_ranks if rank in g]
        return FakeGroup(sorted(mine[0]), rank) if mine else None

    default = types.SimpleNamespace(bound_device_id="cuda:0" if bound else None)
    c10d = types.SimpleNamespace(_get_default_group=lambda: default)
    if backend_config:
        c10d.BackendConfig = object
    dist = types.SimpleNamespace(
        calls=calls, is_available=lambda: True, is_initialized=lambda: True,
        is_gloo_available=lambda: True, is_nccl_available=lambda: nccl,
        is_mpi_available=lambda: False,
        get_rank=lambda group=None: rank if group is None else group.ranks.index(rank),
        get_world_size=lambda group=None: world if group is None else len(group.ranks),
        all_gather_object=all_gather_object, new_group=new_group, distributed_c10d=c10d,
        GroupMember=types.SimpleNamespace(NON_GROUP_MEMBER=NON_MEMBER))
    if split:
        dist.split_group = split_group
    return dist


def docs_for(layout, world, backends=None):
    docs = [plan_doc(r, layout=layout, world=world) for r in range(world)]
    for doc in docs:
        for kind, entry in doc["groups"].items():
            entry["backend"] = (backends or {}).get(kind, "cpu:gloo")
    return docs


def create(dist, doc, **kwargs):
    torch = types.ModuleType("torch")
    torch.__version__ = "fake"
    torch.distributed = dist
    with mock.patch.dict(sys.modules, {"torch": torch, "torch.distributed": dist}):
        return splitd_groups.create_groups(splitd_groups.parse(doc), **kwargs)


class CreateGroupsTest(unittest.TestCase):
    def test_auto_splits_nccl_kinds_that_cover_the_world(self):
        docs = docs_for(WORLD4, 4, {"tp": "cuda:nccl", "dp": "cuda:nccl"})
        dist = fake_dist(1, docs)
        groups = create(dist, docs[1])
        self.assertEqual(dist.calls, [("split_group", [[0, 1], [2, 3]], "splitd:tp"),
                                      ("split_group", [[0, 2], [1, 3]], "splitd:dp")])
        self.assertEqual({k: g.ranks for k, g in groups.items()}, {"tp": [0, 1], "dp": [1, 3]})

    def test_auto_uses_new_group_for_every_group_where_it_cannot_split(self):
        layout = dict(WORLD4, pair=[[0, 1]])
        backends = {"tp": "cuda:nccl", "dp": "cpu:gloo", "pair": "cuda:nccl"}
        docs = docs_for(layout, 4, backends)
        dist = fake_dist(3, docs)  # rank 3 takes no part in "pair"
        groups = create(dist, docs[3])
        self.assertEqual(dist.calls, [
            ("split_group", [[0, 1], [2, 3]], "splitd:tp"),
            ("new_group", [0, 2], "cpu:gloo"), ("new_group", [1, 3], "cpu:gloo"),
            ("new_group", [0, 1], "cuda:nccl"),   # does not cover ranks 2, 3: not split
        ])
        self.assertEqual(list(groups), ["tp", "dp"])

    def test_auto_falls_back_to_new_group_without_split_group_or_a_bound_device(self):
        docs = docs_for(WORLD4, 4, {"tp": "cuda:nccl", "dp": "cuda:nccl"})
        for dist in (fake_dist(0, docs, split=False), fake_dist(0, docs, bound=False)):
            create(dist, docs[0])
            self.assertEqual([c[0] for c in dist.calls], ["new_group"] * 4)

    def test_method_split_without_split_group_is_refused(self):
        docs = docs_for(WORLD4, 4)
        with self.assertRaisesRegex(PlanError, "no split_group in PyTorch fake"):
            create(fake_dist(0, docs, split=False), docs[0], method="split")

    def test_backend_strings_follow_what_this_pytorch_accepts(self):
        docs = docs_for(WORLD4, 4, {"tp": "cpu:gloo,cuda:nccl", "dp": "cpu:gloo"})
        dist = fake_dist(0, docs, split=False)
        create(dist, docs[0])
        self.assertEqual([c[2] for c in dist.calls], ["cpu:gloo,cuda:nccl"] * 2 + ["cpu:gloo"] * 2)
        old = fake_dist(0, docs, split=False, backend_config=False)
        with self.assertRaisesRegex(PlanError, "kind tp: backend 'cpu:gloo,cuda:nccl' asks for "
                                               "one group with several backends"):
            create(old, docs[0])
        create(old, docs[0], backend="gloo")
        self.assertEqual({c[2] for c in old.calls}, {"gloo"})

    def test_missing_nccl_is_refused_by_kind_before_any_group_is_created(self):
        docs = docs_for(WORLD4, 4, {"dp": "cuda:nccl"})
        dist = fake_dist(0, docs, nccl=False)
        with self.assertRaisesRegex(PlanError, "kind dp: backend 'cuda:nccl' needs nccl"):
            create(dist, docs[0])
        self.assertEqual(dist.calls, [])

    def test_without_verification_split_uses_only_the_plan_file(self):
        docs = docs_for(WORLD4, 4, {"tp": "cuda:nccl", "dp": "cuda:nccl"})
        dist = fake_dist(2, docs)
        dist.all_gather_object = None  # must not be called
        create(dist, docs[2], verify=False)
        self.assertEqual(dist.calls, [("split_group", [[2, 3]], "splitd:tp"),
                                      ("split_group", [[0, 2]], "splitd:dp")])
        with self.assertRaisesRegex(PlanError, "method new_group needs every group"):
            create(dist, docs[2], verify=False, method="new_group")

    def test_a_rank_mismatch_is_refused_on_every_rank(self):
        docs = docs_for(WORLD4, 4)
        docs[1], docs[2] = docs[2], docs[1]   # processes 1 and 2 read each other's plan files
        for rank in range(4):
            with self.subTest(rank=rank):
                with self.assertRaisesRegex(PlanError, "rank 1: torch rank 1 but plan rank 2"):
                    create(fake_dist(rank, docs), docs[rank])

    def test_an_unordered_explicit_list_is_refused_on_every_rank(self):
        docs = docs_for({"tp": [[0, 1], [2, 3]], "custom": [[3, 0]]}, 4)
        for rank in range(4):
            with self.subTest(rank=rank):
                dist = fake_dist(rank, docs)
                with self.assertRaisesRegex(PlanError, r"group \[3, 0\] is not in ascending"):
                    create(dist, docs[rank])
                self.assertEqual(dist.calls, [])


if __name__ == "__main__":
    unittest.main()
