"""Across hosts: the daemon on one host of a network-namespace bed (tests/netns/bed.py) and 4 hosts x
4 splitd-agents on the others reach READY over Gloo, with `split` and with `init`, each agent
listening on its host's address. Needs root, iproute2 and SPLITD_BIN; skipped without root.
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "netns"))

import bed as netns_bed  # noqa: E402
from splitd_procs import binaries, logs_tail, poll  # noqa: E402

AGENT_HOSTS = 4
AGENTS_PER_HOST = 4
PORT = 7070

TOPOLOGY = """cluster: hosts
dims:
  - {{name: tp, size: 4}}
  - {{name: dp, size: 4}}
nodes: {{gpus_per_node: 4}}
method: {method}
backend: "cpu:gloo"
"""


# CI runs as root with iproute2 installed (scripts/setup.sh): there the tests always run.
CAN_MAKE_HOSTS = os.environ.get("CI") == "true" or (os.geteuid() == 0 and shutil.which("ip"))
WHY_NOT = "needs root and iproute2 to make network namespaces"


@unittest.skipUnless(CAN_MAKE_HOSTS, WHY_NOT)
class MultiHostTest(unittest.TestCase):
    def setUp(self):
        self.bin = binaries()
        self.dir = tempfile.mkdtemp(prefix="splitd-hosts-", dir="/tmp")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def form(self, method):
        """Brings the world up on a fresh bed; returns the READY status and the bed's tag."""
        with netns_bed.Bed(hosts=1 + AGENT_HOSTS) as bed:
            try:
                return self._form_on(bed, method), bed.tag
            except BaseException:
                print(logs_tail(self.dir), file=sys.stderr)
                raise

    def _form_on(self, bed, method):
        daemon_addr = f"{bed.address(0)}:{PORT}"
        # Plaintext: the bed's addresses exist only inside its namespaces.
        daemon = bed.spawn(0, "splitd", [self.bin["splitd"], "--listen", daemon_addr,
                                         "--plaintext"], self.dir)
        alive = [("splitd", daemon)]

        def splitctl(*args, input=None):
            return bed.run(0, [self.bin["splitctl"], "--addr", daemon_addr, "--plaintext", *args],
                           input=input,
                           capture_output=True, text=True, timeout=60)

        poll(lambda: splitctl("get", "clusters").returncode == 0, "the daemon to serve", alive=alive)
        applied = splitctl("apply", "-f", "-", input=TOPOLOGY.format(method=method))
        self.assertEqual(applied.returncode, 0, applied.stderr)
        for h in range(1, 1 + AGENT_HOSTS):
            for j in range(AGENTS_PER_HOST):
                name = f"agent-{h}-{j}"
                plan = os.path.join(self.dir, name + ".plan.json")
                alive.append((name, bed.spawn(h, name, [
                    self.bin["agent"], "--daemon", daemon_addr, "--cluster", "hosts",
                    "--node", f"node-{h}", "--local_index", str(j), "--pod", name,
                    "--host", bed.address(h), "--plan_file", plan, "--timeout_ms", "30000",
                    "--plaintext"],
                    self.dir)))

        def ready():
            done = splitctl("status", "hosts", "-o", "json")
            if done.returncode != 0:
                return None
            status = json.loads(done.stdout)
            return status if status.get("state") == "READY" else None

        return poll(ready, f"READY with {method}", alive=alive)

    def check(self, method):
        status, tag = self.form(method)
        self.assertEqual(status["world_size"], AGENT_HOSTS * AGENTS_PER_HOST)
        hosts = {}
        for member in status["members"]:
            hosts.setdefault(member["node"], set()).add(member["host"])
        # Every agent registered (and its Gloo pairs listened) on its own host's address.
        self.assertEqual(hosts, {f"node-{h}": {f"{netns_bed.SUBNET}.{h + 1}"}
                                 for h in range(1, 1 + AGENT_HOSTS)})
        # Nothing of the bed is left.
        self.assertEqual([n for n in netns_bed.namespaces() if n.startswith(tag)], [])

    def test_split_reaches_ready_across_hosts(self):
        self.check("split")

    def test_init_reaches_ready_across_hosts(self):
        self.check("init")


class StaleBedTest(unittest.TestCase):
    @unittest.skipUnless(CAN_MAKE_HOSTS, WHY_NOT)
    def test_a_bed_left_by_a_killed_process_is_removed(self):
        # A namespace named as a bed of a process that is gone (pid 2**22 + 1 is above
        # pid_max's largest value), with a process in it.
        stale = f"{netns_bed.PREFIX}{2**22 + 1}-h0"
        netns_bed._ip("netns", "add", stale)
        sleeper = None
        try:
            sleeper = netns_bed.subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "600"])
            poll(lambda: netns_bed._ip("netns", "pids", stale).split(), "the sleeper to start")
            self.assertEqual(netns_bed.remove_stale(), [stale])
            self.assertNotIn(stale, netns_bed.namespaces())
            sleeper.wait(timeout=10)  # killed with its namespace
        finally:
            if sleeper is not None and sleeper.poll() is None:
                sleeper.kill()
            if stale in netns_bed.namespaces():
                netns_bed._ip("netns", "delete", stale)


if __name__ == "__main__":
    unittest.main()
