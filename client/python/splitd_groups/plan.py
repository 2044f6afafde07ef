"""The plan file a splitd agent writes for its workload, and the whole-world layout behind it.

Pure Python (standard library only): parsing, validation, waiting for an epoch, and the checks
that the ranks of one job agree. torch is needed only by torch_groups.py.

The plan file (worker/plan_file.h) holds this rank's view of one epoch:

    {"cluster": "demo", "rank": 5, "world_size": 8, "epoch": 3, "fingerprint": "72d5...",
     "method": "split", "state": "READY",
     "groups": {"tp": {"ranks": [4, 5], "local_rank": 1, "group_index": 2,
                       "backend": "cpu:gloo"}, ...},
     "timings": {...}}

plus "error" when state is FAILED or EXCLUDED. Kinds this rank takes no part in are omitted.
The agent's workload endpoint (docs/workload-endpoint.md) serves the same document with "socket",
"readiness", "preflight" and "layout" (every group of every kind), which Plan keeps as well.
"""

import dataclasses
import json
import os
import re
import subprocess
import time
import types
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

STATES = ("READY", "FAILED", "SPARE", "EXCLUDED")

# `<device>:<backend>[,<device>:<backend>...]`, as the daemon accepts it.
_BACKEND_RE = re.compile(r"^[a-z0-9_]+:[a-z0-9_]+(,[a-z0-9_]+:[a-z0-9_]+)*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_MAX_WORLD = 1 << 20
_MAX_REPORTED_PROBLEMS = 8


class PlanError(ValueError):
    """A plan file or a full plan that is malformed, or ranks that disagree about the plan."""


class PlanFailedError(RuntimeError):
    """The agent reported the epoch FAILED; `plan.error` says why."""

    def __init__(self, plan: "Plan"):
        super().__init__(f"epoch {plan.epoch} of cluster {plan.cluster} FAILED on rank "
                         f"{plan.rank}: {plan.error or '(no reason given)'}")
        self.plan = plan


class ExcludedError(RuntimeError):
    """The daemon excluded this member; its agent has stopped and the process should exit."""

    def __init__(self, plan: "Plan"):
        super().__init__(f"member excluded from cluster {plan.cluster} after epoch {plan.epoch}: "
                         f"{plan.error or '(no reason given)'}")
        self.plan = plan


@dataclasses.dataclass(frozen=True)
class Group:
    """This rank's group of one kind."""
    kind: str
    ranks: Tuple[int, ...]  # global ranks in local-rank order
    local_rank: int  # this rank's position in `ranks`
    group_index: int  # position of the group in the kind's canonical order
    backend: str  # the kind's backend string, e.g. "cpu:gloo,cuda:nccl"

    @property
    def size(self) -> int:
        return len(self.ranks)


@dataclasses.dataclass(frozen=True)
class Plan:
    """One epoch as this rank's agent wrote it. `groups` is in the plan's kind order."""
    cluster: str
    rank: int  # -1 for a spare
    world_size: int
    epoch: int
    fingerprint: str
    method: str
    state: str  # one of STATES
    error: str
    groups: Mapping[str, Group]
    timings: Mapping[str, float]
    path: Optional[str] = None
    socket: Optional[str] = None  # the agent's workload endpoint, when it has one
    readiness: Optional[str] = None  # "agent" or "workload", when the agent said
    preflight: Optional[bool] = None
    layout: Optional["Layout"] = None  # every group of the epoch, when the agent sent it

    @property
    def kinds(self) -> Tuple[str, ...]:
        return tuple(self.groups)

    @property
    def ready(self) -> bool:
        return self.state == "READY"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Every group of every kind of one epoch, in canonical order (kinds in plan order, groups of
    a kind by first member), as every rank must create them for collective group creation."""
    epoch: int
    fingerprint: str
    world_size: int
    kinds: Tuple[str, ...]
    groups: Mapping[str, Tuple[Tuple[int, ...], ...]]
    backends: Mapping[str, Optional[str]]  # None where not known (splitctl does not print it)

    def covers_world(self, kind: str) -> bool:
        """Whether every rank of the world is in some group of `kind` (always so for kinds
        generated from dims; explicit lists may leave ranks out)."""
        return sum(len(g) for g in self.groups[kind]) == self.world_size


# ---- parsing ----

def _json_object(doc: Any, where: str, type_note: Optional[str]) -> dict:
    """`doc` decoded when it is text; PlanError unless it is a JSON object. `type_note` is
    appended to the message (None: name the decoded value's type)."""
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except ValueError as e:
            raise PlanError(f"{where}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        note = f", got {type(doc).__name__}" if type_note is None else type_note
        raise PlanError(f"{where}: must be a JSON object{note}")
    return doc


def _field(doc: Mapping[str, Any], key: str, kind, where: str):
    if key not in doc:
        raise PlanError(f"{where}: missing field \"{key}\"")
    value = doc[key]
    # bool is an int subclass; a plan never holds one where a number belongs.
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise PlanError(f"{where}: field \"{key}\" must be {expected}, got {value!r}")
    return value


def _check_ranks(ranks: Any, world_size: int, where: str) -> Tuple[int, ...]:
    if not isinstance(ranks, list) or not ranks:
        raise PlanError(f"{where} must be a non-empty list of ranks, got {ranks!r}")
    seen = set()
    for i, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < world_size:
            raise PlanError(f"{where}[{i}] must be a rank in [0, {world_size}), got {r!r}")
        if r in seen:
            raise PlanError(f"{where}[{i}]: rank {r} appears twice")
        seen.add(r)
    return tuple(ranks)


def check_backend(backend: str, where: str = "backend") -> str:
    if not isinstance(backend, str) or not _BACKEND_RE.match(backend):
        raise PlanError(f"{where} must be \"<device>:<backend>[,...]\", got {backend!r}")
    return backend


def parse(doc: Any, path: Optional[str] = None) -> Plan:
    """A Plan from the plan file's text (str/bytes) or its decoded JSON object.

    Raises PlanError naming the field when the document is not a plan this module understands.
    """
    where = path or "plan"
    doc = _json_object(doc, where, None)

    cluster = _field(doc, "cluster", str, where)
    rank = _field(doc, "rank", int, where)
    world_size = _field(doc, "world_size", int, where)
    epoch = _field(doc, "epoch", int, where)
    fingerprint = _field(doc, "fingerprint", str, where)
    method = _field(doc, "method", str, where)
    state = _field(doc, "state", str, where)
    error = doc.get("error", "")
    if not isinstance(error, str):
        raise PlanError(f"{where}: field \"error\" must be str, got {error!r}")
    if state not in STATES:
        raise PlanError(f"{where}: field \"state\" must be one of {', '.join(STATES)}, "
                        f"got {state!r}")
    if not cluster:
        raise PlanError(f"{where}: field \"cluster\" must not be empty")
    if epoch < 0:
        raise PlanError(f"{where}: field \"epoch\" must be >= 0, got {epoch}")
    if not 0 <= world_size <= _MAX_WORLD:
        raise PlanError(f"{where}: field \"world_size\" must be in [0, {_MAX_WORLD}], "
                        f"got {world_size}")
    if state == "READY":
        if world_size < 1:
            raise PlanError(f"{where}: field \"world_size\" must be >= 1 when READY, "
                            f"got {world_size}")
        if not 0 <= rank < world_size:
            raise PlanError(f"{where}: field \"rank\" must be in [0, {world_size}) when READY, "
                            f"got {rank}")
        if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
            raise PlanError(f"{where}: field \"fingerprint\" must be 64 lowercase hex digits, "
                            f"got {fingerprint!r}")
    elif rank < -1:
        raise PlanError(f"{where}: field \"rank\" must be >= -1, got {rank}")

    raw_groups = _field(doc, "groups", dict, where)
    if state == "SPARE" and raw_groups:
        raise PlanError(f"{where}: a SPARE plan has no groups, got {sorted(raw_groups)}")
    groups: Dict[str, Group] = {}
    for kind, entry in raw_groups.items():
        gwhere = f"{where}: groups.{kind}"
        if not _NAME_RE.match(kind):
            raise PlanError(f"{gwhere}: kind name must be 1-63 of [A-Za-z0-9_.-]")
        if not isinstance(entry, dict):
            raise PlanError(f"{gwhere} must be an object, got {entry!r}")
        ranks = _check_ranks(entry.get("ranks"), max(world_size, 0), f"{gwhere}.ranks")
        local_rank = _field(entry, "local_rank", int, gwhere)
        group_index = _field(entry, "group_index", int, gwhere)
        backend = check_backend(_field(entry, "backend", str, gwhere), f"{gwhere}.backend")
        if not 0 <= local_rank < len(ranks):
            raise PlanError(f"{gwhere}.local_rank must be in [0, {len(ranks)}), got {local_rank}")
        if ranks[local_rank] != rank:
            raise PlanError(f"{gwhere}: ranks[{local_rank}] (local_rank) must be this rank "
                            f"{rank}, got {ranks[local_rank]}")
        if group_index < 0:
            raise PlanError(f"{gwhere}.group_index must be >= 0, got {group_index}")
        groups[kind] = Group(kind, ranks, local_rank, group_index, backend)

    timings = doc.get("timings", {})
    if not isinstance(timings, dict):
        raise PlanError(f"{where}: field \"timings\" must be an object, got {timings!r}")
    socket = _optional(doc, "socket", str, where)
    readiness = _optional(doc, "readiness", str, where)
    preflight = _optional(doc, "preflight", bool, where)
    layout = None
    if doc.get("layout") is not None:
        layout = _parse_layout(doc["layout"], epoch, fingerprint, world_size, where)
    plan = Plan(cluster=cluster, rank=rank, world_size=world_size, epoch=epoch,
                fingerprint=fingerprint, method=method, state=state, error=error,
                groups=types.MappingProxyType(groups),
                timings=types.MappingProxyType(dict(timings)), path=path, socket=socket,
                readiness=readiness, preflight=preflight, layout=layout)
    if layout is not None and state == "READY":
        problems = check_plan_against_layout(plan, layout)
        if problems:
            raise PlanError(f"{where}: layout: " + "; ".join(problems))
    return plan


def _optional(doc: Mapping[str, Any], key: str, kind: type, where: str):
    value = doc.get(key)
    if value is not None and not isinstance(value, kind):
        raise PlanError(f"{where}: field \"{key}\" must be {kind.__name__}, got {value!r}")
    return value


def _parse_layout(raw: Any, epoch: int, fingerprint: str, world_size: int,
                  where: str) -> "Layout":
    """The endpoint's "layout": [{"kind", "backend", "groups": [[ranks], ...]}, ...], kinds in
    plan order, groups in canonical order, members in local-rank order."""
    if not isinstance(raw, list):
        raise PlanError(f"{where}: field \"layout\" must be a list, got {raw!r}")
    groups: Dict[str, Tuple[Tuple[int, ...], ...]] = {}
    backends: Dict[str, Optional[str]] = {}
    for i, entry in enumerate(raw):
        lwhere = f"{where}: layout[{i}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{lwhere} must be an object, got {entry!r}")
        kind = _field(entry, "kind", str, lwhere)
        if not _NAME_RE.match(kind):
            raise PlanError(f"{lwhere}.kind must be 1-63 of [A-Za-z0-9_.-], got {kind!r}")
        if kind in groups:
            raise PlanError(f"{lwhere}: kind {kind} appears twice")
        backends[kind] = check_backend(_field(entry, "backend", str, lwhere),
                                       f"{lwhere}.backend")
        lists = _field(entry, "groups", list, lwhere)
        groups[kind] = tuple(_check_ranks(g, max(world_size, 0), f"{lwhere}.groups[{j}]")
                             for j, g in enumerate(lists))
    layout = Layout(epoch, fingerprint, world_size, tuple(groups),
                    types.MappingProxyType(groups), types.MappingProxyType(backends))
    problems = _check_layout(layout)
    if problems:
        raise PlanError(f"{where}: layout: " + "; ".join(problems))
    return layout


def load(path: str) -> Plan:
    """The plan in the file at `path` (whatever its state). OSError when it cannot be read,
    PlanError when it is not a valid plan. The agent replaces the file atomically, so a read
    never sees half of one."""
    with open(path, "rb") as f:
        return parse(f.read(), path=path)


def wait_for_epoch(path: str, after: Optional[int] = None, timeout: Optional[float] = None,
                   poll_interval: float = 0.05, return_spare: bool = False) -> Plan:
    """Waits until the plan file holds a READY plan of an epoch newer than `after` (any epoch
    when None) and returns it (with return_spare, a SPARE plan of such an epoch too).

    - a FAILED plan of such an epoch raises PlanFailedError (the agent said why in .error);
    - an EXCLUDED plan (of this epoch or a newer one) raises ExcludedError: the agent has
      stopped and this member has no rank any more;
    - a SPARE plan (unless return_spare), a missing file, or an older epoch keeps waiting (a
      spare is handed a rank in a later epoch, when a member is lost or the replica dim grows);
    - TimeoutError after `timeout` seconds (None: no limit), naming what it saw last.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last_key = None
    last_seen = "no plan file yet"
    while True:
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key is not None and key != last_key:
            try:
                plan = load(path)
            except FileNotFoundError:
                plan = None  # replaced between stat and open; look again
            if plan is not None:
                last_key = key
                last_seen = f"epoch {plan.epoch} {plan.state}"
                newer = after is None or plan.epoch > after
                if plan.state == "EXCLUDED" and (after is None or plan.epoch >= after):
                    raise ExcludedError(plan)
                if newer and (plan.state == "READY" or
                              (return_spare and plan.state == "SPARE")):
                    return plan
                if newer and plan.state == "FAILED":
                    raise PlanFailedError(plan)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            wanted = "any epoch" if after is None else f"an epoch after {after}"
            raise TimeoutError(f"{path}: no READY plan of {wanted} within {timeout} s "
                               f"(last seen: {last_seen})")
        time.sleep(poll_interval if deadline is None else min(poll_interval, deadline - now))


# ---- the whole-world layout ----

def parse_full_plan(doc: Any, world_size: int) -> Layout:
    """The Layout from `splitctl plan NAME -o json` output (text or decoded object):
    {"cluster", "epoch", "fingerprint", "groups": {"tp": [[0, 1], ...], ...}}."""
    where = "splitctl plan"
    doc = _json_object(doc, where, "")
    epoch = _field(doc, "epoch", int, where)
    fingerprint = _field(doc, "fingerprint", str, where)
    raw = _field(doc, "groups", dict, where)
    groups = {}
    for kind, lists in raw.items():
        if not isinstance(lists, list):
            raise PlanError(f"{where}: groups.{kind} must be a list of rank lists")
        groups[kind] = tuple(_check_ranks(g, world_size, f"{where}: groups.{kind}[{i}]")
                             for i, g in enumerate(lists))
    layout = Layout(epoch, fingerprint, world_size, tuple(groups),
                    types.MappingProxyType(groups),
                    types.MappingProxyType(dict.fromkeys(groups)))
    problems = _check_layout(layout)
    if problems:
        raise PlanError(f"{where}: " + "; ".join(problems))
    return layout


def fetch_full_plan(plan: Plan, addr: Optional[str] = None, splitctl: str = "splitctl",
                    timeout: float = 30.0) -> Layout:
    """Every group of `plan`'s epoch from the daemon, through `splitctl plan NAME -o json`
    (`addr` or $SPLITD_ADDR). Raises PlanError when the daemon has moved to another epoch or
    disagrees with this rank's plan file."""
    cmd = [splitctl] + (["--addr", addr] if addr else []) + ["plan", plan.cluster, "-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise PlanError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    layout = parse_full_plan(done.stdout, plan.world_size)
    problems = check_plan_against_layout(plan, layout)
    if problems:
        raise PlanError("; ".join(problems))
    return layout


def _check_layout(layout: Layout) -> List[str]:
    problems = []
    for kind in layout.kinds:
        lists = layout.groups[kind]
        firsts = [g[0] for g in lists]
        if firsts != sorted(firsts):
            problems.append(f"kind {kind}: groups are not ordered by first member: "
                            f"{[list(g) for g in lists]}")
        seen: Dict[int, int] = {}
        for i, g in enumerate(lists):
            for r in g:
                if r in seen:
                    problems.append(f"kind {kind}: rank {r} is in groups {seen[r]} and {i}")
                seen[r] = i
    return problems


def check_plan_against_layout(plan: Plan, layout: Layout) -> List[str]:
    """Where this rank's plan file and a full layout disagree (empty when they agree)."""
    problems = []
    if (layout.epoch, layout.fingerprint) != (plan.epoch, plan.fingerprint):
        problems.append(f"the daemon's plan is epoch {layout.epoch} ({layout.fingerprint[:12]}), "
                        f"this rank's plan file epoch {plan.epoch} ({plan.fingerprint[:12]})")
        return problems
    for kind, group in plan.groups.items():
        lists = layout.groups.get(kind)
        if lists is None:
            problems.append(f"kind {kind} of the plan file is not in the daemon's plan")
        elif group.group_index >= len(lists) or lists[group.group_index] != group.ranks:
            problems.append(f"kind {kind}: the plan file's group {group.group_index} "
                            f"{list(group.ranks)} differs from the daemon's")
    for kind, lists in layout.groups.items():
        if kind not in plan.groups and any(plan.rank in g for g in lists):
            problems.append(f"kind {kind}: the daemon's plan puts rank {plan.rank} in a group "
                            f"the plan file does not list")
    return problems


def contribution(plan: Plan, torch_rank: int, torch_world_size: int) -> Dict[str, Any]:
    """What this rank sends in the one all-gather that checks the job's plan files against each
    other and rebuilds the full layout: its identity and, per kind, its group index and local
    rank, with the members only from the group's local rank 0 (O(world) in all per kind)."""
    return {
        "torch_rank": torch_rank, "torch_world_size": torch_world_size,
        "rank": plan.rank, "world_size": plan.world_size, "epoch": plan.epoch,
        "fingerprint": plan.fingerprint, "cluster": plan.cluster, "state": plan.state,
        "path": plan.path,
        "kinds": [[g.kind, g.group_index, g.local_rank,
                   list(g.ranks) if g.local_rank == 0 else None, g.backend]
                  for g in plan.groups.values()],
    }


def _merge_kind_orders(orders: Sequence[Sequence[str]]) -> Tuple[Optional[List[str]], str]:
    """One kind order consistent with every rank's (each is a subsequence of the plan's kind
    order). Ties, between kinds no rank holds together, go to the kind seen first (by rank,
    then position): deterministic, so every rank computes the same order."""
    first_seen: Dict[str, Tuple[int, int]] = {}
    after: Dict[str, set] = {}
    indegree: Dict[str, int] = {}
    for r, order in enumerate(orders):
        for i, kind in enumerate(order):
            first_seen.setdefault(kind, (r, i))
            after.setdefault(kind, set())
            indegree.setdefault(kind, 0)
        for a, b in zip(order, order[1:]):
            if b not in after[a]:
                after[a].add(b)
                indegree[b] += 1
    ready = sorted((k for k, d in indegree.items() if d == 0), key=first_seen.get)
    merged = []
    while ready:
        kind = ready.pop(0)
        merged.append(kind)
        for nxt in after[kind]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
        ready.sort(key=first_seen.get)
    if len(merged) != len(indegree):
        stuck = sorted(k for k, d in indegree.items() if d > 0)
        return None, f"ranks list kinds {stuck} in conflicting orders"
    return merged, ""


def consolidate(contributions: Sequence[Mapping[str, Any]]) -> Layout:
    """The Layout from every rank's contribution() (indexed by torch rank), after checking that
    they describe one plan: the same cluster, epoch, fingerprint and world size, plan rank equal
    to torch rank, groups that agree member by member, canonical group order. Every rank runs
    this on the same data, so every rank raises the same PlanError or none does."""
    problems: List[str] = []
    n = len(contributions)
    for i, c in enumerate(contributions):
        where = f"rank {i}" + (f" ({c['path']})" if c.get("path") else "")
        if c["state"] != "READY":
            problems.append(f"{where}: plan state is {c['state']}, not READY")
        if c["torch_world_size"] != n or c["world_size"] != n:
            problems.append(f"{where}: torch world size {c['torch_world_size']}, plan world "
                            f"size {c['world_size']}, ranks gathered {n}")
        if c["rank"] != i:
            problems.append(f"{where}: torch rank {i} but plan rank {c['rank']}")
    for field in ("cluster", "epoch", "fingerprint"):
        values = {}
        for i, c in enumerate(contributions):
            values.setdefault(c[field], []).append(i)
        if len(values) > 1:
            desc = ", ".join(f"{v!r} on ranks {rs}" for v, rs in values.items())
            problems.append(f"ranks disagree on the {field}: {desc}")
    if problems:
        _raise(problems)

    kinds, conflict = _merge_kind_orders([[k[0] for k in c["kinds"]] for c in contributions])
    if kinds is None:
        _raise([conflict])
    groups: Dict[str, Dict[int, Tuple[int, ...]]] = {k: {} for k in kinds}
    backends: Dict[str, Optional[str]] = {}
    for i, c in enumerate(contributions):
        for kind, index, local_rank, ranks, backend in c["kinds"]:
            if backends.setdefault(kind, backend) != backend:
                problems.append(f"kind {kind}: backend {backends[kind]!r} on one rank and "
                                f"{backend!r} on rank {i}")
            if ranks is None:
                continue
            if index in groups[kind] and groups[kind][index] != tuple(ranks):
                problems.append(f"kind {kind}: group {index} is {groups[kind][index]} on one "
                                f"rank and {tuple(ranks)} on rank {i}")
            groups[kind][index] = tuple(ranks)
    ordered: Dict[str, Tuple[Tuple[int, ...], ...]] = {}
    for kind in kinds:
        indices = sorted(groups[kind])
        if indices != list(range(len(indices))):
            problems.append(f"kind {kind}: group indices {indices} are not 0..{len(indices) - 1}")
        ordered[kind] = tuple(groups[kind][j] for j in indices)
    for i, c in enumerate(contributions):
        mine = {k[0]: k for k in c["kinds"]}
        for kind in kinds:
            holding = [j for j, g in groups[kind].items() if i in g]
            entry = mine.get(kind)
            if entry is None:
                if holding:
                    problems.append(f"rank {i}: kind {kind} missing from its plan file, but "
                                    f"group {holding[0]} {groups[kind][holding[0]]} holds it")
                continue
            _, index, local_rank, _, _ = entry
            group = groups[kind].get(index)
            if group is None:
                problems.append(f"rank {i}: kind {kind} group {index}: no rank sends it as its "
                                f"local rank 0")
            elif local_rank >= len(group) or group[local_rank] != i:
                problems.append(f"rank {i}: kind {kind} group {index} local rank {local_rank} "
                                f"does not match the group's members {group}")
    layout = Layout(contributions[0]["epoch"], contributions[0]["fingerprint"], n, tuple(kinds),
                    types.MappingProxyType(ordered), types.MappingProxyType(backends))
    problems += _check_layout(layout)
    if problems:
        _raise(problems)
    return layout


def check_ascending(groups: Mapping[str, Sequence[Sequence[int]]]) -> None:
    """Raises PlanError for the first group not in ascending rank order. PyTorch orders a
    group's members by ascending global rank (new_group and split_group sort them); a plan's
    explicit split_ranks keep the order given, so such a group would get other local ranks in
    PyTorch than in the plan."""
    for kind, lists in groups.items():
        for g in lists:
            if list(g) != sorted(g):
                raise PlanError(f"kind {kind}: group {list(g)} is not in ascending rank order; "
                                f"PyTorch would give its members other local ranks than the "
                                f"plan does (list explicit split_ranks in ascending order)")


def _raise(problems: List[str]):
    shown = problems[:_MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    raise PlanError("plan files disagree: " + "; ".join(shown) +
                    (f"; and {more} more" if more > 0 else ""))
