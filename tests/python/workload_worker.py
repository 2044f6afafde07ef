#!/usr/bin/env python3
"""One workload process of the workload tests, on the endpoint path: reads its plan (with the
layout) from its agent's socket, starts the world with splitd_groups.init_world (the agent's
store: no MASTER_ADDR, no TCPStore), creates the groups with create_groups (which reports to the
agent and validates each group), all-reduces rank + 1 in each group and writes one JSON record
to --out.

--pause_before DETAIL holds the process just before it would report DETAIL (e.g. "validating
tp": the rank stays SPLITTING, after creating every group) and writes --pause_marker, so that
the test can SIGSTOP it there.
"""

import argparse
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
from splitd_groups import endpoint  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402


def hold_before(detail, marker):
    """Makes every report of `detail` wait, forever, after writing `marker`."""
    original = endpoint.Reporter.report

    def report(self, phase, detail_="", *args, **kwargs):
        if detail_ == detail:
            with open(marker + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(marker + ".tmp", marker)
            while True:
                time.sleep(3600)
        return original(self, phase, detail_, *args, **kwargs)

    endpoint.Reporter.report = report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--plan_file", required=True, help="locates the agent's socket")
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--pause_before", default=None)
    parser.add_argument("--pause_marker", default=None)
    parser.add_argument("--backend", default="gloo", help="the world's, e.g. nccl")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: a world bound to GPU --local_index (device_id)")
    parser.add_argument("--local_index", type=int, default=0)
    args = parser.parse_args()
    faulthandler.register(signal.SIGTERM, chain=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    lines = []  # splitd_groups' log: how each kind was created
    collect = logging.Handler()
    collect.emit = lambda rec: lines.append(rec.getMessage())
    logging.getLogger("splitd_groups").addHandler(collect)
    if args.pause_before:
        hold_before(args.pause_before, args.pause_marker)

    def emit(record):
        with open(args.out, "a") as f:
            f.write(json.dumps(record) + "\n")

    plan = splitd_groups.plan_from_agent(plan_file=args.plan_file, timeout=args.timeout)
    device, device_id = torch.device("cpu"), None
    if args.device == "cuda":
        device = device_id = torch.device("cuda", args.local_index)
        torch.cuda.set_device(device)
    try:
        store = splitd_groups.init_world(plan, args.backend, device_id=device_id,
                                         timeout=args.timeout)
        # PyTorch 2.x keeps the store it was given behind a PrefixStore ("default_pg").
        default_store = dist.distributed_c10d._get_default_store()
        while getattr(default_store, "underlying_store", None) is not None:
            default_store = default_store.underlying_store
        groups = splitd_groups.create_groups(plan, timeout=args.timeout)
        record = {"epoch": plan.epoch, "rank": plan.rank, "world_size": plan.world_size,
                  "torch_version": torch.__version__, "socket": plan.socket,
                  "layout": {k: [list(g) for g in v] for k, v in plan.layout.groups.items()}
                  if plan.layout is not None else None,
                  "store": type(store).__module__ + "." + type(store).__name__,
                  "default_store_is_ours": default_store is store,
                  "store_keys": store.num_keys(), "groups": {}, "log": lines,
                  "split_group": hasattr(dist, "split_group"),
                  "bound_device": str(getattr(dist.distributed_c10d._get_default_group(),
                                              "bound_device_id", None))}
        for kind, pg in groups.items():
            x = torch.full((4,), float(plan.rank + 1), device=device)
            dist.all_reduce(x, group=pg)
            record["groups"][kind] = {"ranks": list(plan.groups[kind].ranks),
                                      "torch_size": dist.get_world_size(pg),
                                      "backend": str(dist.get_backend(pg)),
                                      "allreduce": x.cpu().tolist()}
        dist.barrier()
        dist.destroy_process_group()
    except Exception as e:
        emit({"epoch": plan.epoch, "rank": plan.rank, "exception": f"{type(e).__name__}: {e}"})
        raise
    emit(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
