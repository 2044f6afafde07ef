"""Creating a plan's groups in PyTorch: torch.distributed.split_group where this PyTorch has it
and the kind can be split, new_group otherwise.

Collective group creation must be entered by every rank of the world, for every group, in one
order. The plan file only lists this rank's own groups (and omits kinds the rank takes no part
in), so by default create_groups() first runs one all_gather_object over the world: it checks
that every rank holds the same epoch and fingerprint, that torch ranks equal plan ranks, that
the groups agree member by member, and rebuilds every group of every kind in canonical order.
A plan read from the agent's workload endpoint carries that layout already, and is used as is.

When the plan names its agent's endpoint, create_groups reports its progress there (SPLITTING
per kind, VALIDATING, READY or FAILED) and checks every group it made with one all-reduce of
ones, which must give the group's size.
"""

import datetime
import inspect
import logging
import time
from typing import Any, Dict, List, Optional, Union

from .endpoint import Reporter
from .plan import (Layout, Plan, PlanError, check_ascending, check_plan_against_layout,
                   consolidate, contribution)

METHODS = ("auto", "split", "new_group", "new_group_local")

logger = logging.getLogger("splitd_groups")


class ValidationError(RuntimeError):
    """A created group's all-reduce of ones did not give the group's size."""


def _device_backends(backend: str) -> Dict[str, str]:
    if ":" not in backend:
        return {"*": backend}
    return dict(pair.split(":", 1) for pair in backend.split(","))


def _torch_backend(dist, backend: Optional[str], kind: str) -> Optional[str]:
    """The backend argument this PyTorch's new_group takes for a plan backend string."""
    if backend is None:
        return None  # the world's backend
    pairs = _device_backends(backend)
    for name in set(pairs.values()):
        available = {"gloo": dist.is_gloo_available, "nccl": dist.is_nccl_available,
                     "mpi": dist.is_mpi_available}.get(name)
        if available is not None and not available():
            raise PlanError(f"kind {kind}: backend {backend!r} needs {name}, which this PyTorch "
                            f"lacks; pass create_groups(..., backend=...) to override")
    if "*" in pairs:
        return pairs["*"]
    # "device:backend" strings arrived with BackendConfig (PyTorch 2.0).
    if hasattr(dist.distributed_c10d, "BackendConfig"):
        return backend
    names = set(pairs.values())
    if len(names) == 1:
        return names.pop()
    raise PlanError(f"kind {kind}: backend {backend!r} asks for one group with several "
                    f"backends, which this PyTorch cannot form; pass backend='gloo' or 'nccl'")


def _timeout(timeout) -> Optional[datetime.timedelta]:
    if timeout is None or isinstance(timeout, datetime.timedelta):
        return timeout
    return datetime.timedelta(seconds=float(timeout))


def _bound_device(dist):
    return getattr(dist.distributed_c10d._get_default_group(), "bound_device_id", None)


def _can_split(dist, backend: Optional[str], layout: Optional[Layout], kind: str) -> bool:
    """Whether `auto` splits this kind: split_group exists, the world is bound to a device
    (init_process_group(device_id=...), which split_group requires), the kind is NCCL only
    (split_group gives the parent's device backend, not a CPU one), and, when known, every rank
    is in a group of the kind (a NOCOLOR rank does not advance PyTorch's group counter, which
    would desynchronize the names of later new_group calls)."""
    if not hasattr(dist, "split_group") or _bound_device(dist) is None:
        return False
    if backend is None or set(_device_backends(backend).items()) not in (
            {("cuda", "nccl")}, {("*", "nccl")}):
        return False
    return layout is None or layout.covers_world(kind)


def _supported_kwargs(fn, **kwargs):
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params and v is not None}


def gather_layout(plan: Plan) -> Layout:
    """The full layout of `plan`'s epoch from one all_gather_object over the default group,
    checked across ranks (every rank raises the same PlanError, or none does)."""
    import torch.distributed as dist
    contributions = [None] * dist.get_world_size()
    dist.all_gather_object(contributions,
                           contribution(plan, dist.get_rank(), dist.get_world_size()))
    return consolidate(contributions)


def create_groups(plan: Plan, *, backend: Optional[str] = None, method: str = "auto",
                  timeout: Union[None, float, datetime.timedelta] = None,
                  layout: Optional[Layout] = None, verify: bool = True,
                  report: Optional[bool] = None,
                  validate: Optional[bool] = None) -> Dict[str, object]:
    """Creates every group of `plan` in torch.distributed and returns {kind: ProcessGroup} for
    the kinds this rank is in, in kind order.

    Needs an initialized default group whose rank and world size are the plan's. Collective over
    the world: every rank must call it with its own plan of the same epoch.

    backend: None takes each kind's backend from the plan ("cpu:gloo,cuda:nccl" as such on
        PyTorch >= 2.0); a string ("gloo", "nccl", "cpu:gloo") is used for every kind, e.g. to
        build the CPU companion groups vLLM keeps next to its device groups.
    method: "auto" (split_group where possible, else new_group), "split" (split_group for every
        kind), "new_group" (every rank creates every group), "new_group_local"
        (new_group(use_local_synchronization=True), only the members; PyTorch >= 2.1, not with
        a device-bound NCCL world).
    timeout: seconds or a timedelta for each created group; None: PyTorch's default.
    layout: every group of the epoch, e.g. fetch_full_plan(plan); checked against the plan.
        None takes the plan's own layout when it came from the agent's endpoint.
    verify: without any layout, gather and check every rank's plan (one all_gather_object).
        Without it, only the plan file is used, which suffices for split_group and
        new_group_local when every kind covers every rank; new_group needs a layout then.
    report: report progress to the agent's endpoint (SPLITTING "creating <kind>" before each
        kind, VALIDATING, then READY with each kind's validation, or FAILED with the error).
        None: when the plan names the endpoint. Where one process calls create_groups twice
        (device and CPU groups), pass report=False to all but the last call.
    validate: all-reduce a tensor of ones in each of this rank's groups and check that it sums
        to the group's size (ValidationError otherwise). None: when reporting.
    """
    reporter = Reporter.for_plan(plan) if report or report is None else None
    if report and reporter is None:
        reporter = Reporter(plan)  # the socket from $SPLITD_SOCKET or beside the plan file
    if validate is None:
        validate = reporter is not None
    results: List[Dict[str, Any]] = []
    stage = ["starting"]
    try:
        groups = _create(plan, backend, method, timeout, layout, verify, reporter, stage)
        if validate:
            _validate(plan, groups, reporter, results, stage)
    except Exception as e:
        if reporter is not None:
            reporter.report("FAILED", stage[0], groups=results, error=f"{type(e).__name__}: {e}")
        raise
    if reporter is not None:
        reporter.report("READY", groups=results)
    return groups


def _create(plan: Plan, backend: Optional[str], method: str, timeout, layout: Optional[Layout],
            verify: bool, reporter: Optional[Reporter], stage: List[str]) -> Dict[str, object]:
    import torch.distributed as dist

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialized: call init_process_group "
                           f"with rank={plan.rank} and world_size={plan.world_size} first")
    timeout = _timeout(timeout)

    if layout is None and plan.layout is not None:
        layout = plan.layout  # the agent's, checked against the plan when it was parsed
    gathered = False
    if layout is not None:
        problems = check_plan_against_layout(plan, layout)
        if problems:
            raise PlanError("; ".join(problems))
    elif verify:
        stage[0] = "gathering the layout"
        layout = gather_layout(plan)
        gathered = True
    if not gathered:
        # Only this rank's view: refuse what the gather would have caught, locally.
        if not plan.ready:
            raise PlanError(f"plan state is {plan.state}, not READY")
        if (dist.get_rank(), dist.get_world_size()) != (plan.rank, plan.world_size):
            raise PlanError(f"torch rank {dist.get_rank()} of {dist.get_world_size()}, plan rank "
                            f"{plan.rank} of {plan.world_size}")
        if layout is None and method == "new_group":
            raise PlanError("method new_group needs every group of every kind: pass layout= "
                            "(fetch_full_plan) or verify=True")

    kinds = layout.kinds if layout is not None else plan.kinds
    rank = dist.get_rank()

    if layout is not None:
        check_ascending(layout.groups)
    else:
        check_ascending({kind: [g.ranks] for kind, g in plan.groups.items()})

    # Every kind's backend first, so that a refusal comes before any group exists.
    wanted, torch_backends = {}, {}
    for kind in kinds:
        mine = plan.groups.get(kind)
        plan_backend = mine.backend if mine is not None else (
            layout.backends.get(kind) if layout is not None else None)
        wanted[kind] = backend if backend is not None else plan_backend
        torch_backends[kind] = _torch_backend(dist, wanted[kind], kind)

    groups: Dict[str, object] = {}
    for kind in kinds:
        stage[0] = f"creating {kind}"
        if reporter is not None:
            reporter.report("SPLITTING", stage[0])
        mine = plan.groups.get(kind)
        torch_backend = torch_backends[kind]
        lists = layout.groups[kind] if layout is not None else [mine.ranks]

        use_split = method == "split" or (method == "auto" and
                                          _can_split(dist, wanted[kind], layout, kind))
        how = "split_group" if use_split else (
            "new_group(use_local_synchronization=True)" if method == "new_group_local" else
            f"new_group x{len(lists)}")
        logger.info("epoch %d rank %d: kind %s (%s): %s", plan.epoch, rank, kind,
                    torch_backend or "world's backend", how)
        if use_split:
            if not hasattr(dist, "split_group"):
                raise PlanError(f"method split: torch.distributed has no split_group in "
                                f"PyTorch {_torch_version()}")
            # The documented contract: ranks outside every listed split get None (NOCOLOR).
            pg = dist.split_group(split_ranks=[list(g) for g in lists],
                                  **_supported_kwargs(dist.split_group, timeout=timeout,
                                                      group_desc=f"splitd:{kind}"))
        elif method == "new_group_local":
            pg = None
            if mine is not None:
                pg = dist.new_group(list(mine.ranks), use_local_synchronization=True,
                                    **_supported_kwargs(dist.new_group, timeout=timeout,
                                                        backend=torch_backend,
                                                        group_desc=f"splitd:{kind}"))
        else:
            pg = None
            for g in lists:
                created = dist.new_group(list(g), **_supported_kwargs(
                    dist.new_group, timeout=timeout, backend=torch_backend,
                    group_desc=f"splitd:{kind}"))
                if rank in g:
                    pg = created
        if mine is None:
            continue
        if pg is None or pg is dist.GroupMember.NON_GROUP_MEMBER:
            raise PlanError(f"kind {kind}: PyTorch made rank {rank} no member of "
                            f"{list(mine.ranks)}")
        got = (dist.get_rank(pg), dist.get_world_size(pg))
        if got != (mine.local_rank, mine.size):
            raise PlanError(f"kind {kind}: PyTorch group rank {got[0]} of {got[1]}, plan local "
                            f"rank {mine.local_rank} of {mine.size}")
        groups[kind] = pg
    return groups


def _validation_device(dist, pg):
    """Where a group's check tensor lives: its GPU when the group has NCCL (a
    "cpu:gloo,cuda:nccl" group is checked on the device), the CPU otherwise."""
    import torch
    try:
        name = str(dist.get_backend(pg)).lower()
    except Exception:  # noqa: BLE001 - an unknown backend is checked on the CPU
        name = ""
    if "nccl" not in name:
        return torch.device("cpu")
    bound = _bound_device(dist)
    return bound if bound is not None else torch.device("cuda", torch.cuda.current_device())


def _validate(plan: Plan, groups: Dict[str, object], reporter: Optional[Reporter],
              results: List[Dict[str, Any]], stage: List[str]) -> None:
    """One all-reduce of ones per group of this rank, kind by kind (every member goes through
    its kinds in the same order, so no two groups wait on each other)."""
    import torch
    import torch.distributed as dist
    for kind, pg in groups.items():
        stage[0] = f"validating {kind}"
        if reporter is not None:
            reporter.report("VALIDATING", stage[0], groups=results)
        ones = torch.ones(1, device=_validation_device(dist, pg))
        started = time.perf_counter()
        dist.all_reduce(ones, group=pg)
        value = float(ones.item())  # .item() waits for the device
        latency_us = (time.perf_counter() - started) * 1e6
        group = plan.groups[kind]
        ok = value == float(group.size)
        results.append({"kind": kind, "phase": "READY" if ok else "FAILED",
                        "allreduce_value": value, "latency_us": round(latency_us, 1)})
        if not ok:
            raise ValidationError(f"kind {kind}: the all-reduce of ones in group "
                                  f"{list(group.ranks)} gave {value}, not the group size "
                                  f"{group.size}")


def _torch_version() -> str:
    import torch
    return torch.__version__
