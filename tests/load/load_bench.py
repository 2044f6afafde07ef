#!/usr/bin/env python3
"""Control plane under load: splitd with thousands of simulated agents, beside a TCPStore rendezvous.

For each member count N and each run:
  - splitd with in-memory state, then splitd with --data_dir on a fresh temporary directory:
    a fresh daemon, a topology of world N (dims tp=8 dp=N/8, 8 ranks per node) applied with
    splitctl, then `load_agents --members N` (registration, one WatchPlan stream per member,
    heartbeats). The daemon's VmRSS, VmHWM and thread count are sampled from /proc/PID/status
    while the load runs and once more after load_agents has closed its streams;
  - the reference: /usr/bin/python3 ../shared/bench/tcpstore_rdzv_bench.py N PROCS (N c10d
    TCPStore clients join by incrementing a counter, then block on reading a 1 KB plan).
With --metrics, each splitd configuration runs twice, side by side: as above, and with
--metrics_listen, /metrics scraped once a second during the load (as a Prometheus server would).
Prints one table per side.

Usage (binaries built with -c opt; see docs/benchmarks.md):
  tests/load/load_bench.py --bin "$(bazel info -c opt bazel-bin)" --members 1000,10000
"""

import argparse
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TCPSTORE_BENCH = os.path.join(os.path.dirname(ROOT), "shared", "bench", "tcpstore_rdzv_bench.py")

sys.path.insert(0, os.path.join(HERE, "..", "testing"))
from procs import proc_status, stop, wait_for_port  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "python"))
from etcd_procs import Etcd  # noqa: E402

# load_agents heartbeats only once every member holds the plan: a lease longer than the whole
# registration keeps the first members alive meanwhile (at 100,000 members registration takes
# longer than the default 10 s lease, and the world would never complete).
TOPOLOGY = """cluster: load
dims:
  - {{name: tp, size: 8}}
  - {{name: dp, size: {dp}}}
nodes: {{gpus_per_node: 8}}
elastic: {{lease_timeout_ms: 600000}}
"""

# With --explicit_lists: one more kind given as rank lists (pairs of neighbours), which every
# member's plan carries: a plan of O(world) bytes.
EXPLICIT_GROUPS = """groups:
  - {{name: tp, dims: [tp]}}
  - {{name: dp, dims: [dp]}}
  - {{name: pairs, split_ranks: [{pairs}]}}
"""


def topology(members, explicit_lists):
    text = TOPOLOGY.format(dp=members // 8)
    if explicit_lists:
        pairs = ", ".join("[%d, %d]" % (r, r + 1) for r in range(0, members, 2))
        text += EXPLICIT_GROUPS.format(pairs=pairs)
    return text


class Sampler(threading.Thread):
    """Samples a process's /proc status every `period` seconds until stopped."""

    def __init__(self, pid, period=0.05):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.stop_event = threading.Event()
        self.max_rss_kib = 0
        self.max_threads = 0
        self.samples = 0

    def run(self):
        while not self.stop_event.is_set():
            status = proc_status(self.pid)
            if status is None:
                return
            self.max_rss_kib = max(self.max_rss_kib, status["VmRSS"])
            self.max_threads = max(self.max_threads, status["Threads"])
            self.samples += 1
            self.stop_event.wait(self.period)

    def stop(self):
        self.stop_event.set()
        self.join()


class Scraper(threading.Thread):
    """GETs http://ADDR/metrics once a second until stopped; counts scrapes and their times."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.url = "http://%s/metrics" % addr
        self.stopping = threading.Event()
        self.seconds = []
        self.bytes = 0
        self.errors = 0

    def run(self):
        while not self.stopping.wait(1.0):
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as reply:
                    self.bytes = len(reply.read())
                self.seconds.append(time.monotonic() - start)
            except OSError:
                self.errors += 1

    def stop(self):
        self.stopping.set()
        self.join()


def run_splitd(args, members, state, workdir, metrics=False):
    """One fresh daemon under load, its state in `state` (memory, data_dir, or etcd: one replica
    over a fresh one-member etcd with fsync on); returns load_agents' RESULT plus the daemon's
    figures."""
    port_file = os.path.join(workdir, "port")
    metrics_port_file = os.path.join(workdir, "metrics_port")
    command = [os.path.join(args.bin, "daemon/splitd"), "--listen=127.0.0.1:0",
               "--port_file=" + port_file, "--log_level=" + args.daemon_log_level]
    etcd = None
    if state == "data_dir":
        command.append("--data_dir=" + os.path.join(workdir, "data"))
    elif state == "etcd":
        etcd = Etcd(workdir, 1, fsync=True)
        command.append("--etcd_endpoints=" + etcd.endpoints())
    command += args.daemon_arg
    if metrics:
        command += ["--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + metrics_port_file]
    log = open(os.path.join(workdir, "splitd.log"), "wb")
    daemon = subprocess.Popen(command, stderr=log)
    scraper = None
    try:
        addr = wait_for_port(port_file, daemon)
        if etcd is not None:  # the port is served before the replica leads
            deadline = time.monotonic() + 30
            while subprocess.run([os.path.join(args.bin, "client/splitctl"), "--addr", addr,
                                  "get", "clusters"], capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the replica did not lead within 30 s")
                time.sleep(0.05)
        if metrics:
            scraper = Scraper(wait_for_port(metrics_port_file, daemon))
            scraper.start()
        subprocess.run([os.path.join(args.bin, "client/splitctl"), "--addr", addr, "apply", "-f",
                        "-"], check=True, stdout=subprocess.DEVNULL,
                       input=topology(members, args.explicit_lists).encode())
        idle = proc_status(daemon.pid)
        sampler = Sampler(daemon.pid)
        sampler.start()
        load = subprocess.run(
            [os.path.join(args.bin, "tests/load/load_agents"), "--daemon=" + addr,
             "--cluster=load", "--members=%d" % members,
             "--heartbeat_interval_ms=%d" % args.heartbeat_interval_ms,
             "--duration_s=%g" % args.duration_s, "--concurrency=%d" % args.concurrency],
            capture_output=True, timeout=args.duration_s + 300)
        during = proc_status(daemon.pid)
        sampler.stop()
        if scraper is not None:
            scraper.stop()
        time.sleep(1.0)  # let the daemon release the closed streams
        after = proc_status(daemon.pid)
        result = None
        for line in load.stdout.decode().splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        if result is None:
            raise RuntimeError("no RESULT from load_agents (exit %d): %s" %
                               (load.returncode, load.stderr.decode()[-2000:]))
        result["exit_code"] = load.returncode
        if load.returncode != 0:
            result["stderr_tail"] = load.stderr.decode()[-500:]
        result["daemon"] = {
            "idle_rss_mib": idle["VmRSS"] / 1024, "idle_threads": idle["Threads"],
            "peak_rss_mib": max(sampler.max_rss_kib, during["VmHWM"]) / 1024,
            "hwm_rss_mib": (after or during)["VmHWM"] / 1024,
            "max_threads": sampler.max_threads,
            "after_rss_mib": after["VmRSS"] / 1024 if after else float("nan"),
            "after_threads": after["Threads"] if after else -1,
            "samples": sampler.samples,
        }
        if scraper is not None:
            times = sorted(scraper.seconds)
            result["scrapes"] = {
                "count": len(times), "errors": scraper.errors, "bytes": scraper.bytes,
                "p50_ms": 1000 * times[len(times) // 2] if times else float("nan"),
                "max_ms": 1000 * times[-1] if times else float("nan"),
            }
        return result
    finally:
        if scraper is not None and scraper.is_alive():
            scraper.stop()
        stop([daemon], 30)
        if etcd is not None:
            etcd.stop()


def run_tcpstore(members, procs, timeout):
    """The reference; returns its figures, or {"error": ...} when it fails or times out."""
    # Its own session, so that a timeout ends the client processes too, not only the master.
    proc = subprocess.Popen(["/usr/bin/python3", TCPSTORE_BENCH, str(members), str(procs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": "timed out after %d s" % timeout}
    for line in stdout.decode().splitlines():
        if line.startswith("RESULT tcpstore "):
            figures = {}
            for word in line.split()[2:]:
                key, _, value = word.partition("=")
                figures[key] = float(value) if "." in value else int(value)
            return figures
    lines = [l for l in stderr.decode().splitlines() if l.strip()]
    return {"error": "exit %d: %s" % (proc.returncode, lines[-1] if lines else "no output")}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="bazel-bin of a -c opt build")
    parser.add_argument("--members", default="1000,10000", help="comma-separated; multiples of 8")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--duration_s", type=float, default=10.0, help="heartbeat phase")
    parser.add_argument("--heartbeat_interval_ms", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=256, help="Register calls in flight")
    parser.add_argument("--daemon_log_level", default="info")
    parser.add_argument("--daemon_arg", action="append", default=[],
                        help="one more flag for splitd (repeatable), e.g. --daemon_arg=--shutdown_grace_ms=1000")
    parser.add_argument("--explicit_lists", action="store_true",
                        help="add a kind of explicit rank lists: every plan is O(world) bytes")
    parser.add_argument("--keep_workdir", action="store_true",
                        help="keep each run's directory (the daemon's log and state)")
    parser.add_argument("--tcpstore_procs", type=int, default=8)
    parser.add_argument("--tcpstore_timeout_s", type=int, default=150)
    parser.add_argument("--tcpstore_max_members", type=int, default=10000,
                        help="skip the reference above this count (Debian's torch 1.13 makes one "
                        "client thread per store: 10,000 threads swamp a 2-core machine)")
    parser.add_argument("--no_tcpstore", action="store_true", help="skip the TCPStore reference")
    parser.add_argument("--etcd", action="store_true",
                        help="also run splitd as a replica over etcd (/usr/bin/etcd, fsync on)")
    parser.add_argument("--metrics", action="store_true",
                        help="also run each configuration with --metrics_listen, scraped every 1 s")
    args = parser.parse_args()
    counts = [int(n) for n in args.members.split(",")]
    if any(n % 8 for n in counts):
        parser.error("--members must be multiples of 8 (topology tp=8)")

    rows, references = [], []
    failed = False
    for run in range(args.runs):
        for members in counts:
            states = ["memory", "data_dir"] + (["etcd"] if args.etcd else [])
            for state, metrics in [(d, m) for d in states
                                   for m in ((False, True) if args.metrics else (False,))]:
                workdir = tempfile.mkdtemp(prefix="splitd-load-")
                try:
                    result = run_splitd(args, members, state, workdir, metrics)
                finally:
                    if not args.keep_workdir:
                        shutil.rmtree(workdir, ignore_errors=True)
                result["state"] = state + ("+metrics" if metrics else "")
                failed |= result["exit_code"] != 0
                rows.append(result)
                print("run %d: splitd %s N=%d done: %s" % (run + 1, result["state"], members,
                                                           json.dumps(result)), file=sys.stderr)
            if not args.no_tcpstore and members <= args.tcpstore_max_members:
                reference = run_tcpstore(members, args.tcpstore_procs, args.tcpstore_timeout_s)
                reference["N"] = members
                references.append(reference)
                print("run %d: tcpstore N=%d done: %s" % (run + 1, members, json.dumps(reference)),
                      file=sys.stderr)

    print("splitd (heartbeat every %d ms for %g s; %d Register calls in flight)" %
          (args.heartbeat_interval_ms, args.duration_s, args.concurrency))
    header = ("members", "state", "register/s", "register s", "plan: all held after last reg s",
              "hb p50 ms", "hb p99 ms", "hb max ms", "daemon RSS peak MiB", "RSS after MiB",
              "threads idle/max/after", "load_agents threads", "errors r/w/h/p")
    print(" | ".join(header))
    for r in rows:
        d, e = r["daemon"], r["errors"]
        plan = r["all_plans_after_last_register_s"]
        print(" | ".join([
            str(r["members"]), r["state"], "%.0f" % r["register_per_s"], "%.3f" % r["register_s"],
            "%.4f" % plan if plan is not None else "not all",
            "%.3f" % r["heartbeat_p50_ms"], "%.3f" % r["heartbeat_p99_ms"],
            "%.3f" % r["heartbeat_max_ms"], "%.1f" % d["peak_rss_mib"],
            "%.1f" % d["after_rss_mib"],
            "%d/%d/%d" % (d["idle_threads"], d["max_threads"], d["after_threads"]),
            str(r["client_threads"]),
            "%d/%d/%d/%d" % (e["register"], e["watch"], e["heartbeat"], e["plan"])]))
    scraped = [r for r in rows if "scrapes" in r]
    if scraped:
        print()
        print("members | state | scrapes | scrape errors | scrape p50 ms | scrape max ms | bytes")
        for r in scraped:
            sc = r["scrapes"]
            print("%d | %s | %d | %d | %.2f | %.2f | %d" % (
                r["members"], r["state"], sc["count"], sc["errors"], sc["p50_ms"], sc["max_ms"],
                sc["bytes"]))
    if references:
        print()
        print("TCPStore reference (%d client processes)" % args.tcpstore_procs)
        print("members | all joined s | plan delivered after last join s | total s")
        for ref in references:
            if "error" in ref:
                print("%d | failed: %s" % (ref["N"], ref["error"]))
            else:
                print("%d | %.3f | %.3f | %.3f" % (ref["N"], ref["all_joined_s"],
                                                   ref["plan_delivered_after_last_join_s"],
                                                   ref["total_s"]))
    print()
    print("raw:", json.dumps({"splitd": rows, "tcpstore": references}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
