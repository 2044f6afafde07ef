"""Real splitd processes for the Python tests: a daemon on 127.0.0.1 port 0, splitd-agents each
with a plan file and a workload socket in a directory of their own, workload processes, and
splitctl. Every process started here is stopped by stop() (SIGCONT first, for a stopped one).

Needs SPLITD_BIN (a bazel-bin holding daemon/splitd, worker/splitd-agent, client/splitctl).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "..", "..", "client", "python")
DEADLINE_S = 120


def read_text(path):
    with open(path) as f:
        return f.read()


def poll(condition, what, alive=(), timeout=DEADLINE_S, interval=0.05):
    """Waits for `condition()` to be truthy and returns its value; fails at once when a process
    of `alive` (name, Popen) exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for name, proc in alive:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode} while waiting for "
                                     f"{what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def logs_tail(directory, lines=15):
    """The last `lines` lines of every .log and .jsonl file of `directory`, each under its name."""
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".log") or name.endswith(".jsonl"):
            with open(os.path.join(directory, name), errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
            out.append(f"--- {name}\n" + "\n".join(tail))
    return "\n".join(out)


def binaries():
    bindir = os.environ.get("SPLITD_BIN")
    found = {name: os.path.join(bindir or "", path) for name, path in
             [("splitd", "daemon/splitd"), ("agent", "worker/splitd-agent"),
              ("splitctl", "client/splitctl")]}
    missing = [p for p in found.values() if not os.access(p, os.X_OK)]
    if not bindir or missing:
        raise AssertionError(f"SPLITD_BIN must name a bazel-bin with the splitd binaries; "
                             f"missing: {missing or 'SPLITD_BIN'}")
    return found


def require_torch():
    probe = subprocess.run([sys.executable, "-c", "import torch.distributed as d; "
                            "assert d.is_available() and d.is_gloo_available()"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise AssertionError(f"{sys.executable} cannot import torch with Gloo "
                             f"(Debian: apt-get install python3-torch): {probe.stderr[-300:]}")


class Cluster:
    """One daemon with one cluster, and the processes around it."""

    def __init__(self, name, prefix="splitd-py-"):
        self.name = name
        self.bin = binaries()
        # Short: a Unix socket path must fit in 108 bytes.
        self.dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.procs = []  # (name, Popen)
        self.daemon = None
        self.addr = None

    # ---- processes ----

    def spawn(self, name, argv, env=None):
        with open(os.path.join(self.dir, name + ".log"), "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append((name, proc))
        return proc

    def start_daemon(self):
        port_file = os.path.join(self.dir, "port")
        self.daemon = self.spawn("splitd", [self.bin["splitd"], "--listen", "127.0.0.1:0",
                                            "--port_file", port_file])
        poll(lambda: os.path.exists(port_file) and read_text(port_file).strip(),
             "the daemon's port file", alive=[("splitd", self.daemon)])
        self.addr = read_text(port_file).strip()

    def apply(self, topology):
        done = self.splitctl("apply", "-f", "-", input=topology)
        if done.returncode != 0:
            raise AssertionError(f"splitctl apply failed: {done.stderr}")

    def agent_dir(self, i):
        return os.path.join(self.dir, f"agent-{i}")

    def plan_file(self, i):
        return os.path.join(self.agent_dir(i), "plan.json")

    def socket(self, i):
        """The agent's workload socket: its default beside plan.json."""
        return os.path.join(self.agent_dir(i), "plan.sock")

    def start_agent(self, i, extra=(), socket_flag=True):
        """Agent `i`; with socket_flag, --workload_socket names socket(i), else the agent picks
        its default."""
        os.makedirs(self.agent_dir(i), exist_ok=True)
        flags = ["--workload_socket", self.socket(i)] if socket_flag else []
        return self.spawn(f"agent-{i}", [
            self.bin["agent"], "--daemon", self.addr, "--cluster", self.name, "--node", "node-0",
            "--local_index", str(i), "--pod", f"agent-{i}", "--host", "127.0.0.1",
            "--plan_file", self.plan_file(i), "--timeout_ms", "30000", *flags, *extra])

    def alive(self):
        """(name, Popen) of every process that must stay up."""
        return list(self.procs)

    def stop(self):
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def remove(self):
        if os.environ.get("SPLITD_KEEP_LOGS"):
            print(f"logs kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs_tail(self, lines=15):
        return logs_tail(self.dir, lines)

    # ---- splitctl ----

    def splitctl(self, *args, input=None):
        return subprocess.run([self.bin["splitctl"], "--addr", self.addr, *args], input=input,
                              capture_output=True, text=True, timeout=60)

    def status(self):
        done = self.splitctl("status", self.name, "-o", "json")
        if done.returncode != 0:
            raise AssertionError(f"splitctl status failed: {done.stderr}")
        return json.loads(done.stdout)

    def records(self, path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]


def workload_env(extra=None):
    """The environment of a workload process: no MASTER_ADDR/MASTER_PORT (the world's store is
    the agent's) and this tree's client on the path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "SPLITD_SOCKET")}
    env["PYTHONPATH"] = CLIENT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


class ClusterTestCase(unittest.TestCase):
    """Tests over one Cluster per class: setUpClass makes it (named NAME, in a directory starting
    with PREFIX) and calls the class's _run() to bring it up; any failure there stops it, prints
    its logs and removes it before re-raising. tearDownClass stops and removes it."""
    NAME = "cluster"
    PREFIX = "splitd-"

    @classmethod
    def _prepare(cls):
        """Runs before the cluster is made (checks such as require_torch)."""

    @classmethod
    def _run(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls._prepare()
        cls.cluster = Cluster(cls.NAME, prefix=cls.PREFIX)
        try:
            cls._run()
        except BaseException:
            cls.cluster.stop()
            print(cls.cluster.logs_tail(), file=sys.stderr)
            cls.cluster.remove()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()
        cls.cluster.remove()
