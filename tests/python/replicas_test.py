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
elastic: {replica_dim: dp, min: 1, max: 2, heartbeat_interval_ms: 800, lease_timeout_ms: 4000}
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
            if self.replicas[i].poll() is None and self.splitctl_at(port, "get", "clusters"):
                return i
        return None

    def splitctl_at(self, address, *args):
        done = subprocess.run([self.bin["splitctl"], "--addr", address, "--timeout", "1", *args],
                              capture_output=True, text=True)
        return done.returncode == 0

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


class ReplicasTestCase(unittest.TestCase):
    """setUpClass makes a Replicas cluster and calls _run(); on failure prints its logs."""
    ETCD_MEMBERS = 1

    @classmethod
    def _run(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        c = cls.c = Replicas("ha", cls.ETCD_MEMBERS)
        try:
            c.start_daemon()
            c.apply(TOPOLOGY)
            cls._run()
        except BaseException:
            c.stop()
            print(c.logs_tail(30), file=sys.stderr)
            c.remove()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        cls.c.remove()

    @classmethod
    def start_agents(cls, indices=range(4)):
        for i in indices:
            cls.c.start_agent(i, socket_flag=False)

    @classmethod
    def ready(cls, epoch=None):
        """Waits for READY (at `epoch`); returns the status and how often each agent formed its
        groups."""
        c = cls.c
        status = poll(ready_at(c, epoch), "READY", alive=c.alive())
        return status, [formations(c, i) for i in range(4)]

    def assert_formed_once_in(self, status, formed, epoch):
        self.assertEqual(status["epoch"], epoch)
        self.assertEqual(status["registered_members"], 4)
        self.assertEqual(status["lost_members"], 0)
        self.assertEqual(formed, [1, 1, 1, 1])

    @classmethod
    def kill_leader(cls):
        """SIGKILL of the leading replica; returns (its index, seconds until another leads)."""
        c = cls.c
        old = c.leader()
        killed_at = time.monotonic()
        c.replicas[old].send_signal(signal.SIGKILL)
        c.replicas[old].wait()
        c.procs = [(n, p) for n, p in c.procs if p is not c.replicas[old]]
        new = poll(lambda: c.leader(), "a new leader", timeout=30, interval=0.05)
        return old, new, time.monotonic() - killed_at


class FailoverAfterReadyTest(ReplicasTestCase):
    @classmethod
    def _run(cls):
        c = cls.c
        cls.start_agents()
        cls.before, cls.formed_before = cls.ready()
        cls.files_before = c.plan_files()
        cls.old, cls.new, cls.failover_s = cls.kill_leader()
        print(f"failover after kill -9 of the leader: {cls.failover_s:.2f} s", file=sys.stderr)
        # A whole member lease (4 s) and more after the failover: nobody is lost.
        time.sleep(5)
        cls.after, cls.formed_after = cls.ready()
        cls.files_after = c.plan_files()

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


class FailoverWhileRegisteringTest(ReplicasTestCase):
    """Two agents register, the leader dies, two more come: one epoch, four members."""

    @classmethod
    def _run(cls):
        c = cls.c
        cls.start_agents(range(2))
        poll(lambda: c.status()["registered_members"] == 2, "two members", alive=c.alive())
        cls.kill_leader()
        cls.start_agents(range(2, 4))
        cls.after, cls.formed = cls.ready()

    def test_one_epoch_of_the_four_members(self):
        self.assert_formed_once_in(self.after, self.formed, epoch=1)
        self.assertEqual(self.after["world_size"], 4)


class FailoverWhileBootstrappingTest(ReplicasTestCase):
    """Agent 0 is stopped once it registers, so the others wait in the world's bootstrap; the
    leader dies while they wait (their rendezvous keys are in etcd), agent 0 goes on, and the
    epoch becomes READY."""

    @classmethod
    def _run(cls):
        c = cls.c
        first = c.start_agent(0, socket_flag=False)
        poll(lambda: c.status()["registered_members"] == 1, "agent 0 to register",
             alive=c.alive())
        first.send_signal(signal.SIGSTOP)
        cls.start_agents(range(1, 4))
        cls.waiting = poll(lambda: (lambda s: s if sum(
            m["phase"] == "BOOTSTRAPPING" for m in s["members"]) == 3 else None)(c.status()),
            "the others to bootstrap", alive=c.alive())
        time.sleep(0.5)
        cls.kill_leader()
        first.send_signal(signal.SIGCONT)
        cls.after, cls.formed = cls.ready()

    def test_the_epoch_forms_once_across_the_failover(self):
        self.assertEqual(self.waiting["epoch"], 1)
        self.assert_formed_once_in(self.after, self.formed, epoch=1)


class FailoverDuringReconfigureTest(ReplicasTestCase):
    """An acknowledged Reconfigure survives the leader's death right after it answered."""

    @classmethod
    def _run(cls):
        c = cls.c
        cls.start_agents()
        cls.before, _ = cls.ready()
        done = c.splitctl("reconfigure", "ha", "--set", "dp=1")
        if done.returncode != 0:
            raise AssertionError(f"reconfigure failed: {done.stderr}")
        cls.kill_leader()
        cls.after, _ = cls.ready(epoch=cls.before["epoch"] + 1)

    def test_the_acknowledged_layout_is_the_new_leaders(self):
        self.assertEqual(self.after["world_size"], 2)
        self.assertEqual(self.after["epoch"], self.before["epoch"] + 1)
        self.assertEqual(self.after["lost_members"], 0)


class StoppedLeaderTest(ReplicasTestCase):
    """SIGSTOP of the leader past its lease, then SIGCONT: another replica leads meanwhile, and
    the stopped one steps down (starts again as a follower) instead of answering."""

    @classmethod
    def _run(cls):
        c = cls.c
        cls.start_agents()
        cls.before, cls.formed_before = cls.ready()
        cls.old = c.leader()
        c.replicas[cls.old].send_signal(signal.SIGSTOP)
        others = {i: p for i, p in c.ports.items() if i != cls.old}
        cls.new = poll(lambda: next((i for i in others if c.splitctl_at(others[i], "get",
                                                                        "clusters")), None),
                       "another leader", timeout=30)
        time.sleep(2)
        c.replicas[cls.old].send_signal(signal.SIGCONT)
        log = os.path.join(c.dir, f"splitd-{cls.old}.log")
        poll(lambda: "starting again as a follower" in read_text(log) and
             read_text(log).count("replica serving as a follower") >= 2,
             "the stopped leader to step down", alive=c.alive())
        time.sleep(3)
        cls.leader_after = c.leader()
        cls.after, cls.formed_after = cls.ready()

    def test_the_stopped_leader_steps_down_and_the_new_one_stays(self):
        self.assertNotEqual(self.new, self.old)
        self.assertEqual(self.leader_after, self.new)

    def test_the_epoch_and_groups_are_untouched(self):
        self.assertEqual(self.after["epoch"], self.before["epoch"])
        self.assertEqual(self.after["fingerprint"], self.before["fingerprint"])
        self.assertEqual(self.after["lost_members"], 0)
        self.assertEqual(self.formed_after, self.formed_before)


class EtcdQuorumLostTest(ReplicasTestCase):
    """Two of three etcd members down: calls fail UNAVAILABLE with a clear message, the agents
    keep their groups, and once the members return a replica leads with the same state."""
    ETCD_MEMBERS = 3

    @classmethod
    def _run(cls):
        c = cls.c
        cls.start_agents()
        cls.before, _ = cls.ready()
        cls.files_before = c.plan_files()
        c.etcd.kill(1)
        c.etcd.kill(2)
        time.sleep(TTL_MS / 1000 + 1)
        cls.refused = c.splitctl("apply", "-f", "-", input=TOPOLOGY.replace("ha", "other"))
        cls.status_refused = c.splitctl("status", "ha")
        c.etcd.start(1)
        c.etcd.start(2)
        cls.after = poll(ready_at(c), "READY once etcd has its quorum again", alive=c.alive())
        cls.files_after = c.plan_files()
        cls.applied = c.splitctl("apply", "-f", "-", input=TOPOLOGY.replace("ha", "other"))

    def test_calls_fail_unavailable_without_a_quorum(self):
        self.assertNotEqual(self.refused.returncode, 0)
        self.assertIn("UNAVAILABLE", self.refused.stderr)
        self.assertNotEqual(self.status_refused.returncode, 0)
        self.assertIn("UNAVAILABLE", self.status_refused.stderr)

    def test_the_state_is_whole_once_etcd_returns(self):
        self.assertEqual(self.after["epoch"], self.before["epoch"])
        self.assertEqual(self.after["fingerprint"], self.before["fingerprint"])
        self.assertEqual(self.after["registered_members"], 4)
        self.assertEqual(self.files_after, self.files_before)
        self.assertEqual(self.applied.returncode, 0, self.applied.stderr)


class CompactionThenStandbyRestartTest(ReplicasTestCase):
    """etcd's history compacted to its latest revision, a standby restarted, then the leader
    killed: the restarted standby or the other one leads, with the same state."""

    @classmethod
    def _run(cls):
        c = cls.c
        cls.start_agents()
        cls.before, _ = cls.ready()
        c.etcd.compact(c.etcd.revision())
        leader = c.leader()
        standby = next(i for i in c.replicas if i != leader)
        c.replicas[standby].send_signal(signal.SIGKILL)
        c.replicas[standby].wait()
        c.procs = [(n, p) for n, p in c.procs if p is not c.replicas[standby]]
        c.start_replica(standby, port=c.ports[standby].rsplit(":", 1)[1])
        cls.old, cls.new, _ = cls.kill_leader()
        cls.after, _ = cls.ready()

    def test_a_standby_leads_with_the_same_state(self):
        self.assertNotEqual(self.new, self.old)
        self.assertEqual(self.after["epoch"], self.before["epoch"])
        self.assertEqual(self.after["registered_members"], 4)
        self.assertEqual(self.after["lost_members"], 0)


if __name__ == "__main__":
    unittest.main()
