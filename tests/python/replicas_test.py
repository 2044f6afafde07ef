"""Daemon replicas over etcd with real processes: three splitd replicas (--etcd_endpoints) over a
real etcd, four splitd-agents (TP2 DP2) given all three addresses. The leader is killed with
SIGKILL after READY, while agents register and during a Reconfigure, and stopped (SIGSTOP) past
its lease: a follower takes over with the same epochs, ranks and sessions, the agents do not
form their groups again, and a deposed leader steps down. Needs SPLITD_BIN and /usr/bin/etcd."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

from etcd_procs import Etcd
from splitd_procs import Cluster, poll, read_text

TOPOLOGY = """cluster: ha
dims:
  - {name: tp, size: 2}
  - {name: dp, size: 2}
method: split
backend: "cpu:gloo"
elastic: {replica_dim: dp, min: 1, max: 2}
"""
TTL_MS = 3000


class Replicas(Cluster):
    """A Cluster whose daemon is three replicas over etcd; self.addr lists them all."""

    def __init__(self, name, etcd_members=1):
        super().__init__(name, prefix="splitd-ha-")
        self.etcd = Etcd(self.dir, etcd_members)
        self.replicas = {}  # index -> Popen
        self.ports = {}

    def start_replica(self, i, port=0):
        port_file = os.path.join(self.dir, f"port-{i}")
        if os.path.exists(port_file):
            os.remove(port_file)
        proc = self.spawn(f"splitd-{i}", [
            self.bin["splitd"], "--listen", f"127.0.0.1:{port}", "--port_file", port_file,
            "--etcd_endpoints", self.etcd.endpoints(), "--leader_ttl_ms", str(TTL_MS)])
        poll(lambda: os.path.exists(port_file) and read_text(port_file).strip(),
             f"replica {i}'s port file", alive=[(f"splitd-{i}", proc)])
        self.replicas[i] = proc
        self.ports[i] = read_text(port_file).strip()

    def start_daemon(self):
        for i in range(3):
            self.start_replica(i)
        self.addr = ",".join(self.ports[i] for i in range(3))
        self.daemon = self.replicas[0]

    def leader(self):
        """The index of the replica whose Leader health is SERVING, or None."""
        for i, port in self.ports.items():
            done = subprocess.run([self.bin["splitctl"], "--addr", port, "--timeout", "1",
                                   "get", "clusters"], capture_output=True, text=True)
            if done.returncode == 0:
                return i
        return None

    def stop(self):
        super().stop()
        self.etcd.stop()

    def plan_files(self):
        return {i: read_text(self.plan_file(i)) for i in range(4)}


def ready_at(c, epoch=None):
    def check():
        try:
            s = c.status()
        except AssertionError:
            return None
        if s["state"] == "READY" and (epoch is None or s["epoch"] == epoch):
            return s
        return None
    return check


def formations(c, i):
    """How many times agent i formed its groups (its log's READY reports)."""
    with open(os.path.join(c.dir, f"agent-{i}.log"), errors="replace") as f:
        return len(re.findall(r"groups formed", f.read()))


class FailoverAfterReadyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = Replicas("ha")
        try:
            c.start_daemon()
            c.apply(TOPOLOGY)
            for i in range(4):
                c.start_agent(i, socket_flag=False)
            cls.before = poll(ready_at(c), "READY", alive=c.alive())
            cls.files_before = c.plan_files()
            cls.formed_before = [formations(c, i) for i in range(4)]
            cls.old = c.leader()
            killed_at = time.monotonic()
            c.replicas[cls.old].send_signal(signal.SIGKILL)
            c.replicas[cls.old].wait()
            c.procs = [(n, p) for n, p in c.procs if p is not c.replicas[cls.old]]
            cls.new = poll(lambda: c.leader(), "a new leader", timeout=30, interval=0.05)
            cls.failover_s = time.monotonic() - killed_at
            print(f"failover after kill -9 of the leader: {cls.failover_s:.2f} s",
                  file=sys.stderr)
            # A whole member lease and more after the failover: nobody is lost.
            time.sleep(8)
            cls.after = poll(ready_at(c), "READY after the failover", alive=c.alive())
            cls.files_after = c.plan_files()
            cls.formed_after = [formations(c, i) for i in range(4)]
        except BaseException:
            c.stop()
            print(c.logs_tail(30))
            c.remove()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        cls.c.remove()

    def test_a_follower_leads_within_the_ttl_and_two_seconds(self):
        self.assertNotEqual(self.new, self.old)
        self.assertLess(self.failover_s, TTL_MS / 1000 + 2, self.failover_s)

    def test_the_same_epoch_members_and_plans_survive(self):
        self.assertEqual(self.after["epoch"], self.before["epoch"])
        self.assertEqual(self.after["fingerprint"], self.before["fingerprint"])
        self.assertEqual(self.after["registered_members"], 4)
        self.assertEqual(self.after["lost_members"], 0)
        self.assertEqual(self.files_after, self.files_before)

    def test_agents_did_not_form_their_groups_again(self):
        self.assertEqual(self.formed_before, [1, 1, 1, 1])
        self.assertEqual(self.formed_after, self.formed_before)


if __name__ == "__main__":
    unittest.main()
