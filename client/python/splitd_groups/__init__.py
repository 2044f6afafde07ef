"""splitd_groups: a training or serving process reads the plan file its splitd agent writes and
creates the same groups in torch.distributed.

    import splitd_groups, torch.distributed as dist
    plan = splitd_groups.wait_for_epoch("/run/splitd/plan.json", timeout=300)
    dist.init_process_group("gloo", rank=plan.rank, world_size=plan.world_size, ...)
    groups = splitd_groups.create_groups(plan)      # {"tp": ProcessGroup, "dp": ...}

The plan part (load, wait_for_epoch, ...) is standard library only; create_groups imports
torch when called. See docs/workload.md.
"""

from .plan import (STATES, ExcludedError, Group, Layout, Plan, PlanError, PlanFailedError,
                   check_ascending, check_plan_against_layout, consolidate, contribution,
                   fetch_full_plan, load, parse, parse_full_plan, wait_for_epoch)


def create_groups(plan, **kwargs):
    """See torch_groups.create_groups."""
    from .torch_groups import create_groups as _create
    return _create(plan, **kwargs)


def gather_layout(plan):
    """See torch_groups.gather_layout."""
    from .torch_groups import gather_layout as _gather
    return _gather(plan)


__all__ = [
    "STATES", "ExcludedError", "Group", "Layout", "Plan", "PlanError", "PlanFailedError",
    "check_ascending", "check_plan_against_layout", "consolidate", "contribution", "create_groups",
    "fetch_full_plan", "gather_layout", "load", "parse", "parse_full_plan", "wait_for_epoch",
]
