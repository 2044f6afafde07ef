"""splitd_groups: a training or serving process reads the plan its splitd agent holds, starts its
world on the daemon's rendezvous space through the agent, and creates the same groups in
torch.distributed.

    import splitd_groups
    plan = splitd_groups.plan_from_agent(timeout=600)      # over the agent's workload socket
    splitd_groups.init_world(plan, "gloo")                 # init_process_group(store=...)
    groups = splitd_groups.create_groups(plan)             # {"tp": ProcessGroup, "dp": ...}

The plan file the agent writes (load, wait_for_epoch) remains for processes that start their
world themselves. The plan and endpoint parts are standard library only; Store, init_world and
create_groups import torch when used. See docs/workload.md.
"""

from .endpoint import (Client, DeadlineExceededError, EndpointError, EpochError, Reporter,
                       UnavailableError, plan_from_agent, resolve_socket)
from .plan import (STATES, ExcludedError, Group, Layout, Plan, PlanError, PlanFailedError,
                   check_ascending, check_plan_against_layout, consolidate, contribution,
                   fetch_full_plan, load, parse, parse_full_plan, wait_for_epoch)
from .torch_groups import ValidationError


def create_groups(plan, **kwargs):
    """See torch_groups.create_groups."""
    from .torch_groups import create_groups as _create
    return _create(plan, **kwargs)


def gather_layout(plan):
    """See torch_groups.gather_layout."""
    from .torch_groups import gather_layout as _gather
    return _gather(plan)


def init_world(plan, backend, device_id=None, timeout=None, socket=None):
    """See store.init_world."""
    from .store import init_world as _init
    return _init(plan, backend, device_id=device_id, timeout=timeout, socket=socket)


def __getattr__(name):
    # Store subclasses torch.distributed.Store: torch is imported on first use only.
    if name in ("Store", "StoreTimeoutError"):
        from . import store
        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STATES", "Client", "DeadlineExceededError", "EndpointError", "EpochError", "ExcludedError",
    "Group", "Layout", "Plan", "PlanError", "PlanFailedError", "Reporter", "Store",
    "StoreTimeoutError", "UnavailableError", "ValidationError", "check_ascending",
    "check_plan_against_layout", "consolidate", "contribution", "create_groups",
    "fetch_full_plan", "gather_layout", "init_world", "load", "parse", "parse_full_plan",
    "plan_from_agent", "resolve_socket", "wait_for_epoch",
]
