"""Process helpers shared by the load benchmarks: a daemon's /proc figures and its port file."""

import os
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


def wait_for_port(port_file, daemon, timeout=10.0):
    """The address splitd (the Popen `daemon`) writes to `port_file`; raises if it exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError("splitd exited with %d before serving" % daemon.returncode)
        if os.path.exists(port_file):
            text = open(port_file).read().strip()
            if text:
                return text
        time.sleep(0.01)
    raise RuntimeError("splitd did not write %s within %.0f s" % (port_file, timeout))
