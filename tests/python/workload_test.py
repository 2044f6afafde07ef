"""Whole-system tests of the workload path: a real splitd, 4 real splitd-agents and 4 PyTorch
(Gloo) processes on 127.0.0.1, world TP2 x DP2 with `readiness: workload`. Each process reads
its plan from its agent's socket, starts its world on splitd_groups.Store (no MASTER_ADDR, no
TCPStore), creates and validates the groups with create_groups, which reports to the agent; the
epoch is READY only once every workload reported READY. Run with and without the agents'
preflight. A workload process stopped while creating groups is named in `waiting_on`, and with
`deadlines.workload_ms` the epoch fails naming its rank.

Needs SPLITD_BIN and torch importable by this interpreter (Debian's python3-torch).
"""

import os
import signal
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from splitd_procs import ClusterTestCase, poll, require_torch, workload_env  # noqa: E402

WORKER = os.path.join(HERE, "workload_worker.py")
GROUPS = {"tp": [[0, 1], [2, 3]], "dp": [[0, 2], [1, 3]]}

TOPOLOGY = """cluster: {name}
dims:
  - {{name: tp, size: 2}}
  - {{name: dp, size: 2}}
groups:
  - {{name: tp, dims: [tp]}}
  - {{name: dp, dims: [dp]}}
backend: "cpu:gloo"
readiness: workload
"""


def proc_state(pid):
    """The one-letter state of a process in /proc (T: stopped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class WorkloadReadinessTest(ClusterTestCase):
    """4 workloads form their world through the agents and report READY."""
    NAME = "wl"
    EXTRA = ""

    PREFIX = "splitd-wl-"

    @classmethod
    def _prepare(cls):
        require_torch()

    @classmethod
    def _run(cls):
        c = cls.cluster
        c.start_daemon()
        c.apply(TOPOLOGY.format(name=cls.NAME) + cls.EXTRA)
        agents = [c.start_agent(i) for i in range(4)]
        # Every agent hands its plan over; the epoch then waits for the workloads.
        poll(lambda: all(os.path.exists(c.plan_file(i)) and os.path.exists(c.socket(i))
                         for i in range(4)), "every agent's plan file and socket",
             alive=c.alive())
        cls.before_workloads = c.status()
        cls.outs = [os.path.join(c.dir, f"out-{i}.jsonl") for i in range(4)]
        workers = [c.spawn(f"worker-{i}", [sys.executable, WORKER, "--plan_file",
                                           c.plan_file(i), "--out", cls.outs[i],
                                           "--timeout", "90"], env=workload_env())
                   for i in range(4)]
        poll(lambda: all(w.poll() is not None for w in workers), "every workload to finish",
             alive=[("splitd", c.daemon)] + [(f"agent {i}", a) for i, a in enumerate(agents)],
             timeout=180)
        cls.exit_codes = [w.returncode for w in workers]
        cls.records = [c.records(out) for out in cls.outs]
        cls.status = poll(lambda: (lambda s: s if s["state"] == "READY" else None)(c.status()),
                          "the epoch to be READY", timeout=60)

    def test_epoch_waits_for_the_workloads_before_it_is_ready(self):
        before = self.before_workloads
        self.assertEqual(before["readiness"], "workload", before)
        self.assertNotEqual(before["state"], "READY", before)
        self.assertTrue(before["waiting_on"], before)
        self.assertEqual({w["layer"] for w in before["waiting_on"]}, {"workload"}, before)

    def test_every_workload_forms_its_world_on_the_agents_store(self):
        self.assertEqual(self.exit_codes, [0, 0, 0, 0], self.cluster.logs_tail())
        for i, records in enumerate(self.records):
            self.assertEqual(len(records), 1, records)
            record = records[0]
            self.assertEqual(record["rank"], i)
            self.assertEqual(record["store"], "splitd_groups.store.Store")
            self.assertTrue(record["default_store_is_ours"], record)
            self.assertGreater(record["store_keys"], 0)
            self.assertEqual(record["socket"], self.cluster.socket(i))
            self.assertEqual(record["layout"], GROUPS)

    def test_groups_created_from_the_plan_all_reduce(self):
        for records in self.records:
            record = records[0]
            rank = record["rank"]
            self.assertEqual(list(record["groups"]), ["tp", "dp"])
            for kind, got in record["groups"].items():
                ranks = next(g for g in GROUPS[kind] if rank in g)
                self.assertEqual(got["ranks"], ranks)
                self.assertEqual(got["torch_size"], 2)
                self.assertEqual(got["allreduce"], [float(sum(r + 1 for r in ranks))] * 4)

    def test_status_shows_every_workload_ready_with_its_validations(self):
        status = self.status
        self.assertEqual((status["state"], status["readiness"]), ("READY", "workload"))
        self.assertEqual(status.get("workload_state"), "READY", status)
        self.assertEqual(status["waiting_on"], [])
        self.assertEqual(sorted(m["rank"] for m in status["members"]), [0, 1, 2, 3])
        for member in status["members"]:
            workload = member.get("workload")
            self.assertIsNotNone(workload, member)
            self.assertEqual(workload["phase"], "READY", member)
            groups = {g["kind"]: g for g in workload["groups"]}
            self.assertEqual(sorted(groups), ["dp", "tp"], workload)
            for kind, group in groups.items():
                self.assertEqual(group["phase"], "READY", group)
                self.assertEqual(group["allreduce_value"], 2.0, f"rank {member['rank']} {kind}")
                self.assertGreater(group["latency_us"], 0)


class WorkloadWithoutPreflightTest(WorkloadReadinessTest):
    """The same with `preflight: false`: the agents hand the plan over without forming groups of
    their own, and the workload's groups are the only ones."""
    NAME = "wl-nopre"
    EXTRA = "preflight: false\n"

    def test_agents_formed_no_groups_of_their_own(self):
        for kind, group in self.status["groups"].items():
            self.assertEqual(group["validations"], [], f"kind {kind}: {group}")


class StalledWorkloadTest(ClusterTestCase):
    """Rank 3's workload is held after creating its groups, before it reports VALIDATING, and
    SIGSTOPped: it stays SPLITTING while the others move on to validation and wait for it."""
    NAME = "stall"
    WORKLOAD_MS = 15000
    STALLED = 3

    PREFIX = "splitd-st-"

    @classmethod
    def _prepare(cls):
        require_torch()

    @classmethod
    def _run(cls):
        c = cls.cluster
        c.start_daemon()
        c.apply(TOPOLOGY.format(name=cls.NAME) + "preflight: false\n" +
                f"deadlines: {{workload_ms: {cls.WORKLOAD_MS}}}\n")
        for i in range(4):
            c.start_agent(i)
        marker = os.path.join(c.dir, "paused")
        workers = []
        for i in range(4):
            pause = (["--pause_before", "validating tp", "--pause_marker", marker]
                     if i == cls.STALLED else [])
            workers.append(c.spawn(f"worker-{i}", [
                sys.executable, WORKER, "--plan_file", c.plan_file(i),
                "--out", os.path.join(c.dir, f"out-{i}.jsonl"), "--timeout", "120", *pause],
                env=workload_env()))
        poll(lambda: os.path.exists(marker), "rank 3's workload to reach the pause",
             alive=c.alive())
        stalled = workers[cls.STALLED]
        stalled.send_signal(signal.SIGSTOP)
        poll(lambda: proc_state(stalled.pid) == "T", "the workload to stop")
        cls.first = c.status()
        entry = cls.entry(cls.first)
        cls.second = poll(lambda: (lambda s: s if (cls.entry(s) or {}).get("seconds", 0) >
                                   (entry or {}).get("seconds", 0) else None)(c.status()),
                          "a second status read with more seconds", timeout=30, interval=0.2)
        cls.failed = poll(lambda: (lambda s: s if s["state"] == "FAILED" else None)(c.status()),
                          "the epoch to fail on the deadline",
                          timeout=cls.WORKLOAD_MS / 1000 + 60, interval=0.2)
        cls.still_stopped = proc_state(stalled.pid) == "T"
        stalled.send_signal(signal.SIGCONT)
        stalled.kill()

    @classmethod
    def entry(cls, status):
        return next((w for w in status.get("waiting_on", []) if w["rank"] == cls.STALLED), None)

    def test_stopped_workload_is_named_in_waiting_on_with_growing_seconds(self):
        first, second = self.entry(self.first), self.entry(self.second)
        self.assertIsNotNone(first, self.first)
        self.assertNotIn(self.first["state"], ("READY", "FAILED"), self.first)
        self.assertEqual((first["layer"], first["phase"]), ("workload", "SPLITTING"), first)
        self.assertIsNotNone(second, self.second)
        self.assertEqual((second["layer"], second["phase"]), ("workload", "SPLITTING"), second)
        self.assertGreater(second["seconds"], first["seconds"])

    def test_the_deadline_fails_the_epoch_naming_the_stopped_rank(self):
        self.assertTrue(self.still_stopped)
        self.assertEqual(self.failed["state"], "FAILED")
        self.assertIn(f"rank {self.STALLED}", self.failed["reason"], self.failed)
        self.assertIn("workload", self.failed["reason"], self.failed)


if __name__ == "__main__":
    unittest.main()
