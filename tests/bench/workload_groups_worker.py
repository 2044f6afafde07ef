#!/usr/bin/env python3
"""One workload process of tests/bench/workload_groups_bench.py: forms its world and the plan's
groups with splitd_groups and writes the instants (Unix seconds) of each step to --out.

--mode endpoint: the plan (with its layout) from the agent's socket, the world on the daemon's
    rendezvous space through the agent (splitd_groups.init_world), then create_groups, which
    validates each group and reports to the agent (readiness: workload makes that the cluster's
    READY).
--mode plan_file: today's path: wait for the agent's READY plan file, init_process_group over a
    TCPStore that rank 0 hosts on 127.0.0.1:--master_port, then create_groups(validate=True)
    (one all_gather_object of the layout, new_group for every group, one all-reduce each).
Both end with a world barrier and destroy_process_group, as the PyTorch reference does.

--count_store_ops (endpoint): also counts the store calls c10d makes through splitd_groups.Store
and the time spent in them, during world init and during create_groups (a diagnostic).
"""

import time

STARTED = time.time()  # before torch is imported: the import is part of a job's start

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client",
                                "python"))

import splitd_groups  # noqa: E402
import torch.distributed as dist  # noqa: E402


class StoreOps:
    """Counts and times the calls made on splitd_groups.Store, per phase of the worker."""

    METHODS = ("set", "get", "add", "compare_set", "check", "wait", "multi_get", "num_keys",
               "delete_key")

    def __init__(self):
        self.phase = "world"
        self.ops = {}

    def install(self):
        store_class = splitd_groups.Store
        for name in self.METHODS:
            original = getattr(store_class, name)

            def timed(store, *args, _original=original, _name=name, **kwargs):
                started = time.perf_counter()
                try:
                    return _original(store, *args, **kwargs)
                finally:
                    entry = self.ops.setdefault(self.phase, {}).setdefault(_name, [0, 0.0])
                    entry[0] += 1
                    entry[1] += time.perf_counter() - started

            setattr(store_class, name, timed)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("endpoint", "plan_file"), required=True)
    parser.add_argument("--socket", help="the agent's workload socket (endpoint)")
    parser.add_argument("--plan_file", help="the agent's plan file (plan_file)")
    parser.add_argument("--master_port", type=int, help="TCPStore port of rank 0 (plan_file)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--count_store_ops", action="store_true")
    args = parser.parse_args()
    record = {"started": STARTED, "imported": time.time()}
    counter = None
    if args.count_store_ops and args.mode == "endpoint":
        counter = StoreOps()
        counter.install()
    try:
        if args.mode == "endpoint":
            plan = splitd_groups.plan_from_agent(socket=args.socket, timeout=args.timeout)
            record["plan"] = time.time()
            splitd_groups.init_world(plan, "gloo", timeout=args.timeout, socket=args.socket)
            record["world"] = time.time()
            if counter is not None:
                counter.phase = "groups"
            groups = splitd_groups.create_groups(plan, timeout=args.timeout)
            if counter is not None:
                counter.phase = "teardown"
                record["store_ops"] = counter.ops
        else:
            plan = splitd_groups.wait_for_epoch(args.plan_file, timeout=args.timeout)
            record["plan"] = time.time()
            dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % args.master_port,
                                    rank=plan.rank, world_size=plan.world_size)
            record["world"] = time.time()
            groups = splitd_groups.create_groups(plan, timeout=args.timeout, validate=True)
        record["groups_ready"] = time.time()
        record.update(rank=plan.rank, kinds=sorted(groups))
        dist.barrier()
        dist.destroy_process_group()
        record["exited"] = time.time()
    except Exception as e:
        record["error"] = "%s: %s" % (type(e).__name__, e)
        raise
    finally:
        with open(args.out, "w") as f:
            json.dump(record, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
