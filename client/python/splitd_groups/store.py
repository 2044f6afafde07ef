"""The world's store through the agent: a torch.distributed.Store whose keys live in the daemon's
rendezvous space of the plan's (cluster, epoch), reached over the agent's workload endpoint,
and init_world(), which starts torch.distributed on it.

    plan = splitd_groups.plan_from_agent(timeout=600)
    splitd_groups.init_world(plan, "gloo")                  # no MASTER_ADDR, no TCPStore
    groups = splitd_groups.create_groups(plan)

Every operation names the plan's epoch: once the agent holds another epoch, the store answers
EpochError (ABORTED) rather than another epoch's keys.

What c10d calls, checked on PyTorch 1.13 and read from 2.x's trampoline (PythonStore): set gets
the value as bytes, compare_set gets bytes (2.x) or lists of ints (1.13) and must return bytes,
get must return bytes, check and wait get lists of keys (wait with a timedelta or nothing),
num_keys and delete_key arrive under their C++ names getNumKeys and deleteKey, and 2.x's
split_group clones the store. Python callers may pass str values.
"""

import datetime
import inspect
import logging
import math
import threading
import time
from typing import List, Optional, Sequence, Union

import torch.distributed as dist

from .endpoint import (MAX_WAIT_MS, Client, DeadlineExceededError, Reporter, resolve_socket)
from .plan import Plan, PlanError

logger = logging.getLogger("splitd_groups")

DEFAULT_TIMEOUT = datetime.timedelta(seconds=300)

# Stores handed to c10d stay referenced for the life of the process: c10d keeps only the C++ half
# of a Python store, and once the Python object is collected every call it makes fails.
_LIVE_STORES: List["Store"] = []
_LIVE_LOCK = threading.Lock()

_DistStoreError = getattr(dist, "DistStoreError", None)
if _DistStoreError is not None:
    class StoreTimeoutError(DeadlineExceededError, _DistStoreError):
        """A store get or wait ran out of time (a TimeoutError, and on PyTorch 2.x the
        DistStoreError its own stores raise)."""
else:
    class StoreTimeoutError(DeadlineExceededError):  # type: ignore[no-redef]
        """A store get or wait ran out of time (a TimeoutError)."""


def _timedelta(timeout: Union[None, float, datetime.timedelta],
               default: datetime.timedelta) -> datetime.timedelta:
    if timeout is None:
        return default
    if isinstance(timeout, datetime.timedelta):
        return timeout
    return datetime.timedelta(seconds=float(timeout))


def _key(key) -> str:
    return key.decode() if isinstance(key, (bytes, bytearray)) else str(key)


def _bytes(value) -> bytes:
    """c10d and Python callers hand values over as bytes, str, or (1.13's compare_set) a list of
    ints."""
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def _keys(keys) -> List[str]:
    if isinstance(keys, (str, bytes)):
        return [_key(keys)]
    return [_key(k) for k in keys]


class Store(dist.Store):
    """A torch.distributed.Store in the daemon's rendezvous space of `plan`'s epoch, through the
    agent's workload endpoint (`socket`, else $SPLITD_SOCKET, else the plan's socket, else
    the agent's default beside its plan file). `timeout` bounds get and wait, as c10d's stores do
    (timedelta or seconds; 0 waits forever); set_timeout() and the `timeout` property are
    torch's own.

    Thread-safe: each thread talks to the agent over a connection of its own, so a blocking
    get on one thread does not hold up another."""

    def __init__(self, plan: Plan, socket: Optional[str] = None,
                 timeout: Union[float, datetime.timedelta] = DEFAULT_TIMEOUT):
        super().__init__()
        if not plan.ready:
            raise PlanError(f"plan state is {plan.state}, not READY: epoch {plan.epoch} has no "
                            f"world to form")
        self.plan = plan
        self.epoch = plan.epoch
        self.socket = resolve_socket(socket, plan=plan)
        self._client = Client(self.socket)
        self._clones: List["Store"] = []
        self._clones_lock = threading.Lock()
        self.set_timeout(_timedelta(timeout, DEFAULT_TIMEOUT))

    def __repr__(self):
        return (f"splitd_groups.Store(cluster={self.plan.cluster!r}, epoch={self.epoch}, "
                f"socket={self.socket!r})")

    # ---- blocking reads ----

    def _wait_for(self, keys: List[str], timeout: datetime.timedelta, op: str):
        """The values of `keys` (op "get") or None (op "wait") once all exist; the endpoint
        waits at most MAX_WAIT_MS per request, so a longer timeout takes several."""
        total_s = timeout.total_seconds()
        forever = total_s <= 0  # c10d's kNoTimeout
        deadline = time.monotonic() + total_s
        while True:
            remaining_ms = MAX_WAIT_MS if forever else math.ceil(
                (deadline - time.monotonic()) * 1000)
            try:
                if op == "get":
                    return self._client.store_get(self.epoch, keys, max(1, remaining_ms))
                self._client.store_wait(self.epoch, keys, max(1, remaining_ms))
                return None
            except DeadlineExceededError as e:
                if forever or time.monotonic() < deadline:
                    continue
                raise StoreTimeoutError(
                    "DEADLINE_EXCEEDED", f"store {op} of {keys[:4]}"
                    f"{' and more' if len(keys) > 4 else ''} in epoch {self.epoch}: not set "
                    f"within {timeout} ({e.message})", e.http_status, self.socket) from None

    def get(self, key) -> bytes:
        return self._wait_for([_key(key)], self.timeout, "get")[0]

    def wait(self, keys, timeout: Optional[datetime.timedelta] = None) -> None:
        self._wait_for(_keys(keys), self.timeout if timeout is None else
                       _timedelta(timeout, self.timeout), "wait")

    def multi_get(self, keys: Sequence[str]) -> List[bytes]:
        keys = _keys(keys)
        return self._wait_for(keys, self.timeout, "get") if keys else []

    # ---- the rest ----

    def set(self, key, value) -> None:
        self._client.store_set(self.epoch, _key(key), _bytes(value))

    def multi_set(self, keys: Sequence[str], values: Sequence[bytes]) -> None:
        for key, value in zip(keys, values):
            self.set(key, value)

    def add(self, key, value: int) -> int:
        return self._client.store_add(self.epoch, _key(key), int(value))

    def compare_set(self, key, expected, desired) -> bytes:
        return self._client.store_compare_set(self.epoch, _key(key), _bytes(expected),
                                              _bytes(desired))

    def check(self, keys) -> bool:
        return self._client.store_check(self.epoch, _keys(keys))

    def delete_key(self, key) -> bool:
        return self._client.store_delete(self.epoch, _key(key))

    def num_keys(self) -> int:
        return self._client.store_num_keys(self.epoch)

    # c10d's trampoline looks these two up by their C++ names.
    def getNumKeys(self) -> int:  # noqa: N802
        return self.num_keys()

    def deleteKey(self, key) -> bool:  # noqa: N802
        return self.delete_key(key)

    def clone(self) -> "Store":
        """The same store for another thread of c10d (2.x's split_group takes one)."""
        twin = Store(self.plan, socket=self.socket, timeout=self.timeout)
        with self._clones_lock:
            self._clones.append(twin)  # see _LIVE_STORES
        return twin


def init_world(plan: Plan, backend: Optional[str], device_id=None,
               timeout: Union[None, float, datetime.timedelta] = None,
               socket: Optional[str] = None) -> Store:
    """Starts torch.distributed's world of `plan` on a Store through the agent:
    init_process_group(store=Store(plan), rank=plan.rank, world_size=plan.world_size,
    backend=backend[, device_id=device_id][, timeout=timeout]) and returns the store.

    Reports BOOTSTRAPPING ("world connecting") to the agent first, and FAILED with the error
    when init_process_group raises (the error is re-raised). device_id binds the world to a
    device (PyTorch >= 2.3; split_group needs it); an older PyTorch ignores it with a warning.
    timeout (seconds or timedelta) goes to init_process_group and bounds the store's waits
    (300 s when None)."""
    if not plan.ready:
        raise PlanError(f"plan state is {plan.state}, not READY")
    timeout = None if timeout is None else _timedelta(timeout, DEFAULT_TIMEOUT)
    store = Store(plan, socket=socket, timeout=timeout or DEFAULT_TIMEOUT)
    reporter = Reporter(plan, socket=store.socket)
    reporter.report("BOOTSTRAPPING", "world connecting")
    kwargs = {"store": store, "rank": plan.rank, "world_size": plan.world_size,
              "backend": backend}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if device_id is not None:
        if "device_id" in inspect.signature(dist.init_process_group).parameters:
            kwargs["device_id"] = device_id
        else:
            logger.warning("this PyTorch's init_process_group takes no device_id; the world "
                           "is not bound to %s", device_id)
    try:
        dist.init_process_group(**kwargs)
    except Exception as e:
        reporter.report("FAILED", "world connecting", error=f"{type(e).__name__}: {e}")
        raise
    with _LIVE_LOCK:
        _LIVE_STORES.append(store)
    return store
