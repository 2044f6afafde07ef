#!/usr/bin/env python3
"""Groups-ready time of splitd agents over Gloo beside PyTorch's Gloo new_group, in one run.

For each world size (TP2 PP2 DP=world/4) and each run, in turn:
  - splitd, method split: a fresh daemon, the topology applied, WORLD agent processes started;
    figures are the agents' own phase timings (status JSON), measured from the moment each agent
    received its plan;
  - splitd, method init: the same with a fresh rendezvous per group;
  - PyTorch: ../shared/bench/torch_gloo_groups_bench.py WORLD 2 2 (world init + new_group for
    every group + one all-reduce per group, timed on rank 0).
Prints one table of medians over the runs and the ratios.

Usage (binaries built with -c opt; see docs/benchmarks.md):
  tests/bench/gloo_groups_bench.py --bin "$(bazel info -c opt bazel-bin)" --runs 5 --worlds 8,16
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TORCH_BENCH = os.path.join(os.path.dirname(ROOT), "shared", "bench", "torch_gloo_groups_bench.py")

sys.path.insert(0, os.path.join(HERE, "..", "testing"))
from procs import stop, wait_for_port  # noqa: E402

TOPOLOGY = """cluster: bench
method: {method}
dims:
  - {{name: tp, size: 2}}
  - {{name: pp, size: 2}}
  - {{name: dp, size: {dp}}}
groups:
  - {{name: tp, dims: [tp]}}
  - {{name: pp, dims: [pp]}}
  - {{name: dp, dims: [dp]}}
"""


def run_splitd(bindir, world, method, workdir):
    """One fresh daemon + WORLD agents; returns the per-rank timings of the READY epoch."""
    port_file = os.path.join(workdir, "port")
    logs = open(os.path.join(workdir, "splitd.log"), "wb")
    daemon = subprocess.Popen(
        [os.path.join(bindir, "daemon/splitd"), "--listen=127.0.0.1:0", "--port_file=" + port_file],
        stderr=logs)
    procs = []
    try:
        addr = wait_for_port(port_file, daemon, timeout=3)
        splitctl = [os.path.join(bindir, "client/splitctl"), "--addr", addr]
        subprocess.run(splitctl + ["apply", "-f", "-"], check=True, stdout=subprocess.DEVNULL,
                       input=TOPOLOGY.format(method=method, dp=world // 4).encode())
        for rank in range(world):
            procs.append(subprocess.Popen(
                [os.path.join(bindir, "worker/splitd-agent"), "--daemon=" + addr, "--cluster=bench",
                 "--node=node-0", "--local_index=%d" % rank, "--pod=agent-%d" % rank,
                 "--host=127.0.0.1", "--log_level=" + os.environ.get("AGENT_LOG_LEVEL", "warn")],
                stderr=open(os.path.join(workdir, "agent-%d.log" % rank), "wb")))
        watched = subprocess.run(
            splitctl + ["status", "bench", "--watch", "--interval=0.05s", "--watch_timeout=120s",
                        "-o", "json"], capture_output=True, timeout=150)
        lines = [l for l in watched.stdout.decode().splitlines() if l.strip()]
        status = json.loads(lines[-1])
        if watched.returncode != 0 or status["state"] != "READY":
            raise RuntimeError("cluster did not reach READY: %s %s" % (status.get("reason"),
                                                                       watched.stderr.decode()))
        return [m["timings"] for m in status["members"] if m["rank"] >= 0]
    finally:
        stop(procs, 20)
        stop([daemon], 20, kill_after=False)


def run_torch(world):
    out = subprocess.run(["/usr/bin/python3", TORCH_BENCH, str(world), "2", "2"],
                         capture_output=True, timeout=600, check=True)
    for line in out.stdout.decode().splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            if not result.get("ok"):
                raise RuntimeError("PyTorch run failed validation")
            return result
    raise RuntimeError("no RESULT line from the PyTorch bench: " + out.stderr.decode()[-2000:])


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="bazel-bin of a -c opt build")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--worlds", default="8,16")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    args = parser.parse_args()
    worlds = [int(w) for w in args.worlds.split(",")]

    # samples[(world, what)] = list of per-run figures (seconds)
    samples = {}
    def add(world, what, value):
        samples.setdefault((world, what), []).append(value)

    for run in range(args.runs):
        for world in worlds:
            for method in ("split", "init"):
                workdir = tempfile.mkdtemp(prefix="splitd-bench-")
                try:
                    timings = run_splitd(args.bin, world, method, workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                rank0 = timings[0]
                add(world, method + ":ready_rank0", rank0["groups_ready_ms"] / 1e3)
                add(world, method + ":ready_max", max(t["groups_ready_ms"] for t in timings) / 1e3)
                add(world, method + ":bootstrap_rank0", rank0["bootstrap_ms"] / 1e3)
                add(world, method + ":groups_rank0",
                    (rank0["split_ms"] + rank0["validate_ms"]) / 1e3)
                # Like PyTorch's figure (timed after a barrier that follows world init): from
                # the moment the last rank has its world to the moment the last rank is ready.
                add(world, method + ":groups_aligned",
                    (max(t["groups_ready_unix_ms"] for t in timings) -
                     max(t["world_connected_unix_ms"] for t in timings)) / 1e3)
            if not args.no_torch:
                result = run_torch(world)
                add(world, "torch:ready_rank0", result["groups_ready_s"])
                add(world, "torch:world_init_rank0", result["world_init_s"])
            print("run %d/%d world %d done" % (run + 1, args.runs, world), file=sys.stderr)

    print("medians of %d runs, seconds (rank 0 unless noted)" % args.runs)
    header = ("world", "split: plan->ready", "split: bootstrap", "split: groups (rank 0)",
              "split: groups (all worlds up -> all ready)", "init: plan->ready",
              "init: groups (rank 0)", "init: groups (all worlds up -> all ready)",
              "PyTorch: world init", "PyTorch: groups ready")
    print(" | ".join(header))
    for world in worlds:
        m = lambda what: median(samples.get((world, what), []))
        print(" | ".join([str(world)] + ["%.4f" % v for v in (
            m("split:ready_rank0"), m("split:bootstrap_rank0"), m("split:groups_rank0"),
            m("split:groups_aligned"), m("init:ready_rank0"), m("init:groups_rank0"),
            m("init:groups_aligned"), m("torch:world_init_rank0"), m("torch:ready_rank0"))]))
    print()
    print("ratios (medians)")
    for world in worlds:
        m = lambda what: median(samples.get((world, what), []))
        print("world %d: split/init groups (aligned) %.3f, split/init plan->ready %.3f, "
              "split groups (aligned) / PyTorch groups ready %.3f, "
              "split plan->ready / PyTorch groups ready %.3f, "
              "split plan->ready / PyTorch (world init + groups ready) %.3f, "
              "slowest rank split plan->ready %.4f s" % (
                  world, m("split:groups_aligned") / m("init:groups_aligned"),
                  m("split:ready_rank0") / m("init:ready_rank0"),
                  m("split:groups_aligned") / m("torch:ready_rank0"),
                  m("split:ready_rank0") / m("torch:ready_rank0"),
                  m("split:ready_rank0") / (m("torch:world_init_rank0") + m("torch:ready_rank0")),
                  m("split:ready_max")))
    print()
    print("raw samples:", json.dumps({"%d:%s" % k: v for k, v in sorted(samples.items())}))


if __name__ == "__main__":
    main()
