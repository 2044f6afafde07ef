"""Process plumbing shared by the Python benchmark and GPU tools (tests/load, tests/bench,
tests/gpu): a daemon's /proc figures, splitd's port file, a polling wait and stopping processes.

The tools run as plain scripts (on a GPU machine too, from a copy of the repository), so each
puts this directory on sys.path relative to its own file and imports from `procs`.
"""

import os
import signal
import subprocess
import time


def proc_status(pid):
    """VmRSS, VmHWM (KiB) and Threads of a process; None once it is gone."""
    fields = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    fields[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields


def wait_for(predicate, timeout, poll=0.02, raises=True):
    """Calls `predicate()` every `poll` seconds until it returns something other than None, and
    returns that. After `timeout` seconds: TimeoutError, or None when `raises` is false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None:
            return value
        time.sleep(poll)
    if raises:
        raise TimeoutError("condition not met")
    return None


def read_port_file(port_file):
    """The address written to `port_file`; None while it is absent or empty."""
    try:
        with open(port_file) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def wait_for_port(port_file, daemon, timeout=10.0):
    """The address splitd (the Popen `daemon`) writes to `port_file`; raises if it exits first."""

    def address():
        if daemon.poll() is not None:
            raise RuntimeError("splitd exited with %d before serving" % daemon.returncode)
        return read_port_file(port_file)

    try:
        return wait_for(address, timeout, poll=0.01)
    except TimeoutError:
        raise RuntimeError("splitd did not write %s within %.0f s" % (port_file, timeout)) from None


def stop(procs, timeout, kill_after=True):
    """Stops the Popens `procs`: SIGTERM to each one still running, then waits up to `timeout`
    seconds for each in turn. One still running then is killed (and reaped) when `kill_after`,
    else its subprocess.TimeoutExpired is raised. Returns how many were killed."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    killed = 0
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if not kill_after:
                raise
            proc.kill()
            proc.wait()
            killed += 1
    return killed
