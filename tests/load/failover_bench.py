#!/usr/bin/env python3
"""Failover of daemon replicas over etcd: kill -9 of the leader to the first call a new leader
answers, and to every agent's heartbeat answered again.

Each trial: a fresh etcd (one member, fsync on), three splitd replicas (--etcd_endpoints,
--leader_ttl_ms), a topology (tp 2 x dp AGENTS/2, method split, cpu:gloo) and AGENTS real
splitd-agents given the three addresses, until READY. Then SIGKILL of the leader at t0, and
  - leader_s: t0 to the first `splitctl get clusters` (polled every 20 ms, on each surviving
    replica's own address) that a new leader answers;
  - led_s: t0 to the new leader's "leading with term" log line (it then loads the state);
  - first_hb_s / all_hb_s: t0 to the first and to the last member whose heartbeat the new leader
    answered (its last_seen in the status moves past the moment the new leader loaded the state;
    agents heartbeat every 2 s, a fifth of the default lease, so this includes up to one
    interval);
  - the state after it: READY at the same epoch with every member (nothing acknowledged lost,
    no group formed again).
Prints one line per trial and the medians.

Usage (binaries built with -c opt):
  tests/load/failover_bench.py --bin "$(bazel info -c opt bazel-bin)" --trials 10
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from etcd_procs import Etcd  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "netns"))
from campaign import event_time  # noqa: E402

TOPOLOGY = """cluster: ha
dims:
  - {{name: tp, size: 2}}
  - {{name: dp, size: {dp}}}
method: split
backend: "cpu:gloo"
"""


def wait(condition, what, timeout=60, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError("timed out waiting for " + what)


def splitctl(bindir, addr, *args, stdin=None, timeout_s="1"):
    return subprocess.run([os.path.join(bindir, "client/splitctl"), "--addr", addr,
                           "--timeout", timeout_s, *args], input=stdin, capture_output=True,
                          text=True)


def log_times(path, pattern):
    """Wall-clock times (s since the epoch) of the log lines matching `pattern`."""
    times = []
    with open(path, errors="replace") as f:
        for line in f:
            if re.search(pattern, line):
                stamp = datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
                times.append(stamp.timestamp())
    return times


def trial(args, workdir):
    etcd = Etcd(workdir, 1)
    procs = []

    def spawn(name, argv):
        with open(os.path.join(workdir, name + ".log"), "wb") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        replicas, ports = [], []
        for i in range(3):
            port_file = os.path.join(workdir, "port-%d" % i)
            replicas.append(spawn("splitd-%d" % i, [
                os.path.join(args.bin, "daemon/splitd"), "--listen=127.0.0.1:0",
                "--port_file=" + port_file, "--etcd_endpoints=" + etcd.endpoints(),
                "--leader_ttl_ms=%d" % args.ttl_ms]))
            ports.append(wait(lambda: os.path.exists(port_file) and
                              open(port_file).read().strip(), "a port file"))
        addrs = ",".join(ports)
        wait(lambda: splitctl(args.bin, addrs, "apply", "-f", "-",
                              stdin=TOPOLOGY.format(dp=args.agents // 2)).returncode == 0,
             "the topology applied")
        for i in range(args.agents):
            os.makedirs(os.path.join(workdir, "a%d" % i), exist_ok=True)
            spawn("agent-%d" % i, [
                os.path.join(args.bin, "worker/splitd-agent"), "--daemon", addrs, "--cluster",
                "ha", "--node", "node-0", "--local_index", str(i), "--pod", "agent-%d" % i,
                "--host", "127.0.0.1", "--plan_file", os.path.join(workdir, "a%d" % i, "plan.json"),
                "--timeout_ms", "30000"])

        def status():
            done = splitctl(args.bin, addrs, "status", "ha", "-o", "json", timeout_s="2")
            return json.loads(done.stdout) if done.returncode == 0 else None
        before = wait(lambda: (lambda s: s if s and s["state"] == "READY" else None)(status()),
                      "READY")
        leader = next(i for i in range(3) if splitctl(args.bin, ports[i], "get",
                                                        "clusters").returncode == 0)
        time.sleep(args.settle_s)
        t0 = time.time()
        replicas[leader].send_signal(signal.SIGKILL)
        replicas[leader].wait()
        others = [i for i in range(3) if i != leader]
        new = wait(lambda: next((i for i in others if splitctl(
            args.bin, ports[i], "get", "clusters", timeout_s="0.5").returncode == 0), None),
            "a new leader", interval=0.02)
        leader_s = time.time() - t0
        log = os.path.join(workdir, "splitd-%d.log" % new)
        led_at = log_times(log, "leading with term")[-1]
        # Each member's first heartbeat the new leader answered: its last_seen moves past the
        # moment the new leader loaded the state, which gave every member that last_seen and is
        # before the "recovered" line (whose time is cut to the millisecond).
        loaded_at = wait(lambda: log_times(log, "recovered"), "the new leader's state")[-1] + 0.001
        answered = {}
        deadline = time.monotonic() + 20
        while len(answered) < args.agents and time.monotonic() < deadline:
            s = status()
            for m in (s or {}).get("members", []):
                seen = event_time(m.get("last_seen", ""))
                if m["member_id"] not in answered and seen > loaded_at:
                    answered[m["member_id"]] = seen - t0
            time.sleep(0.05)
        time.sleep(args.ttl_ms / 1000 + 3)
        after = wait(lambda: (lambda s: s if s and s["state"] == "READY" else None)(status()),
                     "READY after the failover")
        formed = sum(len(log_times(os.path.join(workdir, "agent-%d.log" % i), "groups formed"))
                     for i in range(args.agents))
        hb = sorted(answered.values())
        return {
            "leader_s": leader_s,
            "led_s": led_at - t0,
            "first_hb_s": hb[0] if hb else None,
            "all_hb_s": hb[-1] if len(hb) == args.agents else None,
            "same_epoch": after["epoch"] == before["epoch"],
            "members": after["registered_members"], "lost": after["lost_members"],
            "groups_formed": formed, "old_leader": leader, "new_leader": new,
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        etcd.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--ttl_ms", type=int, default=3000)
    parser.add_argument("--settle_s", type=float, default=1.0,
                        help="after READY, before the kill")
    args = parser.parse_args()
    rows = []
    for n in range(args.trials):
        workdir = tempfile.mkdtemp(prefix="splitd-failover-")
        try:
            row = trial(args, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        rows.append(row)
        print("trial %d: %s" % (n + 1, json.dumps(row)), flush=True)

    def median(key):
        values = [r[key] for r in rows if r[key] is not None]
        return statistics.median(values) if values else float("nan")
    print("trials %d, agents %d, TTL %d ms" % (len(rows), args.agents, args.ttl_ms))
    print("median leader_s %.3f [min %.3f, max %.3f]" % (
        median("leader_s"), min(r["leader_s"] for r in rows), max(r["leader_s"] for r in rows)))
    print("median led_s %.3f, median first_hb_s %.3f, median all_hb_s %.3f" % (
        median("led_s"), median("first_hb_s"), median("all_hb_s")))
    print("every trial: same epoch %s, members %s, lost %s, groups formed %s" % (
        all(r["same_epoch"] for r in rows), sorted({r["members"] for r in rows}),
        sorted({r["lost"] for r in rows}), sorted({r["groups_formed"] for r in rows})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
