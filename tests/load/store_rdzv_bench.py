#!/usr/bin/env python3
"""A world's store rendezvous at scale: splitd's rendezvous space beside PyTorch's TCPStore.

What init_process_group does through its store for an NCCL world: rank 0 sets the unique id
(128 bytes), every rank gets it, every rank adds 1 to a counter and waits until the count is N.
For each world size N and each run, in one invocation:
  - splitd with in-memory state, then with --data_dir on a fresh directory (every key persisted):
    a fresh daemon, the topology `dims: [{name: dp, size: N}]`, backend cpu:gloo, applied with
    splitctl, then --procs processes of tests/load/store_rdzv_load sharing the N members. Each
    member registers, opens its WatchPlan stream (epoch and rank) and heartbeats; once every
    process reports PLANNED, all are told to go at once and run the store phase (KvSet / KvGet /
    KvAdd of the current epoch; the rank whose KvAdd returns N sets "all_joined" and every rank KvGet-waits
    for it). The daemon's VmHWM and VmRSS come from /proc/PID/status;
  - the reference: /usr/bin/python3 ../shared/bench/tcpstore_rdzv_bench.py N PROCS, in its own
    session; the run ends when its master process exits or after --tcpstore_timeout_s, and the
    whole session (client processes included) is killed then.
With --baseline_splitd, every splitd series runs a second time with that daemon binary (the
daemon before a change, say), right after the first. The 10,000-client reference runs after every
splitd series: it fails on this machine and leaves the load in the thousands for minutes. Before
every series the driver waits (up to --load_wait_s) for the 1-minute load average to drop below
--max_load and records the load it started at. Prints medians, every run's value and the ratios.

Usage (binaries built with -c opt; see docs/benchmarks.md):
  tests/load/store_rdzv_bench.py --bin /tmp/opt-bin --worlds 1000,10000 --runs 3
"""

import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TCPSTORE_BENCH = os.path.join(os.path.dirname(ROOT), "shared", "bench", "tcpstore_rdzv_bench.py")

sys.path.insert(0, os.path.join(HERE, "..", "testing"))
from procs import proc_status, stop, wait_for_port  # noqa: E402

TOPOLOGY = """cluster: rdzv
backend: "cpu:gloo"
dims:
  - {{name: dp, size: {world}}}
"""


def log(*words):
    print(*words, file=sys.stderr, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_for_quiet(args, what):
    """Waits until the 1-minute load is below --max_load (at most --load_wait_s); returns it."""
    deadline = time.time() + args.load_wait_s
    load = load_average()
    while load >= args.max_load and time.time() < deadline:
        log("load %.2f before %s: waiting" % (load, what))
        time.sleep(30)
        load = load_average()
    if load >= args.max_load:
        log("load still %.2f before %s after %d s: measuring anyway" % (load, what,
                                                                         args.load_wait_s))
    return load


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_tagged_line(proc, tag, deadline):
    """The text after `tag ` on the first stdout line of `proc` that starts with it."""
    while True:
        left = deadline - time.time()
        if left <= 0:
            raise RuntimeError("no %s line before the deadline" % tag)
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            continue
        line = proc.stdout.readline().decode()
        if not line:
            raise RuntimeError("store_rdzv_load exited (%s) before its %s line" % (proc.poll(),
                                                                                    tag))
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])


def run_splitd(args, world, durable, workdir, splitd):
    """One fresh daemon (the binary `splitd`) and --procs load processes; returns the merged
    figures."""
    port_file = os.path.join(workdir, "port")
    command = [splitd, "--listen=127.0.0.1:0",
               "--port_file=" + port_file, "--log_level=" + args.daemon_log_level]
    if durable:
        command.append("--data_dir=" + os.path.join(workdir, "data"))
    daemon = subprocess.Popen(command, stderr=open(os.path.join(workdir, "splitd.log"), "wb"))
    loaders = []
    try:
        addr = wait_for_port(port_file, daemon)
        subprocess.run([os.path.join(args.bin, "client/splitctl"), "--addr", addr, "apply", "-f",
                        "-"], check=True, stdout=subprocess.DEVNULL,
                       input=TOPOLOGY.format(world=world).encode())
        share = world // args.procs
        for p in range(args.procs):
            first = p * share
            members = share if p < args.procs - 1 else world - first
            loaders.append(subprocess.Popen(
                [os.path.join(args.bin, "tests/load/store_rdzv_load"), "--daemon=" + addr,
                 "--cluster=rdzv", "--world=%d" % world, "--first=%d" % first,
                 "--members=%d" % members, "--wait_for_go",
                 "--heartbeats=%s" % ("false" if args.no_heartbeats else "true"),
                 "--wait_timeout_s=%g" % args.wait_timeout_s],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,  # select() sees every line
                stderr=open(os.path.join(workdir, "load-%d.log" % p), "wb")))
        deadline = time.time() + 300
        planned = [read_tagged_line(l, "PLANNED", deadline) for l in loaders]
        if not all(p["ok"] for p in planned):
            raise RuntimeError("not every member holds its plan: %s" % planned)
        before = proc_status(daemon.pid)
        cpu_before = cpu_seconds(daemon.pid)
        perf = None
        if args.perf_dir:
            # The daemon's profile of the store phase alone (registration is over).
            os.makedirs(args.perf_dir, exist_ok=True)
            perf = subprocess.Popen(
                ["perf", "record", "-F", "999", "-g", "-p", str(daemon.pid), "-o",
                 os.path.join(args.perf_dir, "splitd-%d-%s-%d.data" % (
                     world, "data_dir" if durable else "memory", int(time.time())))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # perf attaches
        for l in loaders:
            l.stdin.write(b"go\n")
            l.stdin.flush()
        results = [read_tagged_line(l, "RESULT", time.time() + args.wait_timeout_s + 60)
                   for l in loaders]
        cpu_store = cpu_seconds(daemon.pid) - cpu_before
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        after = proc_status(daemon.pid)
        codes = [l.wait(timeout=60) for l in loaders]
    finally:
        for l in loaders:
            if l.poll() is None:
                l.kill()
                l.wait()
        stop([daemon], 30)

    errors = {}
    for r in results:
        for key, count in r["errors"].items():
            errors[key] = errors.get(key, 0) + count
    first_start = min(r["first_start_ns"] for r in results)
    last_start = max(r["last_start_ns"] for r in results)
    done = sum(r["done"] for r in results)
    complete = done == world
    last = lambda key: max(r[key] for r in results)
    figures = {
        "world": world, "state": "data_dir" if durable else "memory", "procs": args.procs,
        "ok": complete and all(c == 0 for c in codes) and not any(errors.values()) and
              sum(r["all_joined_setters"] for r in results) == 1,
        "done": done, "errors": errors,
        "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
        "register_s": max(p["register_s"] for p in planned),
        "launch_s": (last_start - first_start) / 1e9,
        "id_s": (last("last_id_ns") - first_start) / 1e9,
        "counted_s": (last("last_added_ns") - first_start) / 1e9,
        "start_to_done_s": (last("last_done_ns") - last_start) / 1e9 if complete else None,
        "total_s": (last("last_done_ns") - first_start) / 1e9 if complete else None,
        "daemon_rss_planned_mib": before["VmRSS"] / 1024,
        "daemon_hwm_mib": after["VmHWM"] / 1024,
        "daemon_threads": after["Threads"],
        "daemon_cpu_store_s": cpu_store,
        "heartbeats": sum(r["heartbeats"] for r in results),
        "store_calls": sum(r["store_calls"] for r in results),
        "client_threads": [r["client_threads"] for r in results],
    }
    return figures


def run_tcpstore(world, procs, timeout, workdir):
    """The reference, in its own session; {"error": ...} when it fails or times out."""
    out_path, err_path = os.path.join(workdir, "tcpstore.out"), os.path.join(workdir,
                                                                            "tcpstore.err")
    start = time.time()
    proc = subprocess.Popen(["/usr/bin/python3", TCPSTORE_BENCH, str(world), str(procs)],
                            stdout=open(out_path, "wb"), stderr=open(err_path, "wb"),
                            start_new_session=True)
    peak_threads = 0
    timed_out = False
    while proc.poll() is None:
        if time.time() - start > timeout:
            timed_out = True
            break
        # Threads of the whole session (master and client processes).
        try:
            listing = subprocess.run(["ps", "-L", "--no-headers", "-s", str(proc.pid)],
                                     capture_output=True, timeout=30).stdout
            peak_threads = max(peak_threads, listing.count(b"\n"))
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1.0)
    elapsed = time.time() - start
    master_code = proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # client processes that outlived the master
    except ProcessLookupError:
        pass
    proc.wait()
    stdout = open(out_path, "rb").read().decode(errors="replace")
    stderr = open(err_path, "rb").read().decode(errors="replace")
    for line in stdout.splitlines():
        if line.startswith("RESULT tcpstore "):
            figures = {"peak_threads": peak_threads}
            for word in line.split()[2:]:
                key, _, value = word.partition("=")
                figures[key] = float(value) if "." in value else int(value)
            return figures
    interesting = [l.strip() for l in stderr.splitlines()
                   if "rror" in l or "errno" in l or "terminate" in l]
    reason = "timed out after %d s" % timeout if timed_out else (
        "master exited with %s after %.0f s" % (master_code, elapsed))
    return {"error": reason, "peak_threads": peak_threads,
            "first_error": interesting[0] if interesting else "",
            "socket_timeouts": stderr.count("Socket Timeout")}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=3):
    return "-" if value is None else ("%.*f" % (digits, value))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="bazel-bin of a -c opt build")
    parser.add_argument("--worlds", default="1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2, help="store_rdzv_load processes")
    parser.add_argument("--no_heartbeats", action="store_true",
                        help="simulated members do not heartbeat (a diagnostic, not a real job)")
    parser.add_argument("--wait_timeout_s", type=float, default=120)
    parser.add_argument("--daemon_log_level", default="info")
    parser.add_argument("--tcpstore_procs", type=int, default=8)
    parser.add_argument("--tcpstore_timeout_s", type=int, default=150)
    parser.add_argument("--no_tcpstore", action="store_true")
    parser.add_argument("--no_data_dir", action="store_true", help="in-memory daemon only")
    parser.add_argument("--baseline_splitd",
                        help="a second splitd binary, run beside --bin's in every run and "
                        "reported as the baseline (e.g. the daemon before a change)")
    parser.add_argument("--perf_dir", help="record the daemon's store phase with perf here "
                        "(a diagnostic: perf's sampling slows the daemon)")
    parser.add_argument("--max_load", type=float, default=1.5)
    parser.add_argument("--load_wait_s", type=int, default=600)
    args = parser.parse_args()
    worlds = [int(w) for w in args.worlds.split(",")]

    rows, references = [], []
    states = (False,) if args.no_data_dir else (False, True)
    daemons = [("", os.path.join(args.bin, "daemon/splitd"))]
    if args.baseline_splitd:
        daemons.append((" baseline", args.baseline_splitd))
    # The reference of the largest worlds runs after every splitd series: if it brings the
    # machine down, it does so after them.
    deferred = []
    for run in range(args.runs):
        for world in worlds:
            for durable, (label, splitd) in [(d, x) for d in states for x in daemons]:
                state = ("data_dir" if durable else "memory") + label
                workdir = tempfile.mkdtemp(prefix="splitd-rdzv-")
                try:
                    load = wait_for_quiet(args, "splitd %s N=%d" % (state, world))
                    figures = run_splitd(args, world, durable, workdir, splitd)
                except Exception as error:  # one failed run is a result, not the end
                    figures = {"world": world, "ok": False, "first_error": str(error)}
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                figures["run"], figures["load"], figures["state"] = run + 1, load, state
                rows.append(figures)
                log("run %d splitd: %s" % (run + 1, json.dumps(figures)))
            if not args.no_tcpstore:
                if world >= 10000:
                    deferred.append((run, world))
                    continue
                workdir = tempfile.mkdtemp(prefix="splitd-rdzv-ref-")
                try:
                    load = wait_for_quiet(args, "tcpstore N=%d" % world)
                    reference = run_tcpstore(world, args.tcpstore_procs, args.tcpstore_timeout_s,
                                             workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                reference.update(world=world, run=run + 1, load=load)
                references.append(reference)
                log("run %d tcpstore: %s" % (run + 1, json.dumps(reference)))
    for run, world in deferred:
        workdir = tempfile.mkdtemp(prefix="splitd-rdzv-ref-")
        try:
            load = wait_for_quiet(args, "tcpstore N=%d" % world)
            reference = run_tcpstore(world, args.tcpstore_procs, args.tcpstore_timeout_s, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        reference.update(world=world, run=run + 1, load=load)
        references.append(reference)
        log("run %d tcpstore: %s" % (run + 1, json.dumps(reference)))

    print("splitd: %d store_rdzv_load processes, heartbeats %s; medians of %d runs [every run]" %
          (args.procs, "off" if args.no_heartbeats else "on", args.runs))
    keys = [("register_s", "register s"), ("launch_s", "first -> last rank start s"),
            ("id_s", "all hold the id s"), ("counted_s", "count reached N s"),
            ("start_to_done_s", "last start -> all done s"), ("total_s", "total s"),
            ("daemon_rss_planned_mib", "daemon RSS before store MiB"),
            ("daemon_hwm_mib", "daemon peak RSS MiB"), ("daemon_cpu_store_s", "daemon CPU s")]
    summary = {}
    all_states = [s + label for s in ("memory", "data_dir") for label, _ in daemons]
    for world in worlds:
        for state in all_states:
            mine = [r for r in rows if r["world"] == world and r["state"] == state]
            if not mine:
                continue
            print("N=%d %s: ok %d/%d, loads %s" % (world, state, sum(1 for r in mine if r["ok"]),
                                                   len(mine),
                                                   " ".join("%.2f" % r["load"] for r in mine)))
            for key, name in keys:
                values = [r.get(key) if r.get("ok") else None for r in mine]
                summary[(world, state, key)] = median(values)
                print("  %-32s %8s  [%s]" % (name, fmt(summary[(world, state, key)]),
                                             ", ".join(fmt(v) for v in values)))
            failed = [r for r in mine if not r.get("ok")]
            for r in failed:
                print("  run %d failed: %s %s" % (r["run"], r.get("errors"), r.get("first_error")))
    if references:
        print()
        print("TCPStore reference (%d client processes): all joined s / plan delivered after "
              "last join s / total s" % args.tcpstore_procs)
        for world in worlds:
            mine = [r for r in references if r["world"] == world]
            if not mine:
                continue
            totals = [r.get("total_s") for r in mine]
            summary[(world, "tcpstore", "total_s")] = median(totals)
            print("N=%d: loads %s" % (world, " ".join("%.2f" % r["load"] for r in mine)))
            for key in ("all_joined_s", "plan_delivered_after_last_join_s", "total_s"):
                values = [r.get(key) for r in mine]
                print("  %-32s %8s  [%s]" % (key, fmt(median(values)),
                                             ", ".join(fmt(v) for v in values)))
            for r in mine:
                if "error" in r:
                    print("  run %d failed: %s; peak threads %d; %s; socket timeouts %d" % (
                        r["run"], r["error"], r["peak_threads"], r["first_error"],
                        r["socket_timeouts"]))
        print()
        print("ratios of medians, splitd total / TCPStore total:")
        for world in worlds:
            ref = summary.get((world, "tcpstore", "total_s"))
            for state in all_states:
                ours = summary.get((world, state, "total_s"))
                if ours is not None and ref:
                    print("  N=%d %s: %.2f" % (world, state, ours / ref))
                elif ours is not None:
                    print("  N=%d %s: no reference figure" % (world, state))
    if args.baseline_splitd:
        print()
        print("ratios of medians, splitd / baseline splitd (last start -> all done; total):")
        for world in worlds:
            for state in ("memory", "data_dir"):
                new = [summary.get((world, state, k)) for k in ("start_to_done_s", "total_s")]
                old = [summary.get((world, state + " baseline", k))
                       for k in ("start_to_done_s", "total_s")]
                print("  N=%d %s: %s" % (world, state, ", ".join(
                    "%.2f" % (a / b) if a is not None and b else "-" for a, b in zip(new, old))))
    print()
    print("raw:", json.dumps({"splitd": rows, "tcpstore": references}))
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
