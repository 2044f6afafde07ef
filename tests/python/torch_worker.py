#!/usr/bin/env python3
"""One workload process of the integration test: reads its agent's plan file, joins a Gloo world
of the plan's rank and size, creates the plan's groups with splitd_groups, all-reduces in each,
and appends one JSON record per epoch to --out, until it has formed the groups of --epochs
epochs. A SPARE plan is recorded ({"spare": true}) and waited past; an EXCLUDED one ends the
process with a record {"excluded": true} and exit code 0.

The world's TCP store: the process that gets plan rank 0 serves it on a free port of 127.0.0.1
and publishes the port in --store_dir/epoch-<N>.port; the others read it from there.
"""

import argparse
import datetime
import faulthandler
import json
import logging
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client",
                                "python"))

import splitd_groups  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402


def store_for(plan, store_dir, timeout):
    path = os.path.join(store_dir, f"epoch-{plan.epoch}.port")
    if plan.rank == 0:
        # Not waiting for the others here: they learn the port from the file written below.
        store = dist.TCPStore("127.0.0.1", 0, plan.world_size, True, timeout,
                              wait_for_workers=False)
        tmp = path + f".tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(str(store.port))
        os.rename(tmp, path)
        return store
    deadline = time.monotonic() + timeout.total_seconds()
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no store port in {path}")
        time.sleep(0.02)
    with open(path) as f:
        port = int(f.read())
    return dist.TCPStore("127.0.0.1", port, plan.world_size, False, timeout)


def run_epoch(plan, args, timeout):
    store = store_for(plan, args.store_dir, timeout)
    extra = {}
    device = torch.device("cpu")
    if args.device == "cuda":
        # A device-bound world: what split_group needs (PyTorch >= 2.5 has device_id).
        device = torch.device("cuda", args.local_index)
        torch.cuda.set_device(device)
        extra["device_id"] = device
    dist.init_process_group(args.world_backend, store=store, rank=plan.rank,
                            world_size=plan.world_size, timeout=timeout, **extra)
    layout = None
    if args.layout == "splitctl":
        layout = splitd_groups.fetch_full_plan(plan, addr=args.daemon, splitctl=args.splitctl)
    started = time.perf_counter()
    groups = splitd_groups.create_groups(plan, method=args.method, timeout=timeout,
                                         layout=layout)
    create_s = time.perf_counter() - started
    record = {"epoch": plan.epoch, "rank": plan.rank, "world_size": plan.world_size,
              "torch_version": torch.__version__, "create_s": round(create_s, 4),
              "layout": args.layout, "groups": {}}
    for kind, pg in groups.items():
        x = torch.full((8,), float(plan.rank + 1), device=device)
        dist.all_reduce(x, group=pg)
        record["groups"][kind] = {
            "ranks": list(plan.groups[kind].ranks),
            "torch_rank": dist.get_rank(pg), "torch_size": dist.get_world_size(pg),
            "allreduce": x.cpu().tolist(),
        }
    dist.barrier()
    dist.destroy_process_group()
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--plan_file", required=True)
    parser.add_argument("--store_dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--method", default="auto")
    parser.add_argument("--layout", choices=["gather", "splitctl"], nargs="+",
                        default=["gather"], help="per epoch; the last one repeats")
    parser.add_argument("--daemon", default=None)
    parser.add_argument("--splitctl", default="splitctl")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--world_backend", default="gloo",
                        help='e.g. "cpu:gloo,cuda:nccl" on a GPU machine')
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--local_index", type=int, default=0, help="the agent's device index")
    parser.add_argument("--log_level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s: %(message)s")
    # A hung worker shows where it hangs when the test stops it.
    faulthandler.register(signal.SIGTERM, chain=True)
    timeout = datetime.timedelta(seconds=args.timeout)
    layouts = args.layout

    def emit(record):
        with open(args.out, "a") as f:
            f.write(json.dumps(record) + "\n")

    after = None
    formed = 0
    while formed < args.epochs:
        try:
            plan = splitd_groups.wait_for_epoch(args.plan_file, after=after, timeout=args.timeout,
                                                return_spare=True)
        except splitd_groups.ExcludedError as e:
            emit({"excluded": True, "epoch": e.plan.epoch, "error": e.plan.error})
            return 0
        after = plan.epoch
        if plan.state == "SPARE":  # no rank in this epoch: wait for a later one
            emit({"spare": True, "epoch": plan.epoch})
            continue
        args.layout = layouts[min(formed, len(layouts) - 1)]
        try:
            emit(run_epoch(plan, args, timeout))
        except Exception as e:  # reported to the test, which names the rank
            emit({"epoch": plan.epoch, "rank": plan.rank, "exception": f"{type(e).__name__}: {e}"})
            raise
        formed += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
