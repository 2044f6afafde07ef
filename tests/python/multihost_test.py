"""Across hosts: the daemon on one host of a network-namespace bed (tests/netns/bed.py) and 4 hosts x
4 splitd-agents on the others reach READY over Gloo, with `split` and with `init`, each agent
listening on its host's address. Needs root, iproute2 and SPLITD_BIN; skipped without root.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
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
{elastic}"""

SERVER_NAME = "splitd.bed"  # the daemon's certificate names only this: no address


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(directory):
    """A CA, a server certificate for SERVER_NAME and a client certificate, made by openssl in
    `directory`; returns the daemon's flags and the clients' (agents, splitctl)."""
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2",
            "-subj", "/CN=bed-ca", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")
    for name, extensions in [("server", f"subjectAltName=DNS:{SERVER_NAME}\n"
                                        "extendedKeyUsage=serverAuth\n"),
                             ("client", "extendedKeyUsage=clientAuth\n")]:
        with open(path(name + ".ext"), "w") as f:
            f.write(extensions)
        openssl("req", *ec, "-keyout", path(name + ".key"), "-out", path(name + ".csr"), "-subj",
                "/CN=" + name)
        openssl("x509", "-req", "-in", path(name + ".csr"), "-CA", path("ca.pem"), "-CAkey",
                path("ca.key"), "-CAcreateserial", "-out", path(name + ".pem"), "-days", "2",
                "-extfile", path(name + ".ext"))
    daemon = ["--tls_cert", path("server.pem"), "--tls_key", path("server.key"),
              "--tls_client_ca", path("ca.pem")]
    client = ["--tls_ca", path("ca.pem"), "--tls_cert", path("client.pem"), "--tls_key",
              path("client.key"), "--tls_server_name", SERVER_NAME]
    return daemon, client


# Quick leases, and dp free to drop to 1 and grow back to 4.
ELASTIC = "elastic: {min: 1, max: 4, heartbeat_interval_ms: 200, lease_timeout_ms: 2000}\n"


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

    @contextlib.contextmanager
    def bed(self):
        """A fresh bed of 1 + AGENT_HOSTS hosts; a failure inside prints the processes' logs."""
        with netns_bed.Bed(hosts=1 + AGENT_HOSTS) as bed:
            try:
                yield bed
            except BaseException:
                print(logs_tail(self.dir), file=sys.stderr)
                raise

    def form(self, method):
        """Brings the world up on a fresh bed; returns the READY status and the bed's tag."""
        with self.bed() as bed:
            splitctl, alive = self.start(bed, TOPOLOGY.format(method=method, elastic=""))
            return self.wait(splitctl, alive, f"READY with {method}",
                             lambda s: s["state"] == "READY"), bed.tag

    def daemon_argv(self, bed, daemon_tls):
        """The daemon on host 0, its state in the test's directory (kept across restarts)."""
        return [self.bin["splitd"], "--listen", f"{bed.address(0)}:{PORT}", "--data_dir",
                os.path.join(self.dir, "state"), *daemon_tls]

    def start(self, bed, topology, tls=None, agents=True, agent_timeout_ms=30000):
        """The daemon on host 0, `topology` applied, and the agents on the other hosts; returns
        splitctl (run on host 0) and the processes that must stay up, the daemon first. `tls`:
        the daemon's and the clients' flags (make_pki); without it, plaintext (the bed's
        addresses exist only inside its namespaces)."""
        daemon_addr = f"{bed.address(0)}:{PORT}"
        daemon_tls, client_tls = tls or (["--plaintext"], ["--plaintext"])
        daemon = bed.spawn(0, "splitd", self.daemon_argv(bed, daemon_tls), self.dir)
        alive = [("splitd", daemon)]

        def splitctl(*args, input=None):
            return bed.run(0, [self.bin["splitctl"], "--addr", daemon_addr, *client_tls, *args],
                           input=input, capture_output=True, text=True, timeout=60)

        poll(lambda: splitctl("get", "clusters").returncode == 0, "the daemon to serve",
             alive=alive)
        applied = splitctl("apply", "-f", "-", input=topology)
        self.assertEqual(applied.returncode, 0, applied.stderr)
        if agents:
            alive += self.start_agents(bed, client_tls, agent_timeout_ms)
        return splitctl, alive

    def start_agents(self, bed, client_tls, timeout_ms=30000):
        """AGENTS_PER_HOST agents on each agent host; returns them as (name, Popen)."""
        started = []
        for h in range(1, 1 + AGENT_HOSTS):
            for j in range(AGENTS_PER_HOST):
                name = f"agent-{h}-{j}"
                started.append((name, bed.spawn(h, name, [
                    self.bin["agent"], "--daemon", f"{bed.address(0)}:{PORT}", "--cluster",
                    "hosts", "--node", f"node-{h}", "--local_index", str(j), "--pod", name,
                    "--host", bed.address(h), "--plan_file", self.plan_path(name),
                    "--timeout_ms", str(timeout_ms), *client_tls], self.dir)))
        return started

    def plan_path(self, agent):
        return os.path.join(self.dir, agent + ".plan.json")

    def plan_files(self):
        """(epoch, fingerprint, state) of every agent's plan file, by agent name."""
        files = {}
        for h in range(1, 1 + AGENT_HOSTS):
            for j in range(AGENTS_PER_HOST):
                name = f"agent-{h}-{j}"
                with open(self.plan_path(name)) as f:
                    plan = json.load(f)
                files[name] = (plan["epoch"], plan["fingerprint"], plan["state"])
        return files

    def restart_daemon(self, bed, alive):
        """kill -9 of the daemon (alive[0]), then a new one on the same address and state."""
        daemon = alive[0][1]
        daemon.kill()
        daemon.wait()
        alive[0] = ("splitd", bed.spawn(0, "splitd-restarted",
                                        self.daemon_argv(bed, ["--plaintext"]), self.dir))

    def wait(self, splitctl, alive, what, condition, timeout=None):
        """Polls the cluster's status until `condition(status)`; returns that status."""
        def met():
            done = splitctl("status", "hosts", "-o", "json")
            if done.returncode != 0:
                return None
            status = json.loads(done.stdout)
            return status if condition(status) else None

        return poll(met, what, alive=alive, **({"timeout": timeout} if timeout else {}))

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

    def test_mutual_tls_with_the_daemons_server_name_reaches_ready_across_hosts(self):
        tls = make_pki(self.dir)
        with self.bed() as bed:
            splitctl, alive = self.start(bed, TOPOLOGY.format(method="split", elastic=""),
                                         tls)
            ready = self.wait(splitctl, alive, "READY over mutual TLS",
                              lambda s: s["state"] == "READY")
            self.assertEqual(ready["world_size"], AGENT_HOSTS * AGENTS_PER_HOST)
            # The daemon's certificate has no address in it: a client that does not name
            # the server is refused.
            client_tls = tls[1]
            refused = bed.run(1, [self.bin["splitctl"], "--addr", f"{bed.address(0)}:{PORT}",
                                  *client_tls[:-2], "status", "hosts"],
                              capture_output=True, text=True, timeout=60)
            self.assertNotEqual(refused.returncode, 0)
            self.assertIn("not in peer certificate", refused.stderr)

    def test_a_host_cut_off_from_its_peers_holds_the_bootstrap_until_its_deadline(self):
        # The last host reaches the daemon but none of its peers: the world cannot connect, and
        # the 3 s bootstrap deadline fails the epoch, naming a rank stuck in BOOTSTRAPPING.
        topology = TOPOLOGY.format(method="split", elastic="deadlines: {bootstrap_ms: 3000}\n")
        with self.bed() as bed:
            bed.isolate_from_peers(AGENT_HOSTS, keep=[0])
            splitctl, alive = self.start(bed, topology)
            failed = self.wait(splitctl, alive, "the bootstrap deadline to fail the epoch",
                               lambda s: s["state"] == "FAILED")
            self.assertIn("stuck in", failed["reason"])
            self.assertIn("BOOTSTRAPPING", failed["reason"])
            self.assertIn("deadline bootstrap_ms 3000", failed["reason"])

    def test_a_host_cut_off_past_its_lease_is_lost_and_rejoins_once_healed(self):
        with self.bed() as bed:
            splitctl, alive = self.start(bed, TOPOLOGY.format(method="split",
                                                              elastic=ELASTIC))
            whole = self.wait(splitctl, alive, "READY at world 16",
                              lambda s: s["state"] == "READY" and s["world_size"] == 16)
            # The last host holds one dp replica (its node's 4 ranks): cut off, its members
            # are lost once their lease runs out and the other 12 form dp 3.
            bed.cut(AGENT_HOSTS)
            shrunk = self.wait(splitctl, alive, "READY at world 12 without the cut host",
                               lambda s: s["state"] == "READY" and s["world_size"] == 12
                               and s["epoch"] > whole["epoch"])
            self.assertEqual(shrunk["lost_members"], AGENTS_PER_HOST)
            self.assertIn("lost", shrunk["epoch_reason"])
            # Healed: its agents heartbeat again, come back as spares and the policy grows
            # dp back to 4 in a later epoch.
            bed.heal(AGENT_HOSTS)
            back = self.wait(splitctl, alive, "READY at world 16 again",
                             lambda s: s["state"] == "READY" and s["world_size"] == 16
                             and s["epoch"] > shrunk["epoch"])
            self.assertEqual(back["lost_members"], 0)


    def test_agents_blocked_connecting_to_a_lost_host_go_on_to_the_next_epoch(self):
        # The last host reaches the daemon but none of its peers: every agent publishes its
        # addresses and blocks in Gloo's pair connect, which nothing but its timeout (120 s
        # here) interrupts. Once that host is cut off entirely and its members lost, the other
        # agents leave their blocked connects behind and form dp 3 in the next epoch.
        with self.bed() as bed:
            bed.isolate_from_peers(AGENT_HOSTS, keep=[0])
            splitctl, alive = self.start(bed, TOPOLOGY.format(method="split", elastic=ELASTIC),
                                         agent_timeout_ms=120000)
            stuck = self.wait(splitctl, alive, "the world bootstrap under way",
                              lambda s: s["state"] == "BOOTSTRAPPING")
            time.sleep(2)  # well into the blocked connects
            bed.cut(AGENT_HOSTS)
            shrunk = self.wait(splitctl, alive, "READY at world 12 in a later epoch",
                               lambda s: s["state"] == "READY" and s["world_size"] == 12
                               and s["epoch"] > stuck["epoch"], timeout=60)
            self.assertEqual(shrunk["lost_members"], AGENTS_PER_HOST)
            abandoned = [name for name, _ in alive if name.startswith("agent-")
                         and "abandoning the epoch during bootstrap" in
                         open(os.path.join(self.dir, name + ".log")).read()]
            self.assertGreater(len(abandoned), 0)

    def test_the_daemons_host_cut_off_then_healed_changes_nothing(self):
        # The daemon hears no member while its host is cut off: it holds them all (declares
        # none lost), the agents keep their groups, and once healed nothing re-forms.
        with self.bed() as bed:
            splitctl, alive = self.start(bed, TOPOLOGY.format(method="split",
                                                              elastic=ELASTIC))
            ready = self.wait(splitctl, alive, "READY at world 16",
                              lambda s: s["state"] == "READY" and s["world_size"] == 16)
            plans = self.plan_files()
            self.assertEqual({(e, f, st) for e, f, st in plans.values()},
                             {(ready["epoch"], ready["fingerprint"], "READY")})
            bed.cut(0)
            held = self.wait(splitctl, alive, "every member held past its 2 s lease",
                             lambda s: s["held_members"] == 16)
            time.sleep(3)  # well past another lease
            bed.heal(0)
            heard = self.wait(splitctl, alive, "the members heard again",
                              lambda s: s["held_members"] == 0)
            time.sleep(3)  # more than a whole new lease: a member not heard again is lost
            after = json.loads(splitctl("status", "hosts", "-o", "json").stdout)
            for status in (held, heard, after):
                self.assertEqual((status["state"], status["epoch"], status["world_size"],
                                  status["lost_members"]),
                                 ("READY", ready["epoch"], 16, 0))
            self.assertEqual(self.plan_files(), plans)
            for name, proc in alive:
                self.assertIsNone(proc.poll(), f"{name} exited")

    def test_the_daemon_killed_in_each_phase_comes_back_with_agents_on_other_hosts(self):
        # kill -9 of the daemon (state in --data_dir) while the agents register, as soon as
        # the plan is out and after READY; restarted on the same address, the agents on the
        # other hosts reconnect with their sessions and the cluster ends READY.
        phases = {
            "registering": lambda s: s["registered_members"] >= 4,
            "planned": lambda s: s["state"] not in ("PENDING",),
            "ready": lambda s: s["state"] == "READY",
        }
        for phase, reached in phases.items():
            with self.subTest(phase=phase), self.bed() as bed:
                splitctl, alive = self.start(bed, TOPOLOGY.format(method="split",
                                                                  elastic=ELASTIC))
                before = self.wait(splitctl, alive, phase, reached)
                self.restart_daemon(bed, alive)
                after = self.wait(splitctl, alive, "READY after the restart",
                                  lambda s: s["state"] == "READY")
                self.assertEqual(after["world_size"], 16)
                self.assertEqual(after["lost_members"], 0)
                self.assertEqual(after["registered_members"], 16)
                if phase == "ready":
                    # Nothing re-formed: the same epoch and every member on its rank.
                    self.assertEqual(after["epoch"], before["epoch"])
                    self.assertEqual(ranks(after), ranks(before))
                plans = self.plan_files()
                self.assertEqual({(e, f, st) for e, f, st in plans.values()},
                                 {(after["epoch"], after["fingerprint"], "READY")})


def ranks(status):
    return {m["member_id"]: m["rank"] for m in status["members"]}


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
