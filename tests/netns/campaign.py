"""A seeded fault campaign on the multi-host bed (bed.py): the daemon on host 0 with a durable
--data_dir, agents on the other hosts, and for --duration seconds --steps faults drawn from --seed:
kill -9 and SIGSTOP/SIGCONT of agents and of the daemon, hosts cut off and healed (the daemon's
too), and Reconfigure calls resizing dp, every kind once in each round of six steps. Killed agents
come back as new processes (as a pod restart would); every fault is undone after a while drawn
from the same seed. Meanwhile an observer records the cluster's status and every agent's plan file; once the faults stop and the
cluster is READY again, history.py checks the record. Needs root and iproute2.

    python3 tests/netns/campaign.py --bin bazel-bin --seed 7 --steps 40 --duration 120 --out DIR

Exits 0 when every check holds; DIR keeps the processes' logs, audit.jsonl and history.json.
"""

import argparse
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
        self.addr = f"{bed.address(0)}:{PORT}"
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

    def start_daemon(self):
        self.spawned += 1
        self.procs["splitd"] = self.bed.spawn(0, f"splitd-{self.spawned}", [
            self.bin("daemon/splitd"), "--listen", self.addr, "--plaintext", "--data_dir",
            os.path.join(self.out, "state")], self.out)

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
            self.deck = self.rng.sample(ACTIONS, len(ACTIONS))
        for i in range(len(self.deck) - 1, -1, -1):
            if self.apply(self.deck[i]):
                del self.deck[i]
                return

    def apply(self, action):
        r = self.rng
        agents = self.running(self.agents())
        daemon_up = self.procs["splitd"].poll() is None
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
            host = r.choice([h for h in range(1 + self.args.hosts) if h not in self.cut])
            self.bed.cut(host)
            self.cut.add(host)
            self.note(action, host)
            self.later(r.uniform(1, 5), "heal", host)
        elif action == "reconfigure":
            self.reconfigure(r.randint(1, self.args.hosts))
        else:
            return False
        return True

    def kill_daemon(self):
        proc = self.procs["splitd"]
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self.stopped.discard("splitd")
        self.note("kill_daemon", "splitd")
        with self.lock:
            self.record["restarts"].append({"killed": time.monotonic(), "started": None})

    def reconfigure(self, dp):
        done = self.splitctl("reconfigure", CLUSTER, "--set", f"dp={dp}", timeout=10)
        acked = done is not None and done.returncode == 0
        self.note("reconfigure", f"dp={dp}", acknowledged=acked,
                  answer=(done.stdout + done.stderr).strip()[-200:] if done else "timeout")
        if acked:
            with self.lock:
                self.record["acks"].append({"t": time.monotonic(), "dp": dp})

    def run_undo(self, action, target):
        if action == "restart_agent":
            self.start_agent(target)
        elif action == "cont":
            if target in self.procs and self.procs[target].poll() is None:
                self.procs[target].send_signal(signal.SIGCONT)
            self.stopped.discard(target)
        elif action == "restart_daemon":
            self.start_daemon()
            with self.lock:
                self.record["restarts"][-1]["started"] = time.monotonic()
            self.later(3, "read_cluster", "splitd")
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
        self.start_daemon()
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
        self.record["audit"] = read_lines(os.path.join(self.out, "state", "audit.jsonl"))
        with open(os.path.join(self.out, "history.json"), "w") as f:
            json.dump(self.record, f, indent=1)
        return history.check(self.record)

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
    parser.add_argument("--settle_s", type=float, default=90,
                        help="how long the cluster may take to be READY once faults stop")
    parser.add_argument("--out", required=True, help="a directory for logs and the history")
    args = parser.parse_args(argv)
    args.bin = os.path.abspath(args.bin)
    os.makedirs(args.out, exist_ok=True)
    with netns_bed.Bed(hosts=1 + args.hosts) as bed:
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
