#!/usr/bin/env python3
"""Job start to the workload's own groups validated, on CPU (Gloo), three paths side by side.

For each world size WORLD (TP2 PP2 DP=WORLD/4) and each run, fresh processes every time, in an
order that rotates from run to run:
  (a) endpoint: a fresh splitd with `readiness: workload` and `preflight: false`; WORLD
      splitd-agents with --workload_socket, and WORLD PyTorch processes
      (tests/bench/workload_groups_worker.py --mode endpoint) that read the plan from their
      agent's socket, splitd_groups.init_world(plan, "gloo") (the world's store is the daemon's
      rendezvous space, through the agent) and splitd_groups.create_groups(plan) (new_group for
      every group, one all-reduce of ones per group, reports to the agent). Ends when
      `splitctl status --watch -o json` shows the cluster READY, i.e. every workload reported
      its groups validated;
  (b) PyTorch alone: /usr/bin/python3 ../shared/bench/torch_gloo_groups_bench.py WORLD 2 2
      (TCPStore on rank 0, init_process_group, new_group for every group, one all-reduce each);
  (c) the plan-file path: a fresh splitd with the defaults (`preflight: true`, `readiness:
      agent`, method split); WORLD agents form and validate their own Gloo groups and write their
      plan files; WORLD PyTorch processes (--mode plan_file) wait for the READY plan file,
      init_process_group over a TCPStore on rank 0, then create_groups(plan, validate=True).
"Launch" is the moment the driver applies the topology to the running daemon ((a), (c)) or
starts the reference ((b)). Every process records Unix instants; all share one clock.

Usage (binaries built with -c opt; see docs/benchmarks.md):
  tests/bench/workload_groups_bench.py --bin /tmp/opt-bin --worlds 16,32 --runs 3
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TORCH_BENCH = os.path.join(os.path.dirname(ROOT), "shared", "bench", "torch_gloo_groups_bench.py")
WORKER = os.path.join(HERE, "workload_groups_worker.py")
CLIENT = os.path.join(ROOT, "client", "python")

sys.path.insert(0, os.path.join(HERE, "..", "testing"))
from procs import stop, wait_for_port  # noqa: E402

TOPOLOGY = """cluster: bench
backend: "cpu:gloo"
dims:
  - {{name: tp, size: 2}}
  - {{name: pp, size: 2}}
  - {{name: dp, size: {dp}}}
groups:
  - {{name: tp, dims: [tp]}}
  - {{name: pp, dims: [pp]}}
  - {{name: dp, dims: [dp]}}
"""
ENDPOINT_EXTRA = "readiness: workload\npreflight: false\n"
PATHS = ("endpoint", "torch", "plan_file")


def log(*words):
    print(*words, file=sys.stderr, flush=True)


def wait_for_quiet(args, what):
    """Waits until the 1-minute load is below --max_load (at most --load_wait_s); returns it."""
    deadline = time.time() + args.load_wait_s
    while True:
        with open("/proc/loadavg") as f:
            load = float(f.read().split()[0])
        if load < args.max_load or time.time() >= deadline:
            return load
        log("load %.2f before %s: waiting" % (load, what))
        time.sleep(30)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unix_of(timestamp):
    """Unix seconds of an RFC 3339 timestamp as splitctl prints it ("...Z", nanoseconds)."""
    text = timestamp.rstrip("Z")
    whole, _, fraction = text.partition(".")
    base = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


def worker_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "SPLITD_SOCKET")}
    env["PYTHONPATH"] = CLIENT + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Job:
    """One fresh daemon and the processes around it; stop() ends them all."""

    def __init__(self, args, workdir):
        self.args, self.dir = args, workdir
        self.procs = []
        self.addr = None

    def spawn(self, name, argv, env=None):
        with open(os.path.join(self.dir, name + ".log"), "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.procs.append((name, proc))
        return proc

    def start_daemon(self):
        port_file = os.path.join(self.dir, "port")
        daemon = self.spawn("splitd", [os.path.join(self.args.bin, "daemon/splitd"),
                                       "--listen=127.0.0.1:0", "--port_file=" + port_file])
        self.addr = wait_for_port(port_file, daemon, 10)

    def splitctl(self, *argv):
        return [os.path.join(self.args.bin, "client/splitctl"), "--addr", self.addr] + list(argv)

    def start_agent(self, rank, extra):
        return self.spawn("agent-%d" % rank, [
            os.path.join(self.args.bin, "worker/splitd-agent"), "--daemon=" + self.addr,
            "--cluster=bench", "--node=node-0", "--local_index=%d" % rank,
            "--pod=agent-%d" % rank, "--host=127.0.0.1", "--log_level=warn"] + extra)

    def start_worker(self, rank, extra):
        return self.spawn("worker-%d" % rank, [
            self.args.python, WORKER, "--out", self.out(rank),
            "--timeout", str(self.args.timeout_s)] + extra, env=worker_env())

    def out(self, rank):
        return os.path.join(self.dir, "worker-%d.json" % rank)

    def records(self, world):
        records = []
        for i in range(world):
            with open(self.out(i)) as f:
                records.append(json.load(f))
        return records

    def wait_all(self, procs, timeout):
        deadline = time.time() + timeout
        for name, proc in procs:
            left = deadline - time.time()
            try:
                code = proc.wait(timeout=max(left, 0.1))
            except subprocess.TimeoutExpired:
                raise RuntimeError("%s still running after %d s" % (name, timeout))
            if code != 0:
                raise RuntimeError("%s exited with %d: %s" % (name, code, self.tail(name)))

    def tail(self, name, lines=6):
        try:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                return " | ".join(f.read().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        """Returns how many processes had to be killed."""
        return stop([proc for _, proc in reversed(self.procs)], 20)


def rank_figures(records, launch):
    """Per-rank instants of the workers, relative to launch."""
    by_rank = sorted(records, key=lambda r: r["rank"])
    rel = lambda key: [r[key] - launch for r in by_rank]
    rank0 = by_rank[0]
    return {
        "imported_max_s": max(rel("imported")),
        "plan_max_s": max(rel("plan")),
        "world_max_s": max(rel("world")),
        "groups_ready_max_s": max(rel("groups_ready")),
        "groups_ready_min_s": min(rel("groups_ready")),
        "exited_max_s": max(rel("exited")),
        # The part that does not depend on how fast `import torch` is on a busy machine.
        "after_import_s": max(rel("groups_ready")) - max(rel("imported")),
        "rank0_world_init_s": rank0["world"] - rank0["plan"],
        "rank0_groups_ready_s": rank0["groups_ready"] - rank0["world"],
        "groups_ready_per_rank_s": [round(v, 4) for v in rel("groups_ready")],
    }


def run_splitd(args, world, path):
    """Path (a) ("endpoint") or (c) ("plan_file")."""
    workdir = tempfile.mkdtemp(prefix="splitd-wl-bench-", dir="/tmp")  # short socket paths
    job = Job(args, workdir)
    try:
        job.start_daemon()
        topology = TOPOLOGY.format(dp=world // 4)
        if path == "endpoint":
            topology += ENDPOINT_EXTRA
        master_port = free_port()
        launch = time.time()
        subprocess.run(job.splitctl("apply", "-f", "-"), input=topology.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        agents, workers = [], []
        for i in range(world):
            if path == "endpoint":
                sock = os.path.join(workdir, "a%d.sock" % i)
                agents.append(("agent-%d" % i, job.start_agent(i, ["--workload_socket=" + sock])))
                workers.append(("worker-%d" % i, job.start_worker(
                    i, ["--mode=endpoint", "--socket=" + sock] +
                    (["--count_store_ops"] if args.count_store_ops else []))))
            else:
                plan_file = os.path.join(workdir, "plan-%d.json" % i)
                agents.append(("agent-%d" % i, job.start_agent(
                    i, ["--plan_file=" + plan_file, "--workload_socket=none"])))
                workers.append(("worker-%d" % i, job.start_worker(
                    i, ["--mode=plan_file", "--plan_file=" + plan_file,
                        "--master_port=%d" % master_port])))
        launched = time.time()
        # READY: every workload validated its groups ((a)), or every agent its own ((c)).
        watch = subprocess.Popen(job.splitctl("status", "bench", "--watch", "--interval=0.02s",
                                              "--watch_timeout=%ds" % args.timeout_s, "-o",
                                              "json"), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        ready_seen, status = None, None
        for line in watch.stdout:
            if not line.strip():
                continue
            status = json.loads(line)
            if status.get("state") == "READY":
                ready_seen = time.time()
        watch.wait()
        if ready_seen is None:
            raise RuntimeError("cluster not READY: %s %s" % (
                status and status.get("reason"), watch.stderr.read().decode()[-500:]))
        job.wait_all(workers, args.timeout_s)
        done = time.time()
        final = json.loads(subprocess.run(job.splitctl("status", "bench", "-o", "json"),
                                          capture_output=True, check=True).stdout)
        records = job.records(world)
        figures = rank_figures(records, launch)
        if any("store_ops" in r for r in records):
            # Per-rank means of the store calls c10d made, by phase: [calls, seconds in them].
            ops = {}
            for r in records:
                for phase, by_op in r.get("store_ops", {}).items():
                    for op, (count, seconds) in by_op.items():
                        entry = ops.setdefault(phase, {}).setdefault(op, [0.0, 0.0])
                        entry[0] += count / world
                        entry[1] += seconds / world
            figures["store_ops_per_rank"] = {
                phase: {op: [round(c, 1), round(t, 4)] for op, (c, t) in by_op.items()}
                for phase, by_op in ops.items()}
        figures.update(path=path, world=world, launch_s=launched - launch,
                       ready_seen_s=ready_seen - launch, all_exited_s=done - launch,
                       daemon_ready_ms=final.get("timings", {}).get("ready_ms"))
        if path == "endpoint":
            # The daemon's view: when each rank's workload report of READY arrived.
            since = [unix_of(m["workload"]["phase_since"]) - launch for m in final["members"]
                     if m.get("rank", -1) >= 0 and m.get("workload", {}).get("phase") == "READY"]
            if len(since) != world:
                raise RuntimeError("%d of %d workloads READY in status" % (len(since), world))
            figures["daemon_workload_ready_max_s"] = max(since)
            figures["daemon_workload_ready_min_s"] = min(since)
        return figures
    finally:
        job.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run_torch(args, world):
    """Path (b): the reference as it stands."""
    launch = time.time()
    done = subprocess.run([args.python, TORCH_BENCH, str(world), "2", "2"], capture_output=True,
                          timeout=args.timeout_s, env=worker_env())
    wall = time.time() - launch
    for line in done.stdout.decode().splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            if not result.get("ok"):
                raise RuntimeError("PyTorch run failed validation")
            return {"path": "torch", "world": world, "all_exited_s": result["total_s"],
                    "wall_s": wall, "rank0_world_init_s": result["world_init_s"],
                    "rank0_groups_ready_s": result["groups_ready_s"],
                    "rank0_create_s": result["create_s"]}
    raise RuntimeError("no RESULT from the PyTorch bench: " + done.stderr.decode()[-1000:])


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value):
    return "-" if value is None else "%.3f" % value


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="bazel-bin of a -c opt build")
    parser.add_argument("--worlds", default="16,32")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--python", default="/usr/bin/python3", help="an interpreter with torch")
    parser.add_argument("--timeout_s", type=int, default=300)
    parser.add_argument("--max_load", type=float, default=1.5)
    parser.add_argument("--load_wait_s", type=int, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--count_store_ops", action="store_true",
                        help="endpoint workers count and time their store calls (a diagnostic)")
    args = parser.parse_args()
    worlds = [int(w) for w in args.worlds.split(",")]
    paths = args.paths.split(",")

    rows = []
    for run in range(args.runs):
        order = paths[run % len(paths):] + paths[:run % len(paths)]
        for world in worlds:
            for path in order:
                load = wait_for_quiet(args, "%s world %d" % (path, world))
                try:
                    figures = (run_torch(args, world) if path == "torch"
                               else run_splitd(args, world, path))
                    figures["ok"] = True
                except Exception as error:  # one failed run is a result, not the end
                    figures = {"path": path, "world": world, "ok": False, "error": str(error)}
                figures.update(run=run + 1, load=load)
                rows.append(figures)
                log("run %d: %s" % (run + 1, json.dumps(figures)))

    columns = [
        ("ready_seen_s", "launch -> cluster READY (splitctl)"),
        ("daemon_workload_ready_max_s", "launch -> last workload READY report (daemon)"),
        ("groups_ready_max_s", "launch -> last rank's groups validated (workers)"),
        ("groups_ready_min_s", "launch -> first rank's groups validated (workers)"),
        ("all_exited_s", "launch -> every process done"),
        ("wall_s", "driver wall, reference process start -> exit"),
        ("after_import_s", "last rank imported torch -> last rank's groups validated"),
        ("imported_max_s", "launch -> last rank imported torch"),
        ("plan_max_s", "launch -> last rank holds its plan"),
        ("world_max_s", "launch -> last rank's world up"),
        ("rank0_world_init_s", "rank 0: world init"),
        ("rank0_groups_ready_s", "rank 0: groups created + validated"),
    ]
    summary = {}
    for world in worlds:
        print("world %d (TP2 PP2 DP%d): medians of %d runs, seconds [every run]" % (
            world, world // 4, args.runs))
        for path in paths:
            mine = [r for r in rows if r["world"] == world and r["path"] == path]
            print("  %s: ok %d/%d, loads %s" % (path, sum(r["ok"] for r in mine), len(mine),
                                                " ".join("%.2f" % r["load"] for r in mine)))
            for r in mine:
                if not r["ok"]:
                    print("    run %d failed: %s" % (r["run"], r["error"][:300]))
                if "store_ops_per_rank" in r:
                    print("    run %d store calls per rank [calls, seconds]: %s" % (
                        r["run"], json.dumps(r["store_ops_per_rank"])))
            for key, name in columns:
                values = [r.get(key) for r in mine if r["ok"]]
                if not any(v is not None for v in values):
                    continue
                summary[(world, path, key)] = median(values)
                print("    %-50s %7s  [%s]" % (name, fmt(summary[(world, path, key)]),
                                               ", ".join(fmt(v) for v in values)))
        m = lambda path, key: summary.get((world, path, key))
        ratio = lambda a, b: "%.2f" % (a / b) if a is not None and b else "-"
        print("  ratios (medians):")
        print("    every process done: endpoint/torch %s, plan_file/torch %s, endpoint/plan_file %s"
              % (ratio(m("endpoint", "all_exited_s"), m("torch", "all_exited_s")),
                 ratio(m("plan_file", "all_exited_s"), m("torch", "all_exited_s")),
                 ratio(m("endpoint", "all_exited_s"), m("plan_file", "all_exited_s"))))
        print("    last rank's groups validated: endpoint/plan_file %s; after the last import: "
              "endpoint/plan_file %s" % (
                  ratio(m("endpoint", "groups_ready_max_s"), m("plan_file", "groups_ready_max_s")),
                  ratio(m("endpoint", "after_import_s"), m("plan_file", "after_import_s"))))
        print("    rank 0 world init: endpoint/torch %s, plan_file/torch %s" % (
            ratio(m("endpoint", "rank0_world_init_s"), m("torch", "rank0_world_init_s")),
            ratio(m("plan_file", "rank0_world_init_s"), m("torch", "rank0_world_init_s"))))
        print("    rank 0 groups ready: endpoint/torch %s, plan_file/torch %s" % (
            ratio(m("endpoint", "rank0_groups_ready_s"), m("torch", "rank0_groups_ready_s")),
            ratio(m("plan_file", "rank0_groups_ready_s"), m("torch", "rank0_groups_ready_s"))))
        print()
    print("raw:", json.dumps(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
