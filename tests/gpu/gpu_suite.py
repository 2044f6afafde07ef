#!/usr/bin/env python3
"""GPU tests and benchmark of the cuda:nccl backend, run ON the GPU machine from a pack made by
tests/gpu/pack.sh (binaries, their shared libraries, this script, the ABI check source and the
PyTorch reference program).

  python3 gpu_suite.py --pack DIR --out DIR [--tests] [--bench] [--runs 3]

--tests: the daemon plus one agent per GPU at world 1 (TP1), 2 (TP2) and 4 (TP2 PP2), each method
(split, init) and backend string (cuda:nccl; cpu:gloo,cuda:nccl at world 4): every run must reach
READY with every validation all-reduce equal to its group size. Prints "PASS name" / "FAIL name".
--elastic: at world 4 (TP2 x DP2, cuda:nccl, elastic lease 1 s), kill -9 of the agent of rank 3
once READY; the daemon drops its dp replica (epoch 2 at world 2, shrinks_epoch 1). Run with
--hold_communicators (the survivors shrink the held NCCL world) and without (they bootstrap a
fresh one); epoch 2's timings from `splitctl status -o json` and the agents' logs, per run and
medians (--elastic_runs).
--bench: at world 4 (TP2 PP2), fresh launches of splitd split, splitd init and PyTorch's
split_group, eager new_group and lazy new_group (torch_groups_bench.py); groups-ready and
world-bootstrap medians. Results go to OUT/gpu_results.json and the last line of stdout.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from procs import stop, wait_for, wait_for_port  # noqa: E402

SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
            "NVSHMEM_DISABLE_NVLS": "1"}


def topology(name, world, method, backend):
    dims = "  - {name: tp, size: %d}\n" % min(world, 2)
    groups = "  - {name: tp, dims: [tp]}\n"
    if world >= 4:
        dims += "  - {name: pp, size: 2}\n"
        groups += "  - {name: pp, dims: [pp]}\n"
    if world >= 8:
        dims += "  - {name: dp, size: %d}\n" % (world // 4)
        groups += "  - {name: dp, dims: [dp]}\n"
    return ("cluster: %s\nmethod: %s\nbackend: \"%s\"\ndims:\n%sgroups:\n%s"
            "validation: {allreduce_elements: 16}\n") % (name, method, backend, dims, groups)


def run_splitd(pack, world, method, backend, agent_env, agent_flags, workdir, timeout=120):
    """Daemon + `world` agents (one per GPU); returns the final status JSON (any state)."""
    bindir = os.path.join(pack, "bin")
    env = dict(os.environ, **SAFE_ENV)
    # Our binaries find the libraries packed beside them (gRPC, Protobuf, ...), and the CUDA
    # runtime; Python processes keep their own environment.
    env["LD_LIBRARY_PATH"] = ":".join(
        [os.path.join(pack, "lib"), "/usr/local/cuda/lib64", os.environ.get("LD_LIBRARY_PATH", "")])
    port_file = os.path.join(workdir, "port")
    daemon = subprocess.Popen([os.path.join(bindir, "splitd"), "--listen=127.0.0.1:0",
                               "--port_file=" + port_file],
                              stderr=open(os.path.join(workdir, "splitd.log"), "wb"), env=env)
    agents = []
    try:
        addr = wait_for_port(port_file, daemon, timeout=5)
        splitctl = [os.path.join(bindir, "splitctl"), "--addr", addr]
        subprocess.run(splitctl + ["apply", "-f", "-"], check=True, stdout=subprocess.DEVNULL,
                       input=topology("gpu", world, method, backend).encode(), env=env)
        aenv = dict(env, **agent_env)
        for rank in range(world):
            agents.append(subprocess.Popen(
                [os.path.join(bindir, "splitd-agent"), "--daemon=" + addr, "--cluster=gpu",
                 "--node=node-0", "--local_index=%d" % rank, "--pod=agent-%d" % rank,
                 "--host=127.0.0.1", "--log_level=info", "--timeout_ms=120000"] + agent_flags,
                stderr=open(os.path.join(workdir, "agent-%d.log" % rank), "wb"), env=aenv))
        watched = subprocess.run(splitctl + ["status", "gpu", "--watch", "--interval=0.05s",
                                             "--watch_timeout=%ds" % timeout, "-o", "json"],
                                 capture_output=True, timeout=timeout + 30, env=env)
        lines = [l for l in watched.stdout.decode().splitlines() if l.strip()]
        return json.loads(lines[-1]) if lines else {"state": "NO_STATUS",
                                                    "reason": watched.stderr.decode()}
    finally:
        stop(agents, 10)
        stop([daemon], 30)


def check_ready(status, world):
    """Problems with a final status: READY, every validation equal to its group size."""
    problems = []
    if status.get("state") != "READY":
        problems.append("state %s: %s" % (status.get("state"), status.get("reason")))
        return problems
    sizes = {"tp": min(world, 2), "pp": 2, "dp": world // 4}
    for kind, group in status.get("groups", {}).items():
        if group["ready"] != group["groups"]:
            problems.append("%s: %d of %d groups ready" % (kind, group["ready"], group["groups"]))
        for v in group.get("validations", []):
            if v["allreduce_value"] != sizes[kind]:
                problems.append("%s[%d]: all-reduce gave %s, want %d" % (
                    kind, v["group_index"], v["allreduce_value"], sizes[kind]))
    return problems


def tail(path, n=15):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return ""


ELASTIC_TOPOLOGY = """cluster: gpu
method: split
backend: "%s"
dims:
  - {name: tp, size: 2}
  - {name: dp, size: 2}
groups:
  - {name: tp, dims: [tp]}
  - {name: dp, dims: [dp]}
elastic: {min: 1, heartbeat_interval_ms: 200, lease_timeout_ms: 1000}
validation: {allreduce_elements: 16}
"""

# Agent log lines of epoch 2 (worker/agent_epoch.cc, worker/nccl/*) and what they give, in ms.
ELASTIC_PATTERNS = {
    "shrink": re.compile(r"epoch 2 rank (\d+): cuda:nccl world shrunk from (\d+) to (\d+) ranks in "
                         r"([\d.]+) ms \(vote ([\d.]+) ms, shrink ([\d.]+) ms"),
    "fresh": re.compile(r"epoch 2 rank (\d+): cuda:nccl world of \d+ connected by a fresh bootstrap "
                        r"in ([\d.]+) ms \(([\d.]+) ms since the shrink vote began\)"),
    "ready": re.compile(r"epoch 2 rank (\d+): READY .* bootstrap ([\d.]+) ms, split ([\d.]+) ms, "
                        r"validate ([\d.]+) ms, groups ready ([\d.]+) ms after the plan"),
    "reaped": re.compile(r"aborted (rank \d+ .*) in the background in (\S+) \((\S+) after it was "
                         r"handed over\)"),
    "stop_wait": re.compile(r"waited ([\d.]+) ms for (\d+) background communicator teardown"),
    "shrank": re.compile(r"shrank the world of epoch 1 .* in (\S+): old groups handed to the "
                         r"background abort in (\S+), ncclCommShrink \((\w+)\) (\S+);"),
}


def elastic_once(args, hold, backend, workdir):
    """One kill -9 run; returns the figures of epoch 2 or {"error": ...}."""
    bindir = os.path.join(args.pack, "bin")
    env = dict(os.environ, **SAFE_ENV)
    env["LD_LIBRARY_PATH"] = ":".join(
        [os.path.join(args.pack, "lib"), "/usr/local/cuda/lib64", os.environ.get("LD_LIBRARY_PATH", "")])
    port_file = os.path.join(workdir, "port")
    daemon = subprocess.Popen([os.path.join(bindir, "splitd"), "--listen=127.0.0.1:0",
                               "--port_file=" + port_file],
                              stderr=open(os.path.join(workdir, "splitd.log"), "wb"), env=env)
    agents = []
    result = {}
    try:
        addr = wait_for_port(port_file, daemon, 10)
        splitctl = [os.path.join(bindir, "splitctl"), "--addr", addr]
        subprocess.run(splitctl + ["apply", "-f", "-"], check=True, stdout=subprocess.DEVNULL,
                       input=(ELASTIC_TOPOLOGY % backend).encode(), env=env)

        def status():
            out = subprocess.run(splitctl + ["status", "gpu", "-o", "json"], capture_output=True,
                                 env=env)
            return json.loads(out.stdout) if out.returncode == 0 else None

        flags = args.agent_flag + ["--log_level=debug", "--timeout_ms=20000"]
        if hold:
            flags.append("--hold_communicators")
        for index in range(4):
            agents.append(subprocess.Popen(
                [os.path.join(bindir, "splitd-agent"), "--daemon=" + addr, "--cluster=gpu",
                 "--node=node-0", "--local_index=%d" % index, "--pod=agent-%d" % index,
                 "--host=127.0.0.1"] + flags,
                stderr=open(os.path.join(workdir, "agent-%d.log" % index), "wb"), env=env))
        first = wait_for(lambda: s if (s := status()) and s.get("epoch") == 1 and
                         s.get("state") == "READY" else None, 90, poll=0.05, raises=False)
        if first is None:
            result["error"] = "epoch 1 not READY: %s" % (status() or {}).get("reason")
            return result
        pod = next(m["pod"] for m in first["members"] if m["rank"] == 3)
        victim = agents[int(pod.split("-")[1])]
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        final = wait_for(lambda: s if (s := status()) and s.get("epoch") == 2 and
                         s.get("state") in ("READY", "FAILED") else None, 60, poll=0.05,
                         raises=False)
        if final is None or final["state"] != "READY":
            result["error"] = "epoch 2 not READY: %s" % ((final or status() or {}).get("reason"))
            return result
        result["kill_to_ready_ms"] = (time.monotonic() - killed) * 1000
        t = final["timings"]
        result["world_after"] = final["world_size"]
        for key in ("detect_ms", "plan_ms", "ready_ms", "deliver_ms", "bootstrap_ms", "split_ms",
                    "validate_ms"):
            result[key] = t.get(key)
        result["members"] = [{"rank": m["rank"], "pod": m["pod"], "timings": m.get("timings")}
                             for m in final["members"]]
        result["validations"] = {k: [v["allreduce_value"] for v in g.get("validations", [])]
                                 for k, g in final.get("groups", {}).items()}
        time.sleep(3)  # let the background aborts finish before the agents are stopped
        return result
    finally:
        stopped = time.monotonic()
        killed_at_stop = stop(agents, 30)
        if killed_at_stop:
            result["killed_at_stop"] = killed_at_stop
        result["stop_s"] = time.monotonic() - stopped
        result["exit_codes"] = [a.returncode for a in agents]
        stop([daemon], 30)
        logs = {}
        for index in range(4):
            text = open(os.path.join(workdir, "agent-%d.log" % index), errors="replace").read()
            found = {}
            for name, pattern in ELASTIC_PATTERNS.items():
                hits = [m.groups() for m in pattern.finditer(text)]
                if hits:
                    found[name] = hits
            logs["agent-%d" % index] = found
        result["logs"] = logs


def run_elastic(args, results):
    out = {}
    for label, hold in (("shrink (--hold_communicators)", True),
                        ("fresh world (no --hold_communicators)", False)):
        runs = []
        for run in range(args.elastic_runs):
            workdir = tempfile.mkdtemp(prefix="gpu-elastic-")
            r = elastic_once(args, hold, args.elastic_backend, workdir)
            r["workdir"] = workdir
            runs.append(r)
            if "error" in r:
                print("elastic %s run %d: ERROR %s" % (label, run + 1, r["error"]))
                print(tail(os.path.join(workdir, "agent-0.log"), 20))
            else:
                world = [h for lg in r["logs"].values() for key in ("shrink", "fresh")
                         for h in lg.get(key, [])]
                print("elastic %s run %d: detect %.0f plan %.0f ready %.0f (deliver %.0f bootstrap "
                      "%.0f split %.0f validate %.0f) kill->ready %.0f ms; world lines %s; "
                      "validations %s; stop %.1f s, exit codes %s" % (
                          label, run + 1, r["detect_ms"], r["plan_ms"], r["ready_ms"],
                          r["deliver_ms"], r["bootstrap_ms"], r["split_ms"], r["validate_ms"],
                          r["kill_to_ready_ms"], world, r["validations"], r["stop_s"],
                          r["exit_codes"]))
                for name, lg in sorted(r["logs"].items()):
                    print("  %s: %s" % (name, {k: v for k, v in lg.items()}))
            sys.stdout.flush()
        ok = [r for r in runs if "error" not in r]
        medians = {}
        for key in ("detect_ms", "plan_ms", "ready_ms", "deliver_ms", "bootstrap_ms", "split_ms",
                    "validate_ms", "kill_to_ready_ms"):
            if ok:
                medians[key] = statistics.median(r[key] for r in ok)
        # The world step of the slowest survivor, per run: shrink or fresh bootstrap (ms).
        worlds = []
        for r in ok:
            values = [float(h[3]) for lg in r["logs"].values() for h in lg.get("shrink", [])]
            values += [float(h[1]) for lg in r["logs"].values() for h in lg.get("fresh", [])]
            if values:
                worlds.append(max(values))
        if worlds:
            medians["agent_world_ms_slowest"] = statistics.median(worlds)
        out[label] = {"runs": runs, "medians": medians, "failed": len(runs) - len(ok)}
        print("elastic %s medians of %d: %s" % (label, len(ok), json.dumps(medians)))
    results["elastic"] = out
    return sum(v["failed"] for v in out.values())


def run_tests(args, gpus, results):
    cases = []
    # World 1 (one GPU) still runs the NCCL builder's bootstrap, split or init, and validation.
    for world in (1, 2, 4):
        if world > gpus:
            continue
        for method in ("split", "init"):
            cases.append((world, method, "cuda:nccl"))
        if world == 4:
            cases.append((world, "split", "cpu:gloo,cuda:nccl"))
    failures = 0
    for world, method, backend in cases:
        name = "world%d-%s-%s" % (world, method, backend.replace(":", "_").replace(",", "+"))
        workdir = tempfile.mkdtemp(prefix="gpu-test-")
        status = run_splitd(args.pack, world, method, backend, {}, args.agent_flag, workdir)
        problems = check_ready(status, world)
        results["tests"][name] = {"ok": not problems, "problems": problems,
                                  "timings": [m.get("timings") for m in status.get("members", [])]}
        if problems:
            failures += 1
            print("FAIL %s: %s" % (name, "; ".join(problems)))
            print(tail(os.path.join(workdir, "agent-0.log")))
        else:
            print("PASS %s" % name)
        sys.stdout.flush()
    return failures


def torch_bench(args, mode, world):
    env = dict(os.environ, **SAFE_ENV)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=%d" % world,
                          os.path.join(args.pack, "bench", "torch_groups_bench.py"), mode, "2", "2"],
                         capture_output=True, timeout=120, env=env)
    for line in out.stdout.decode().splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError("torch %s: no RESULT: %s" % (mode, out.stderr.decode()[-1500:]))


def run_bench(args, gpus, results):
    world = min(4, gpus)
    # (method, extra agent flags): the defaults first, then the alternatives they are chosen over.
    variants = [("split", []), ("init", []),
                ("split", ["--nccl_serial_validation=true"]),
                ("split", ["--nccl_eager_connect=true"]), ("init", ["--nccl_eager_connect=true"])]
    samples = {}
    for run in range(args.runs):
        for method, flags in variants:
            label = " ".join(["splitd", method] + flags)
            workdir = tempfile.mkdtemp(prefix="gpu-bench-")
            status = run_splitd(args.pack, world, method, "cuda:nccl", {},
                                args.agent_flag + flags, workdir, timeout=60)
            print("bench %s: %s %s" % (label, status.get("state"), status.get("reason", "")))
            if status.get("state") != "READY":
                print(tail(os.path.join(workdir, "agent-0.log"), 8))
                samples.setdefault(label, {}).setdefault("failed", []).append(status.get("reason"))
                continue
            t = [m["timings"] for m in status["members"] if m["rank"] >= 0]
            s = samples.setdefault(label, {})
            s.setdefault("groups_ready_rank0", []).append((t[0]["split_ms"] + t[0]["validate_ms"]) / 1e3)
            s.setdefault("groups_ready_max", []).append(max(x["split_ms"] + x["validate_ms"] for x in t) / 1e3)
            s.setdefault("split_rank0", []).append(t[0]["split_ms"] / 1e3)
            s.setdefault("validate_rank0", []).append(t[0]["validate_ms"] / 1e3)
            s.setdefault("world_bootstrap_rank0", []).append(t[0]["bootstrap_ms"] / 1e3)
            s.setdefault("plan_to_ready_rank0", []).append(t[0]["groups_ready_ms"] / 1e3)
        for mode in ("split_group", "eager_new_group", "lazy_new_group"):
            try:
                r = torch_bench(args, mode, world)
                print("bench torch %s: %s" % (mode, r))
            except Exception as e:  # keep the run going; record the failure
                samples.setdefault("torch " + mode, {}).setdefault("failed", []).append(str(e))
                continue
            s = samples.setdefault("torch " + mode, {})
            s.setdefault("groups_ready_rank0", []).append(r["groups_ready_s"])
            s.setdefault("create_rank0", []).append(r["create_s"])
            s.setdefault("first_collective_rank0", []).append(r["first_collective_s"])
            s.setdefault("world_bootstrap_rank0", []).append(r["world_init_s"])
        print("bench run %d/%d done" % (run + 1, args.runs), file=sys.stderr)
        sys.stderr.flush()
    results["bench"] = {"world": world, "samples": samples,
                        "medians": {label: {k: statistics.median(v) for k, v in s.items()
                                            if k != "failed" and v}
                                    for label, s in samples.items()}}
    for label, med in results["bench"]["medians"].items():
        print("%-55s %s" % (label, " ".join("%s=%.4f" % kv for kv in sorted(med.items()))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pack", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tests", action="store_true")
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--elastic", action="store_true")
    parser.add_argument("--elastic_runs", type=int, default=3)
    parser.add_argument("--elastic_backend", default="cuda:nccl")
    parser.add_argument("--agent_flag", action="append", default=[],
                        help="extra splitd-agent flag, e.g. --nccl_library=PATH")
    args = parser.parse_args()
    gpus = 0
    if args.tests or args.bench:
        gpus = int(subprocess.check_output(
            [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"]).decode())
    results = {"gpus": gpus, "tests": {}, "agent_flags": args.agent_flag}
    failures = 0
    if args.elastic:
        failures += run_elastic(args, results)
    if args.tests:
        failures += run_tests(args, gpus, results)
    if args.bench:
        run_bench(args, gpus, results)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("%d failed (tests and elastic runs)" % failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
