"""Integration test: the real splitd daemon, 4 real splitd-agents and 4 PyTorch (Gloo) processes
on 127.0.0.1. Each PyTorch process waits for its agent's plan file, joins a world of the plan's
rank and size, creates the plan's groups with splitd_groups.create_groups and all-reduces in each.
Then a reconfiguration excludes rank 3, which drops the dp replica {2, 3}: the two survivors form
the groups of epoch 2 (this time from `splitctl plan NAME -o json`); rank 3's process sees
EXCLUDED and exits 0, rank 2's sees SPARE and keeps waiting for a later epoch.

Needs SPLITD_BIN (a bazel-bin holding daemon/splitd, worker/splitd-agent, client/splitctl) and
torch importable by this interpreter (Debian: apt-get install python3-torch, /usr/bin/python3).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import json

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from splitd_procs import (binaries as find_binaries, logs_tail, poll, read_text,  # noqa: E402
                          require_torch)

WORKER = os.path.join(HERE, "torch_worker.py")

TOPOLOGY = """cluster: pyt
dims:
  - {name: tp, size: 2}
  - {name: dp, size: 2}
groups:
  - {name: tp, dims: [tp]}
  - {name: dp, dims: [dp]}
  - {name: ep, dims: [tp, dp]}
  - {name: pair, split_ranks: [[0, 1]]}   # ranks 2 and 3 take no part in this kind
method: split
backend: "cpu:gloo"
"""

EPOCH1 = {"tp": [[0, 1], [2, 3]], "dp": [[0, 2], [1, 3]], "ep": [[0, 1, 2, 3]], "pair": [[0, 1]]}
EPOCH2 = {"tp": [[0, 1]], "dp": [[0], [1]], "ep": [[0, 1]], "pair": [[0, 1]]}


class IntegrationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.dir = tempfile.mkdtemp(prefix="splitd-py-")
        try:
            cls._run_scenario()
        except BaseException:
            cls._stop()
            print(cls.logs_tail(), file=sys.stderr)
            cls._remove_dir()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._stop()
        cls._remove_dir()

    @classmethod
    def _remove_dir(cls):
        if os.environ.get("SPLITD_KEEP_LOGS"):
            print(f"logs kept in {cls.dir}", file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def _spawn(cls, name, argv):
        with open(os.path.join(cls.dir, name + ".log"), "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        cls.procs.append(proc)
        return proc

    @classmethod
    def _stop(cls):
        for proc in reversed(cls.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(cls.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        cls.procs = []

    @classmethod
    def logs_tail(cls, lines=15):
        return logs_tail(cls.dir, lines)

    @classmethod
    def _run_scenario(cls):
        binaries = find_binaries()
        require_torch()

        port_file = os.path.join(cls.dir, "port")
        daemon = cls._spawn("splitd", [binaries["splitd"], "--listen", "127.0.0.1:0",
                                       "--port_file", port_file])
        poll(lambda: os.path.exists(port_file) and read_text(port_file).strip(),
             "the daemon's port file", alive=[("splitd", daemon)])
        cls.addr = read_text(port_file).strip()
        cls.splitctl = [binaries["splitctl"], "--addr", cls.addr]
        subprocess.run(cls.splitctl + ["apply", "-f", "-"], input=TOPOLOGY, text=True,
                       check=True, capture_output=True)

        cls.workers = []
        agents = []
        for i in range(4):
            plan_file = os.path.join(cls.dir, f"plan-{i}.json")
            agents.append((f"agent {i}", cls._spawn(f"agent-{i}", [
                binaries["agent"], "--daemon", cls.addr, "--cluster", "pyt", "--node", "node-0",
                "--local_index", str(i), "--pod", f"agent-{i}", "--host", "127.0.0.1",
                "--plan_file", plan_file, "--timeout_ms", "30000"])))
            cls.workers.append(cls._spawn(f"worker-{i}", [
                sys.executable, WORKER, "--plan_file", plan_file, "--store_dir", cls.dir,
                "--out", os.path.join(cls.dir, f"out-{i}.jsonl"), "--epochs", "2",
                "--layout", "gather", "splitctl", "--daemon", cls.addr,
                "--splitctl", binaries["splitctl"], "--timeout", "60"]))

        everyone = [("splitd", daemon)] + agents + [(f"worker {i}", w) for i, w in
                                                     enumerate(cls.workers)]
        poll(lambda: all(len(cls.records(i)) >= 1 for i in range(4)),
             "every worker's epoch-1 record", alive=everyone)
        cls.reconfigure = subprocess.run(cls.splitctl + ["reconfigure", "pyt", "--exclude-rank",
                                                         "3"], capture_output=True, text=True)
        if cls.reconfigure.returncode != 0:
            raise AssertionError(f"reconfigure failed: {cls.reconfigure.stderr}")
        # Workers 0, 1 and 3 finish; worker 2 waits as a spare until it is stopped.
        poll(lambda: all(cls.workers[i].poll() is not None for i in (0, 1, 3)) and
             any(r.get("spare") for r in cls.records(2)), "workers 0, 1, 3 to exit, 2 spare",
             alive=[("splitd", daemon)] + agents[:3] + [("worker 2", cls.workers[2])])
        cls.exit_codes = [w.poll() for w in cls.workers]
        cls.by_epoch = {}
        for i in range(4):
            for record in cls.records(i):
                cls.by_epoch.setdefault(record["epoch"], []).append((i, record))

    @classmethod
    def records(cls, worker):
        path = os.path.join(cls.dir, f"out-{worker}.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def formed(self, epoch):
        """{rank: record} of the workers that formed groups in `epoch`."""
        return {r["rank"]: r for _, r in self.by_epoch.get(epoch, []) if "groups" in r}

    def assert_groups(self, epoch, expected, world_size):
        formed = self.formed(epoch)
        self.assertEqual(sorted(formed), list(range(world_size)), self.logs_tail())
        for rank, record in formed.items():
            self.assertEqual(record["world_size"], world_size)
            mine = {kind: next(g for g in groups if rank in g) for kind, groups in
                    expected.items() if any(rank in g for g in groups)}
            self.assertEqual(list(record["groups"]), list(mine), f"rank {rank}'s kinds")
            for kind, ranks in mine.items():
                got = record["groups"][kind]
                self.assertEqual(got["ranks"], ranks, f"epoch {epoch} rank {rank} {kind}")
                self.assertEqual(got["torch_size"], len(ranks), f"rank {rank} {kind} size")
                self.assertEqual(got["torch_rank"], ranks.index(rank), f"rank {rank} {kind}")
                want = float(sum(r + 1 for r in ranks))
                self.assertEqual(got["allreduce"], [want] * 8, f"rank {rank} {kind} all-reduce")

    def test_every_rank_forms_the_plans_groups_and_all_reduces_in_them(self):
        self.assert_groups(1, EPOCH1, 4)
        for record in self.formed(1).values():
            self.assertEqual(record["layout"], "gather")

    def test_ranks_outside_an_explicit_kind_still_take_part_in_creating_it(self):
        formed = self.formed(1)
        self.assertNotIn("pair", formed[2]["groups"])
        self.assertNotIn("pair", formed[3]["groups"])
        self.assertEqual(formed[0]["groups"]["pair"]["allreduce"][0], 3.0)

    def test_survivors_form_the_next_epochs_groups_from_the_daemons_full_plan(self):
        self.assert_groups(2, EPOCH2, 2)
        for record in self.formed(2).values():
            self.assertEqual(record["layout"], "splitctl")

    def test_excluded_process_learns_it_and_exits_zero(self):
        self.assertEqual(self.exit_codes, [0, 0, None, 0], self.logs_tail())
        last = self.records(3)[-1]
        self.assertTrue(last.get("excluded"), last)
        self.assertIn("excluded", last["error"])

    def test_process_of_a_spare_member_waits_past_the_spare_epoch(self):
        spare = [r for r in self.records(2) if r.get("spare")]
        self.assertEqual([r["epoch"] for r in spare], [2])
        self.assertFalse(any("exception" in r for r in self.records(2)), self.records(2))

    def test_daemon_reports_the_new_epoch_ready(self):
        status = subprocess.run(self.splitctl + ["status", "pyt", "-o", "json"],
                                capture_output=True, text=True, check=True)
        doc = json.loads(status.stdout)
        self.assertEqual((doc["epoch"], doc["state"], doc["world_size"]), (2, "READY", 2))


if __name__ == "__main__":
    unittest.main()
