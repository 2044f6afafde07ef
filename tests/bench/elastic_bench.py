#!/usr/bin/env python3
"""Failure handling on CPU: kill -9 of one agent to the survivors' READY in the new epoch.

For each world size (TP2 x DP=world/2, method split, cpu:gloo) and each run: a fresh daemon,
WORLD agents to READY, then kill -9 of the agent holding rank world/2+1; the daemon detects the
loss by its lease, drops that rank's dp replica and the survivors re-form at DP-1. Reported:
  detect   - the lost member's last heartbeat -> the loss declared (lease expiry; daemon clock)
  plan     - loss declared -> new epoch published (decision, planning, durable write)
  reform   - new epoch published -> the last survivor READY (deliver + bootstrap + split +
             validate), the figure the 1 s goal is about
  kill->ready - wall time from the kill to `splitctl status` showing READY in the new epoch
             (polled every 20 ms), which includes the detection
Medians over the runs; per-phase parts of the re-formation as well.

Usage (binaries built with -c opt; see docs/benchmarks.md):
  tests/bench/elastic_bench.py --bin "$(bazel info -c opt bazel-bin)" --runs 5 --worlds 8,16
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from procs import stop, wait_for, wait_for_port  # noqa: E402

TOPOLOGY = """cluster: bench
dims:
  - {{name: tp, size: 2}}
  - {{name: dp, size: {dp}}}
elastic: {{min: 1, heartbeat_interval_ms: {heartbeat}, lease_timeout_ms: {lease}}}
"""


def one_run(bindir, world, heartbeat, lease, workdir):
    port_file = os.path.join(workdir, "port")
    logs = open(os.path.join(workdir, "splitd.log"), "wb")
    daemon = subprocess.Popen([os.path.join(bindir, "daemon/splitd"), "--listen=127.0.0.1:0",
                               "--port_file=" + port_file], stderr=logs)
    agents = []
    try:
        addr = wait_for_port(port_file, daemon, 10)
        splitctl = [os.path.join(bindir, "client/splitctl"), "--addr", addr]
        subprocess.run(splitctl + ["apply", "-f", "-"], check=True, stdout=subprocess.DEVNULL,
                       input=TOPOLOGY.format(dp=world // 2, heartbeat=heartbeat,
                                             lease=lease).encode())

        def status():
            out = subprocess.run(splitctl + ["status", "bench", "-o", "json"],
                                 capture_output=True)
            return json.loads(out.stdout) if out.returncode == 0 else None

        for index in range(world):
            log = open(os.path.join(workdir, f"agent-{index}.log"), "wb")
            agents.append(subprocess.Popen(
                [os.path.join(bindir, "worker/splitd-agent"), "--daemon=" + addr,
                 "--cluster=bench", f"--node=node-{index // 4}", f"--local_index={index % 4}",
                 f"--pod=agent-{index}", "--host=127.0.0.1", "--timeout_ms=30000"],
                stderr=log))
        wait_for(lambda: True if (s := status()) and s["state"] == "READY" else None, 60)
        victim_rank = world // 2 + 1
        victim_pod = next(m["pod"] for m in status()["members"] if m["rank"] == victim_rank)
        victim = agents[int(victim_pod.split("-")[1])]
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        final = wait_for(lambda: s if (s := status()) and s["epoch"] == 2 and
                         s["state"] == "READY" else None, 60)
        kill_to_ready = (time.monotonic() - killed) * 1000
        t = final["timings"]
        return {
            "world_after": final["world_size"],
            "detect": t["detect_ms"],
            "plan": t["plan_ms"],
            "reform": t["ready_ms"],
            "deliver": t["deliver_ms"],
            "bootstrap": t["bootstrap_ms"],
            "split": t["split_ms"],
            "validate": t["validate_ms"],
            "kill_to_ready": kill_to_ready,
        }
    finally:
        stop(agents, 20)
        stop([daemon], 20, kill_after=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="bazel-bin of a -c opt build")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--worlds", default="8,16")
    parser.add_argument("--heartbeat_ms", type=int, default=200)
    parser.add_argument("--lease_ms", type=int, default=1000)
    args = parser.parse_args()
    keys = ["detect", "plan", "reform", "deliver", "bootstrap", "split", "validate",
            "kill_to_ready"]
    print(f"heartbeat {args.heartbeat_ms} ms, lease {args.lease_ms} ms, {args.runs} runs; "
          "medians in ms")
    print("| world | after | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    for world in [int(w) for w in args.worlds.split(",")]:
        results = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as workdir:
                results.append(one_run(args.bin, world, args.heartbeat_ms, args.lease_ms,
                                       workdir))
        medians = [statistics.median(r[k] for r in results) for k in keys]
        print(f"| {world} | {results[0]['world_after']} | " +
              " | ".join(f"{m:.0f}" for m in medians) + " |", flush=True)


if __name__ == "__main__":
    main()
