#!/usr/bin/env python3
"""CPU groups at larger worlds: agent start to READY with Gloo on one host, and where the time
goes.

For each world size W (TP2 PP2 DP=W/4), each method (split, init) and each run: a fresh daemon
(with --metrics_listen), the topology applied, then W splitd-agent processes started at t0 on
127.0.0.1; READY is polled every 50 ms. Per run it records
  - ready_s: t0 to the status READY;
  - the phases, the slowest rank's (bootstrap_ms, split_ms, validate_ms from the status);
  - agent CPU: user + system seconds of all agents, read from /proc just before READY's agents
    are stopped (the sum over W processes);
  - the kernel's TCP counters over the run (/proc/net/netstat, /proc/net/snmp): ListenOverflows
    and ListenDrops (a full accept backlog), TCPSynRetrans (a SYN sent again: one second of
    wait each, the first time), ActiveOpens (connects started);
  - the daemon's rendezvous calls by method (splitd_rpc_requests_total of KvGet, KvSet, KvAdd,
    KvCheck, KvCompareSet).
Prints one line per run and the medians per (world, method).

Usage (binaries built with -c opt):
  tests/bench/gloo_world_bench.py --bin "$(bazel info -c opt bazel-bin)" --worlds 32,64,128 --runs 3
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
from procs import stop, wait_for_port  # noqa: E402

sys.path.insert(0, HERE)
from gloo_groups_bench import TOPOLOGY  # noqa: E402  (TP2 PP2 DP=world/4, three kinds)

TCP_COUNTERS = ["ListenOverflows", "ListenDrops", "TCPSynRetrans", "ActiveOpens"]
KV_METHODS = ["KvGet", "KvSet", "KvAdd", "KvCheck", "KvCompareSet"]


def tcp_counters():
    """The kernel's TcpExt and Tcp counters named in TCP_COUNTERS."""
    values = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        with open(path) as f:
            lines = f.read().splitlines()
        for names, numbers in zip(lines[::2], lines[1::2]):
            for name, number in zip(names.split()[1:], numbers.split()[1:]):
                if name in TCP_COUNTERS:
                    values[name] = int(number)
    return values


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def switches_and_threads(pid):
    """(voluntary + involuntary context switches, threads) of a process."""
    out = {"switches": 0, "threads": 0}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    out["switches"] += int(value)
                elif key == "Threads":
                    out["threads"] = int(value)
    except OSError:
        pass
    return out


def kv_calls(metrics_addr):
    with urllib.request.urlopen("http://%s/metrics" % metrics_addr, timeout=5) as answer:
        text = answer.read().decode()
    calls = {}
    for method in KV_METHODS:
        total = 0
        pattern = r'splitd_rpc_requests_total\{method="/splitd.v1.AgentService/%s"[^}]*\} (\d+)'
        for match in re.finditer(pattern % method, text):
            total += int(match.group(1))
        calls[method] = total
    return calls


def run(bindir, world, method, workdir):
    port_file = os.path.join(workdir, "port")
    metrics_file = os.path.join(workdir, "metrics_port")
    daemon = subprocess.Popen(
        [os.path.join(bindir, "daemon/splitd"), "--listen=127.0.0.1:0", "--port_file=" + port_file,
         "--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + metrics_file],
        stderr=open(os.path.join(workdir, "splitd.log"), "wb"))
    agents = []
    try:
        addr = wait_for_port(port_file, daemon, timeout=5)
        metrics = wait_for_port(metrics_file, daemon, timeout=5)
        splitctl = [os.path.join(bindir, "client/splitctl"), "--addr", addr]
        subprocess.run(splitctl + ["apply", "-f", "-"], check=True, stdout=subprocess.DEVNULL,
                       input=TOPOLOGY.format(method=method, dp=world // 4).encode())
        before = tcp_counters()
        t0 = time.monotonic()
        for rank in range(world):
            agents.append(subprocess.Popen(
                [os.path.join(bindir, "worker/splitd-agent"), "--daemon=" + addr,
                 "--cluster=bench", "--node=node-0", "--local_index=%d" % rank,
                 "--pod=agent-%d" % rank, "--host=127.0.0.1", "--log_level=warn",
                 "--timeout_ms=120000"],
                stderr=open(os.path.join(workdir, "agent-%d.log" % rank), "wb")))
        status = None
        while time.monotonic() - t0 < 300:
            done = subprocess.run(splitctl + ["status", "bench", "-o", "json"],
                                  capture_output=True)
            if done.returncode == 0:
                status = json.loads(done.stdout)
                if status["state"] in ("READY", "FAILED"):
                    break
            time.sleep(0.05)
        ready_s = time.monotonic() - t0
        after = tcp_counters()
        cpu = sum(cpu_seconds(a.pid) for a in agents)
        counts = [switches_and_threads(a.pid) for a in agents]
        if status is None or status["state"] != "READY":
            raise RuntimeError("not READY: %s" % (status or {}).get("reason"))
        timings = [m["timings"] for m in status["members"] if m["rank"] >= 0]
        return {
            "world": world, "method": method, "ready_s": ready_s,
            "bootstrap_ms": max(t.get("bootstrap_ms", 0) for t in timings),
            "split_ms": max(t.get("split_ms", 0) for t in timings),
            "validate_ms": max(t.get("validate_ms", 0) for t in timings),
            "agent_cpu_s": cpu,
            "agent_switches": sum(c["switches"] for c in counts),
            "agent_threads_max": max(c["threads"] for c in counts),
            "tcp": {k: after.get(k, 0) - before.get(k, 0) for k in TCP_COUNTERS},
            "kv_calls": kv_calls(metrics),
        }
    finally:
        stop(agents, 20)
        stop([daemon], 20, kill_after=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="bazel-bin of a -c opt build")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worlds", default="32,64,128")
    parser.add_argument("--methods", default="split,init")
    args = parser.parse_args()
    rows = []
    for n in range(args.runs):
        for world in [int(w) for w in args.worlds.split(",")]:
            for method in args.methods.split(","):
                workdir = tempfile.mkdtemp(prefix="splitd-world-")
                try:
                    row = run(args.bin, world, method, workdir)
                except RuntimeError as error:
                    row = {"world": world, "method": method, "failed": str(error)[-300:]}
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                rows.append(row)
                print("run %d: %s" % (n + 1, json.dumps(row)), flush=True)
    print("world | method | ready s | bootstrap ms | split ms | validate ms | agent CPU s | "
          "agent context switches | SYN retrans | listen overflows | connects | Kv calls | "
          "failed runs")
    for world in [int(w) for w in args.worlds.split(",")]:
        for method in args.methods.split(","):
            all_runs = [r for r in rows if r["world"] == world and r["method"] == method]
            mine = [r for r in all_runs if "failed" not in r]
            if not mine:
                print("%d | %s | every run failed" % (world, method))
                continue

            def med(key, sub=None):
                return statistics.median(r[key][sub] if sub else r[key] for r in mine)
            print("%d | %s | %.2f | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f | %.0f | %.0f | %.0f | "
                  "%d of %d" % (
                      world, method, med("ready_s"), med("bootstrap_ms"), med("split_ms"),
                      med("validate_ms"), med("agent_cpu_s"), med("agent_switches"),
                      med("tcp", "TCPSynRetrans"), med("tcp", "ListenOverflows"),
                      med("tcp", "ActiveOpens"),
                      statistics.median(sum(r["kv_calls"].values()) for r in mine),
                      len(all_runs) - len(mine), len(all_runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
