"""The agent's workload endpoint (docs/workload-endpoint.md): HTTP/1.1 with JSON bodies on a Unix
domain socket, spoken with nothing but the standard library.

    client = Client(resolve_socket(plan=plan))
    client.store_set(plan.epoch, "k", b"v")
    plan = plan_from_agent(after=plan.epoch, timeout=600)      # the next epoch, with its layout

Every answer other than 200 becomes an EndpointError carrying the endpoint's code and message;
DEADLINE_EXCEEDED is also a TimeoutError, ABORTED (another epoch than the agent's) an EpochError
naming both epochs, UNAVAILABLE (and a socket nobody listens on) also a ConnectionError.
"""

import base64
import dataclasses
import errno
import http.client
import json
import logging
import os
import socket as socket_module
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence

from .plan import ExcludedError, Plan, PlanFailedError, parse

ENV_SOCKET = "SPLITD_SOCKET"
MAX_WAIT_MS = 600000  # the endpoint's cap on a get, wait or plan long-poll
PHASES = ("BOOTSTRAPPING", "SPLITTING", "VALIDATING", "READY", "FAILED")

# How long a request that does not wait may take before the agent counts as hung, and how much
# longer than its own deadline a waiting request may take to come back.
IO_TIMEOUT_S = 60.0
WAIT_MARGIN_S = 30.0

logger = logging.getLogger("splitd_groups")


class EndpointError(RuntimeError):
    """An answer of the endpoint other than 200, or an endpoint that cannot be reached.
    `code` is the gRPC code's name ("ABORTED", ...), `http_status` the HTTP status (None when no
    answer came), `message` the endpoint's message."""

    def __init__(self, code: str, message: str, http_status: Optional[int] = None,
                 socket: Optional[str] = None):
        where = f" (agent endpoint {socket})" if socket else ""
        super().__init__(f"{code}: {message}{where}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.socket = socket


class DeadlineExceededError(EndpointError, TimeoutError):
    """A get, wait or plan long-poll ran out of time, or the agent did not answer in time."""


class UnavailableError(EndpointError, ConnectionError):
    """The agent cannot reach the daemon or holds no plan yet, or nobody listens on the socket."""


class EpochError(EndpointError):
    """The request named another epoch than the one the agent holds (ABORTED): this process is
    on a stale (or a not yet known) plan. Re-read the plan (plan_from_agent(after=epoch)) and
    build the world again. `epoch` is this process's, `agent_epoch` the agent's (None when
    the agent could not say)."""

    def __init__(self, message: str, epoch: Optional[int], agent_epoch: Optional[int],
                 http_status: Optional[int] = None, socket: Optional[str] = None):
        agent = "unknown" if agent_epoch is None else str(agent_epoch)
        super().__init__("ABORTED", f"this process uses epoch {epoch}, the agent holds epoch "
                                    f"{agent}: {message}", http_status, socket)
        self.epoch = epoch
        self.agent_epoch = agent_epoch


# CANCELLED: the agent is stopping; like UNAVAILABLE, another try may find it (or its successor).
_BY_CODE = {"DEADLINE_EXCEEDED": DeadlineExceededError, "UNAVAILABLE": UnavailableError,
            "CANCELLED": UnavailableError}
_CODE_BY_HTTP = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "INVALID_ARGUMENT",
                 409: "FAILED_PRECONDITION", 413: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def resolve_socket(socket: Optional[str] = None, plan: Optional[Plan] = None,
                   plan_file: Optional[str] = None) -> str:
    """The endpoint's path: `socket`, else $SPLITD_SOCKET, else the plan's "socket", else the
    agent's default for the plan file (`plan_file`, else the file `plan` was read from): its path
    with ".sock" for its extension (a plan file that names its socket is read for it)."""
    if socket:
        return socket
    if os.environ.get(ENV_SOCKET):
        return os.environ[ENV_SOCKET]
    if plan is not None and plan.socket:
        return plan.socket
    path = plan_file or (plan.path if plan is not None else None)
    if path:
        if plan is None:
            named = _socket_named_in(path)
            if named:
                return named
        return default_socket(path)
    raise ValueError(f"no workload socket: pass socket=, set ${ENV_SOCKET}, or give a plan or "
                     f"plan file")


def default_socket(plan_file: str) -> str:
    """The agent's default --workload_socket for `plan_file`: /run/splitd/plan.json ->
    /run/splitd/plan.sock (agents sharing a directory never share a socket)."""
    path = os.path.abspath(plan_file)
    root, _ = os.path.splitext(path)
    return root + ".sock"


def _socket_named_in(plan_file: str) -> Optional[str]:
    try:
        with open(plan_file, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    value = doc.get("socket") if isinstance(doc, dict) else None
    return value if isinstance(value, str) and value else None


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix domain socket."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path
        self.used = False  # whether a request went over this connection already

    def connect(self):
        sock = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise EndpointError("INTERNAL", f"{what} in the agent's answer is not base64 text: "
                                        f"{text!r}")
    return base64.b64decode(text, validate=True)


class Client:
    """One agent's endpoint. Thread-safe: each thread keeps one keep-alive connection of its
    own (a blocking get on one thread does not hold up another), and a forked child opens
    fresh ones."""

    def __init__(self, socket: str, io_timeout: float = IO_TIMEOUT_S):
        self.socket = socket
        self.io_timeout = io_timeout
        self._local = threading.local()

    # ---- transport ----

    def _connection(self) -> _UnixConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = _UnixConnection(self.socket, self.io_timeout)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop_connection(self):
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()

    def close(self):
        """Closes this thread's connection (others close with their threads)."""
        self._drop_connection()

    def call(self, method: str, path: str, body: Optional[dict] = None,
             wait_s: float = 0.0) -> Dict[str, Any]:
        """One request; the decoded 200 answer, or an EndpointError. `wait_s`: how long the
        agent may take on purpose (a blocking get), on top of the I/O timeout."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        timeout = self.io_timeout + (wait_s + WAIT_MARGIN_S if wait_s > 0 else 0)
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.used
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, path, body=data, headers=headers)
                conn.used = True
                response = conn.getresponse()
                raw = response.read()
                status = response.status
            except socket_module.timeout:
                self._drop_connection()
                raise DeadlineExceededError(
                    "DEADLINE_EXCEEDED", f"{method} {path}: no answer within {timeout:.0f} s",
                    None, self.socket) from None
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as e:
                # An idle keep-alive connection the agent closed: try once on a fresh one.
                self._drop_connection()
                if reused and attempt == 0:
                    continue
                raise UnavailableError("UNAVAILABLE", f"{method} {path}: connection lost: {e}",
                                       None, self.socket) from None
            except (FileNotFoundError, ConnectionRefusedError) as e:
                self._drop_connection()
                raise UnavailableError("UNAVAILABLE", f"cannot connect: {e.strerror or e}",
                                       None, self.socket) from None
            except (OSError, http.client.HTTPException) as e:
                self._drop_connection()
                code = "UNAVAILABLE" if getattr(e, "errno", None) in (
                    errno.ENOENT, errno.ECONNREFUSED, errno.EPIPE) else "INTERNAL"
                cls = UnavailableError if code == "UNAVAILABLE" else EndpointError
                raise cls(code, f"{method} {path}: {type(e).__name__}: {e}", None,
                          self.socket) from None
            except BaseException:
                # Interrupted mid-request (KeyboardInterrupt): the connection is mid-answer.
                self._drop_connection()
                raise
            return self._answer(method, path, body, status, raw)
        raise AssertionError("unreachable")

    def _answer(self, method: str, path: str, body: Optional[dict], status: int,
                raw: bytes) -> Dict[str, Any]:
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = None
        if status == 200:
            if not isinstance(doc, dict):
                raise EndpointError("INTERNAL", f"{method} {path}: the answer is not a JSON "
                                                f"object: {raw[:200]!r}", status, self.socket)
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or _CODE_BY_HTTP.get(status, "UNKNOWN"))
            message = str(error.get("message", ""))
        else:
            code = _CODE_BY_HTTP.get(status, "UNKNOWN")
            message = raw[:300].decode("utf-8", "replace") or f"HTTP {status}"
        if code == "ABORTED":
            epoch = body.get("epoch") if isinstance(body, dict) else None
            raise EpochError(message, epoch, self._agent_epoch(), status, self.socket)
        raise _BY_CODE.get(code, EndpointError)(code, message, status, self.socket)

    def _agent_epoch(self) -> Optional[int]:
        try:
            epoch = self.status().get("epoch")
        except EndpointError:
            return None
        return epoch if isinstance(epoch, int) else None

    # ---- requests ----

    def status(self) -> Dict[str, Any]:
        """{"cluster", "member_id", "epoch", "rank", "phase"}: what the agent holds."""
        return self.call("GET", "/v1/status")

    def plan(self, after: Optional[int] = None, timeout_ms: Optional[int] = None) -> Dict[str, Any]:
        """The plan document the agent holds; with `after`, waits (up to `timeout_ms`) for one of
        a later epoch in a final state."""
        if after is None:
            return self.call("GET", "/v1/plan")
        timeout_ms = MAX_WAIT_MS if timeout_ms is None else _clamp_ms(timeout_ms)
        query = urllib.parse.urlencode({"after": after, "timeout_ms": timeout_ms})
        return self.call("GET", f"/v1/plan?{query}", wait_s=timeout_ms / 1000)

    def store_set(self, epoch: int, key: str, value: bytes) -> None:
        self.call("POST", "/v1/store/set", {"epoch": epoch, "key": key, "value": _b64(value)})

    def store_get(self, epoch: int, keys: Sequence[str], timeout_ms: int) -> List[bytes]:
        """The values of `keys` once all exist; DeadlineExceededError after `timeout_ms`
        (at most MAX_WAIT_MS)."""
        timeout_ms = _clamp_ms(timeout_ms)
        doc = self.call("POST", "/v1/store/get", {"epoch": epoch, "keys": list(keys),
                                                  "timeout_ms": timeout_ms},
                        wait_s=timeout_ms / 1000)
        values = doc.get("values")
        if not isinstance(values, list) or len(values) != len(keys):
            raise EndpointError("INTERNAL", f"store get of {len(keys)} keys answered {doc!r}",
                                200, self.socket)
        return [_unb64(v, f"values[{i}]") for i, v in enumerate(values)]

    def store_wait(self, epoch: int, keys: Sequence[str], timeout_ms: int) -> None:
        timeout_ms = _clamp_ms(timeout_ms)
        self.call("POST", "/v1/store/wait", {"epoch": epoch, "keys": list(keys),
                                             "timeout_ms": timeout_ms}, wait_s=timeout_ms / 1000)

    def store_add(self, epoch: int, key: str, delta: int) -> int:
        doc = self.call("POST", "/v1/store/add", {"epoch": epoch, "key": key, "delta": delta})
        return _int(doc, "value", self.socket)

    def store_compare_set(self, epoch: int, key: str, expected: bytes, desired: bytes) -> bytes:
        doc = self.call("POST", "/v1/store/compare_set", {
            "epoch": epoch, "key": key, "expected": _b64(expected), "desired": _b64(desired)})
        return _unb64(doc.get("value"), "value")

    def store_check(self, epoch: int, keys: Sequence[str]) -> bool:
        doc = self.call("POST", "/v1/store/check", {"epoch": epoch, "keys": list(keys)})
        return bool(doc.get("exists"))

    def store_delete(self, epoch: int, key: str) -> bool:
        doc = self.call("POST", "/v1/store/delete", {"epoch": epoch, "key": key})
        return bool(doc.get("deleted"))

    def store_num_keys(self, epoch: int) -> int:
        return _int(self.call("POST", "/v1/store/num_keys", {"epoch": epoch}), "num_keys",
                    self.socket)

    def report(self, epoch: int, rank: int, phase: str, detail: str = "",
               groups: Sequence[Dict[str, Any]] = (), error: str = "") -> Dict[str, Any]:
        """Reports the workload's progress on this rank; the agent relays it to the daemon."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
        return self.call("POST", "/v1/report", {
            "epoch": epoch, "rank": rank, "phase": phase, "detail": detail,
            "groups": list(groups), "error": error})


def _clamp_ms(timeout_ms) -> int:
    return max(1, min(int(timeout_ms), MAX_WAIT_MS))


def _int(doc: Dict[str, Any], key: str, socket: str) -> int:
    value = doc.get(key)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)  # 64-bit integers may come as JSON strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise EndpointError("INTERNAL", f"field {key!r} of the answer is not an integer: "
                                        f"{doc!r}", 200, socket)
    return value


class Reporter:
    """Reports one epoch's progress for one rank, best effort: a report that fails is logged,
    never raised, so that it cannot hide the error being reported or stop the work."""

    def __init__(self, plan: Plan, socket: Optional[str] = None):
        self.plan = plan
        self.client = Client(resolve_socket(socket, plan=plan))
        self.last_error: Optional[BaseException] = None

    @classmethod
    def for_plan(cls, plan: Plan) -> Optional["Reporter"]:
        """A Reporter when the plan names its agent's endpoint, None otherwise (a plan file of
        an agent without one)."""
        return cls(plan) if plan.socket else None

    def report(self, phase: str, detail: str = "", groups: Sequence[Dict[str, Any]] = (),
               error: str = "") -> bool:
        try:
            self.client.report(self.plan.epoch, self.plan.rank, phase, _cut(detail, 1000),
                               groups, _cut(error, 4000))
            return True
        except Exception as e:  # noqa: BLE001 - reporting must not mask the caller's outcome
            self.last_error = e
            logger.warning("epoch %d rank %d: reporting %s to the agent failed: %s",
                           self.plan.epoch, self.plan.rank, phase, e)
            return False


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (the endpoint refuses longer details and
    errors)."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit - 3].decode(errors="ignore") + "..."


def plan_from_agent(socket: Optional[str] = None, after: Optional[int] = None,
                    timeout: Optional[float] = None, return_spare: bool = False,
                    plan_file: Optional[str] = None) -> Plan:
    """The plan of the agent's workload endpoint, with the epoch's full layout: waits until
    the agent holds a READY plan of an epoch newer than `after` (any epoch when None) and
    returns it (with return_spare, a SPARE plan of such an epoch too). The same rules as
    wait_for_epoch: FAILED raises PlanFailedError, EXCLUDED ExcludedError, an older epoch or a
    SPARE keeps waiting, TimeoutError after `timeout` seconds (None: no limit) names what was
    seen last. An agent that is not up yet (no socket, nobody listening) is waited for too.

    The socket: `socket`, else $SPLITD_SOCKET, else the one `plan_file` names, else
    the agent's default beside `plan_file`. The returned plan's `socket` is the one used."""
    path = resolve_socket(socket, plan_file=plan_file)
    client = Client(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    last_seen = "no answer yet"
    waiting_after = 0 if after is None else after  # epochs start at 1
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            wanted = "any epoch" if after is None else f"an epoch after {after}"
            raise TimeoutError(f"agent endpoint {path}: no READY plan of {wanted} within "
                               f"{timeout} s (last seen: {last_seen})")
        chunk_s = 60.0 if remaining is None else min(60.0, remaining)
        try:
            doc = client.plan(after=waiting_after, timeout_ms=max(1, int(chunk_s * 1000)))
        except DeadlineExceededError:
            continue
        except UnavailableError as e:
            last_seen = e.message
            time.sleep(0.05 if remaining is None else max(0.0, min(0.05, remaining)))
            if plan_file and not socket and not os.environ.get(ENV_SOCKET):
                # The agent may not have written its plan file, which names the socket, yet.
                found = resolve_socket(plan_file=plan_file)
                if found != path:
                    path, client = found, Client(found)
            continue
        plan = dataclasses.replace(parse(doc), socket=path)
        last_seen = f"epoch {plan.epoch} {plan.state}"
        newer = after is None or plan.epoch > after
        if plan.state == "EXCLUDED" and (after is None or plan.epoch >= after):
            raise ExcludedError(plan)
        if newer and (plan.state == "READY" or (return_spare and plan.state == "SPARE")):
            return plan
        if newer and plan.state == "FAILED":
            raise PlanFailedError(plan)
        if plan.epoch <= waiting_after:
            time.sleep(0.05)  # the agent answers at once for what it holds (an old EXCLUDED)
        waiting_after = max(waiting_after, plan.epoch)


__all__ = [
    "Client", "DeadlineExceededError", "EndpointError", "EpochError", "Reporter",
    "UnavailableError", "plan_from_agent", "resolve_socket",
]
