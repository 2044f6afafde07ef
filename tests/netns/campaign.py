"""A seeded fault campaign on the multi-host bed (bed.py): the daemon on host 0 with a durable
--data_dir, agents on the other hosts, and for --duration seconds --steps faults drawn from --seed:
kill -9 and SIGSTOP/SIGCONT of agents and of the daemon, hosts cut off and healed (the daemon's
too), and Reconfigure calls resizing dp, every kind once in each round of six steps. Killed agents
come back as new processes (as a pod restart would); every fault is undone after a while drawn
from the same seed. Meanwhile an observer records the cluster's status and every agent's plan file; once the faults stop and the
cluster is READY again, history.py checks the record. Needs root and iproute2.

    python3 tests/netns/campaign.py --bin bazel-bin --seed 7 --steps 40 --duration 120 --out DIR

With --replicas 3 the daemon is three replicas over a three-member etcd (replica i and etcd
member i on a host of their own, hosts 0 and the two after the agents' hosts), agents and splitctl
are given the three addresses, and the daemon faults hit a replica drawn from the seed (the leader
or a follower) while kill_etcd kills an etcd member (one at a time) and restarts it later. The
replicas' audit trails are merged by time for the checks.

Exits 0 when every check holds; DIR keeps the processes' logs, audit.jsonl and history.json.
"""

import argparse
import calendar
import heapq
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bed as netns_bed  # noqa: E402
import history  # noqa: E402

CLUSTER = "campaign"
PORT = 7070
ACTIONS = ["kill_agent", "stop_agent", "kill_daemon", "stop_daemon", "cut_host", "reconfigure"]
REPLICA_ACTIONS = ACTIONS + ["kill_etcd"]
ETCD_CLIENT, ETCD_PEER = 2379, 2380


def topology(hosts, per_host):
    return (f"cluster: {CLUSTER}\n"
            f"dims:\n  - {{name: tp, size: {per_host}}}\n  - {{name: dp, size: {hosts}}}\n"
            f"nodes: {{gpus_per_node: {per_host}}}\nmethod: split\nbackend: \"cpu:gloo\"\n"
            f"elastic: {{min: 1, max: {hosts}, heartbeat_interval_ms: 200, "
            f"lease_timeout_ms: 2000, retries: 3, retry_delay_ms: 1000}}\n")


class Campaign:
    def __init__(self, args, bed):
        self.args = args
        self.bed = bed
        self.rng = random.Random(args.seed)
        self.out = args.out
        # Hosts of the daemon (or of replica i and etcd member i).
        self.daemon_hosts = [0] if not args.replicas else [0] + [
            1 + args.hosts + i for i in range(args.replicas - 1)]
        self.addr = ",".join(f"{bed.address(h)}:{PORT}" for h in self.daemon_hosts)
        self.procs = {}  # name -> Popen of the current process
        self.stopped = set()  # names of SIGSTOPped processes
        self.cut = set()  # hosts cut off
        self.undo = []  # heap of (time, seq, action, target)
        self.seq = 0
        self.record = {"seed": args.seed, "faults": [], "statuses": [], "plans": [],
                       "restarts": [], "acks": [], "clusters": []}
        self.lock = threading.Lock()
        self.observing = True
        self.spawned = 0
        self.deck = []

    # ---- processes ----

    def bin(self, name):
        return os.path.join(self.args.bin, name)

    def daemons(self):
        """Names of the daemon's processes: "splitd", or "splitd-0".. for replicas."""
        if not self.args.replicas:
            return ["splitd"]
        return [f"splitd-{i}" for i in range(self.args.replicas)]

    def start_daemon(self, name="splitd"):
        self.spawned += 1
        if not self.args.replicas:
            self.procs["splitd"] = self.bed.spawn(0, f"splitd-{self.spawned}", [
                self.bin("daemon/splitd"), "--listen", self.addr, "--plaintext", "--data_dir",
                os.path.join(self.out, "state")], self.out)
            return
        i = int(name.split("-")[1])
        host = self.daemon_hosts[i]
        endpoints = ",".join(f"{self.bed.address(h)}:{ETCD_CLIENT}" for h in self.daemon_hosts)
        self.procs[name] = self.bed.spawn(host, f"{name}-{self.spawned}", [
            self.bin("daemon/splitd"), "--listen", f"{self.bed.address(host)}:{PORT}",
            "--plaintext", "--data_dir", os.path.join(self.out, f"state-{i}"),
            "--etcd_endpoints", endpoints, "--leader_ttl_ms", "2000"], self.out)

    def start_etcd(self, i, fresh=False):
        host = self.daemon_hosts[i]
        ip = self.bed.address(host)
        initial = ",".join(f"e{j}=http://{self.bed.address(h)}:{ETCD_PEER}"
                           for j, h in enumerate(self.daemon_hosts))
        self.spawned += 1
        self.procs[f"etcd-{i}"] = self.bed.spawn(host, f"etcd-{i}-{self.spawned}", [
            "/usr/bin/etcd", "--name", f"e{i}", "--data-dir", os.path.join(self.out, f"etcd-{i}"),
            "--listen-client-urls", f"http://{ip}:{ETCD_CLIENT}",
            "--advertise-client-urls", f"http://{ip}:{ETCD_CLIENT}",
            "--listen-peer-urls", f"http://{ip}:{ETCD_PEER}",
            "--initial-advertise-peer-urls", f"http://{ip}:{ETCD_PEER}",
            "--initial-cluster-token", "campaign", "--initial-cluster", initial,
            "--initial-cluster-state", "new" if fresh else "existing", "--unsafe-no-fsync",
            "--log-level", "warn", "--heartbeat-interval", "100", "--election-timeout", "1000"],
            self.out)

    def agents(self):
        return [f"agent-{h}-{j}" for h in range(1, 1 + self.args.hosts)
                for j in range(self.args.agents_per_host)]

    def start_agent(self, name):
        _, h, j = name.split("-")
        self.spawned += 1
        self.procs[name] = self.bed.spawn(int(h), f"{name}-{self.spawned}", [
            self.bin("worker/splitd-agent"), "--daemon", self.addr, "--plaintext",
            "--cluster", CLUSTER, "--node", f"node-{h}", "--local_index", j, "--pod", name,
            "--host", self.bed.address(int(h)), "--plan_file", self.plan_path(name),
            "--timeout_ms", "30000"], self.out)

    def plan_path(self, name):
        return os.path.join(self.out, "plans", name + ".plan.json")

    def splitctl(self, *args, input=None, timeout=5):
        try:
            return self.bed.run(0, [self.bin("client/splitctl"), "--addr", self.addr,
                                    "--plaintext", *args], input=input, capture_output=True,
                                text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def status(self):
        done = self.splitctl("status", CLUSTER, "-o", "json", timeout=3)
        if done is None or done.returncode != 0:
            return None
        return json.loads(done.stdout)

    # ---- the observer ----

    def observe(self):
        last_status, last_plans = None, {}
        while self.observing:
            status = self.status()
            now = time.monotonic()
            with self.lock:
                if status is not None and status != last_status:
                    self.record["statuses"].append({"t": now, "status": status})
                    last_status = status
                for name in self.agents():
                    plan = read_json(self.plan_path(name))
                    if plan is not None and plan != last_plans.get(name):
                        self.record["plans"].append({"t": now, "agent": name, "plan": plan})
                        last_plans[name] = plan
            time.sleep(0.1)

    # ---- faults ----

    def later(self, delay, action, target):
        self.seq += 1
        heapq.heappush(self.undo, (time.monotonic() + delay, self.seq, action, target))

    def note(self, action, target, **extra):
        with self.lock:
            self.record["faults"].append({"t": time.monotonic(), "action": action,
                                          "target": target, **extra})
        print(f"{time.strftime('%H:%M:%S')} {action} {target} {extra or ''}", flush=True)

    def running(self, names):
        return [n for n in names if n in self.procs and self.procs[n].poll() is None
                and n not in self.stopped]

    def fault(self):
        """One fault. Every kind comes once per len(ACTIONS) steps, in an order drawn from the
        seed; a kind that cannot be done now (the daemon is down) waits for a later step."""
        if not self.deck:
            actions = REPLICA_ACTIONS if self.args.replicas else ACTIONS
            self.deck = self.rng.sample(actions, len(actions))
        for i in range(len(self.deck) - 1, -1, -1):
            if self.apply(self.deck[i]):
                del self.deck[i]
                return

    def apply(self, action):
        r = self.rng
        agents = self.running(self.agents())
        daemons_up = [n for n in self.daemons() if self.procs[n].poll() is None]
        daemon_up = bool(daemons_up)
        if self.args.replicas and action in ("kill_daemon", "stop_daemon", "kill_etcd"):
            return self.apply_replica_fault(action, daemons_up)
        if action == "kill_agent" and agents:
            name = r.choice(agents)
            self.procs[name].kill()
            self.note(action, name)
            self.later(r.uniform(0.5, 3), "restart_agent", name)
        elif action == "stop_agent" and agents:
            name = r.choice(agents)
            self.procs[name].send_signal(signal.SIGSTOP)
            self.stopped.add(name)
            self.note(action, name)
            self.later(r.uniform(0.5, 4), "cont", name)
        elif action == "kill_daemon" and daemon_up:  # stopped or not
            self.kill_daemon()
            self.later(r.uniform(0.2, 2), "restart_daemon", "splitd")
        elif action == "stop_daemon" and daemon_up and "splitd" not in self.stopped:
            self.procs["splitd"].send_signal(signal.SIGSTOP)
            self.stopped.add("splitd")
            self.note(action, "splitd")
            self.later(r.uniform(0.5, 4), "cont", "splitd")
        elif action == "cut_host" and len(self.cut) <= self.args.hosts:
            hosts = 1 + self.args.hosts + max(0, self.args.replicas - 1)
            host = r.choice([h for h in range(hosts) if h not in self.cut])
            self.bed.cut(host)
            self.cut.add(host)
            self.note(action, host)
            self.later(r.uniform(1, 5), "heal", host)
        elif action == "reconfigure":
            self.reconfigure(r.randint(1, self.args.hosts))
        else:
            return False
        return True

    def apply_replica_fault(self, action, up):
        """kill_daemon / stop_daemon of a replica drawn from the seed, or kill_etcd of a member
        while all three run."""
        r = self.rng
        if action == "kill_daemon" and up:
            name = r.choice(up)
            self.kill_daemon(name)
            self.later(r.uniform(0.2, 2), "restart_daemon", name)
        elif action == "stop_daemon" and [n for n in up if n not in self.stopped]:
            name = r.choice([n for n in up if n not in self.stopped])
            self.procs[name].send_signal(signal.SIGSTOP)
            self.stopped.add(name)
            self.note(action, name)
            self.later(r.uniform(0.5, 4), "cont", name)
        elif action == "kill_etcd" and all(self.procs[f"etcd-{i}"].poll() is None
                                           for i in range(self.args.replicas)):
            i = r.randrange(self.args.replicas)
            self.procs[f"etcd-{i}"].kill()
            self.procs[f"etcd-{i}"].wait()
            self.note(action, f"etcd-{i}")
            self.later(r.uniform(0.5, 4), "restart_etcd", f"etcd-{i}")
        else:
            return False
        return True

    def kill_daemon(self, name="splitd"):
        proc = self.procs[name]
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self.stopped.discard(name)
        self.note("kill_daemon", name)
        with self.lock:
            self.record["restarts"].append({"killed": time.monotonic(), "started": None,
                                            "name": name})

    def reconfigure(self, dp):
        done = self.splitctl("reconfigure", CLUSTER, "--set", f"dp={dp}", timeout=10)
        acked = done is not None and done.returncode == 0
        self.note("reconfigure", f"dp={dp}", acknowledged=acked,
                  answer=(done.stdout + done.stderr).strip()[-200:] if done else "timeout")
        if acked:
            with self.lock:
                self.record["acks"].append({"t": time.monotonic(), "dp": dp})
        elif done is None or "UNAVAILABLE" in done.stderr or "DEADLINE" in done.stderr:
            # Sent, but its outcome is unknown (the leader may have applied it and died, or the
            # answer was lost): either size may stand afterwards.
            with self.lock:
                self.record.setdefault("unknown", []).append({"t": time.monotonic(), "dp": dp})

    def run_undo(self, action, target):
        if action == "restart_agent":
            self.start_agent(target)
        elif action == "cont":
            if target in self.procs and self.procs[target].poll() is None:
                self.procs[target].send_signal(signal.SIGCONT)
            self.stopped.discard(target)
        elif action == "restart_daemon":
            self.start_daemon(target)
            with self.lock:
                restart = [r for r in self.record["restarts"] if r.get("name") == target][-1]
                restart["started"] = time.monotonic()
            self.later(3 if not self.args.replicas else 5, "read_cluster", "splitd")
        elif action == "restart_etcd":
            self.start_etcd(int(target.split("-")[1]))
        elif action == "heal":
            self.bed.heal(target)
            self.cut.discard(target)
        elif action == "read_cluster":
            done = self.splitctl("get", "cluster", CLUSTER, "-o", "json")
            if done is not None and done.returncode == 0:
                with self.lock:
                    self.record["clusters"].append({"t": time.monotonic(),
                                                    "cluster": json.loads(done.stdout)})
            return
        self.note(action, target)

    def restart_exited_agents(self):
        """Agents that exited on their own come back, as a pod would (not counted a fault)."""
        for name in self.agents():
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None and not any(
                    u[2] == "restart_agent" and u[3] == name for u in self.undo):
                self.note("agent_exited", name, code=proc.returncode)
                self.later(0.5, "restart_agent", name)

    # ---- the run ----

    def run(self):
        os.makedirs(os.path.join(self.out, "plans"), exist_ok=True)
        if self.args.replicas:
            for i in range(self.args.replicas):
                self.start_etcd(i, fresh=True)
        for name in self.daemons():
            self.start_daemon(name)
        wait_for(lambda: self.status_ready_to_apply(), "the daemon to serve", 30)
        applied = self.splitctl("apply", "-f", "-",
                                input=topology(self.args.hosts, self.args.agents_per_host))
        if applied is None or applied.returncode != 0:
            raise RuntimeError(f"apply failed: {applied and applied.stderr}")
        self.record["acks"].append({"t": time.monotonic(), "dp": self.args.hosts})
        for name in self.agents():
            self.start_agent(name)
        observer = threading.Thread(target=self.observe, daemon=True)
        observer.start()
        wait_for(lambda: (self.status() or {}).get("state") == "READY", "the first READY", 60)
        self.note("ready", CLUSTER)
        gap = self.args.duration / max(1, self.args.steps)
        next_fault = time.monotonic()
        for _ in range(self.args.steps):
            while time.monotonic() < next_fault:
                self.step_undo(until=next_fault)
            self.fault()
            self.restart_exited_agents()
            next_fault += self.rng.uniform(0.5, 1.5) * gap
        self.note("faults_stop", CLUSTER)
        while self.undo:  # everything undone now, in order
            _, _, action, target = heapq.heappop(self.undo)
            self.run_undo(action, target)
        self.restart_exited_agents()
        while self.undo:
            _, _, action, target = heapq.heappop(self.undo)
            self.run_undo(action, target)
        self.reconfigure(self.args.hosts)  # the full size once more: every agent takes part
        final = self.settle()
        self.observing = False
        observer.join()
        self.run_undo("read_cluster", "splitd")
        self.record["final"] = final
        self.record["final_plans"] = {n: read_json(self.plan_path(n)) for n in self.agents()}
        self.record["audit"] = self.audit()
        with open(os.path.join(self.out, "history.json"), "w") as f:
            json.dump(self.record, f, indent=1)
        return history.check(self.record)

    def audit(self):
        """audit.jsonl: the daemon's, or every replica's merged in time order (each leader's
        events follow the one before it)."""
        if not self.args.replicas:
            return read_lines(os.path.join(self.out, "state", "audit.jsonl"))
        events = []
        for i in range(self.args.replicas):
            events += read_lines(os.path.join(self.out, f"state-{i}", "audit.jsonl"))
        return sorted(events, key=lambda e: event_time(e.get("time", "")))

    def step_undo(self, until):
        if self.undo and self.undo[0][0] <= time.monotonic():
            _, _, action, target = heapq.heappop(self.undo)
            self.run_undo(action, target)
        else:
            time.sleep(min(0.05, max(0.0, until - time.monotonic())))

    def status_ready_to_apply(self):
        done = self.splitctl("get", "clusters")
        return done is not None and done.returncode == 0

    def settle(self):
        """Waits (up to --settle_s) for READY with every plan file of the epoch written and no
        member held; returns the last status."""
        deadline = time.monotonic() + self.args.settle_s
        status = None
        while time.monotonic() < deadline:
            self.restart_exited_agents()
            while self.undo and self.undo[0][0] <= time.monotonic():
                _, _, action, target = heapq.heappop(self.undo)
                self.run_undo(action, target)
            status = self.status()
            if status and status["state"] == "READY" and status.get("held_members", 0) == 0 \
                    and not history.missing_plans(status, self.current_plans()):
                return status
            time.sleep(0.2)
        return status

    def current_plans(self):
        return {n: read_json(self.plan_path(n)) for n in self.agents()}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def event_time(stamp):
    """Seconds of an RFC 3339 UTC time as protobuf's JSON writes it (0 when missing)."""
    if not stamp:
        return 0.0
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float("0." + fraction) if fraction else 0.0)


def read_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
    except OSError:
        pass
    return out


def wait_for(condition, what, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="a bazel-bin with the splitd binaries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60, help="seconds of faults")
    parser.add_argument("--hosts", type=int, default=3, help="agent hosts (dp's size)")
    parser.add_argument("--agents_per_host", type=int, default=4, help="tp's size")
    parser.add_argument("--replicas", type=int, default=0, choices=(0, 3),
                        help="3: the daemon as three replicas over a three-member etcd")
    parser.add_argument("--settle_s", type=float, default=90,
                        help="how long the cluster may take to be READY once faults stop")
    parser.add_argument("--out", required=True, help="a directory for logs and the history")
    args = parser.parse_args(argv)
    args.bin = os.path.abspath(args.bin)
    os.makedirs(args.out, exist_ok=True)
    extra = max(0, args.replicas - 1)
    with netns_bed.Bed(hosts=1 + args.hosts + extra) as bed:
        campaign = Campaign(args, bed)
        try:
            violations = campaign.run()
        finally:
            for proc in campaign.procs.values():  # stopped processes cannot take SIGTERM
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
    for line in violations:
        print("VIOLATION " + line)
    with open(os.path.join(args.out, "history.json")) as f:
        print(json.dumps(history.summary(json.load(f))))
    print(f"seed {args.seed}: {len(violations)} violations; history in {args.out}/history.json")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
