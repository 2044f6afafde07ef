"""Real etcd members (Debian's /usr/bin/etcd) for the Python tests and benchmarks: each on free
127.0.0.1 ports with a data directory of its own, --unsafe-no-fsync unless fsync is asked for,
killed with SIGKILL by stop()."""

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

ETCD = "/usr/bin/etcd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    def __init__(self, directory, members=1, fsync=False):
        self.dir = directory
        self.fsync = fsync
        self.names = [f"e{i}" for i in range(members)]
        self.client = [free_port() for _ in self.names]
        self.peer = [free_port() for _ in self.names]
        self.procs = [None] * members
        self.token = f"splitd-py-{os.getpid()}-{self.client[0]}"
        self.initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer))
        for i in range(members):
            self.start(i, fresh=True)
        self.wait_ready()

    def endpoints(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.client)

    def start(self, i, fresh=False):
        client = f"http://127.0.0.1:{self.client[i]}"
        peer = f"http://127.0.0.1:{self.peer[i]}"
        with open(os.path.join(self.dir, f"etcd-{i}.log"), "ab") as log:
            self.procs[i] = subprocess.Popen([
                ETCD, "--name", self.names[i], "--data-dir", os.path.join(self.dir, self.names[i]),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster-token", self.token, "--initial-cluster", self.initial,
                "--initial-cluster-state", "new" if fresh else "existing",
                "--log-level", "warn", "--heartbeat-interval", "100", "--election-timeout",
                "1000"] + ([] if self.fsync else ["--unsafe-no-fsync"]),
                stdout=log, stderr=subprocess.STDOUT)

    def kill(self, i):
        if self.procs[i] is not None and self.procs[i].poll() is None:
            self.procs[i].send_signal(signal.SIGKILL)
            self.procs[i].wait()
        self.procs[i] = None

    def call(self, path, body, i=None):
        """POSTs `body` to etcd's JSON gateway of member i (default: the first running one)."""
        if i is None:
            i = next(j for j in range(len(self.procs)) if self.procs[j] is not None)
        request = urllib.request.Request(f"http://127.0.0.1:{self.client[i]}{path}",
                                         data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    def revision(self):
        key = base64.b64encode(b"/").decode()
        return int(self.call("/v3/kv/range", {"key": key})["header"]["revision"])

    def compact(self, revision):
        self.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    def healthy(self, i):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client[i]}/health",
                                        timeout=1) as answer:
                return b'"true"' in answer.read()
        except OSError:
            return False

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(self.procs[i] is not None and self.healthy(i) for i in range(len(self.procs))):
                return
            time.sleep(0.1)
        raise AssertionError(f"etcd not ready after {timeout} s")

    def stop(self):
        for i in range(len(self.procs)):
            self.kill(i)
