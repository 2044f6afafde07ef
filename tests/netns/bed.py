"""A test bed of hosts in network namespaces: each host is a namespace with one interface joined by a
veth pair to a bridge in a namespace of its own, with an address in 198.18.0.0/24 (the range set
aside for benchmarking). The addresses exist only inside the namespaces the bed made, so nothing it
runs reaches anything else. Needs root and iproute2.

Every name the bed makes starts with "sdbed<pid>-" (the pid of the process that made it). Entering
a bed first removes what beds of processes that are gone left behind (their processes, then their
namespaces, which takes their veths with them); leaving it stops the processes it started and
removes its namespaces, also when the test failed.

    with Bed(hosts=5) as bed:
        bed.spawn(0, "splitd", ["splitd", "--listen", f"{bed.address(0)}:7070"], log_dir)
        bed.run(0, ["splitctl", ...])
"""

import os
import re
import signal
import subprocess
import time

PREFIX = "sdbed"
SUBNET = "198.18.0"


def _ip(*args):
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces():
    """Every network namespace's name."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_namespace(name):
    """Kills every process in namespace `name`, then deletes it (and with it its interfaces)."""
    for _ in range(50):
        pids = [int(p) for p in _ip("netns", "pids", name).split()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    _ip("netns", "delete", name)


def remove_stale():
    """Removes the namespaces of beds whose process is gone; returns their names."""
    stale = []
    for name in namespaces():
        match = re.fullmatch(PREFIX + r"(\d+)-.*", name)
        if match and not _pid_alive(int(match.group(1))):
            _remove_namespace(name)
            stale.append(name)
    return stale


class Bed:
    def __init__(self, hosts):
        if not 1 <= hosts <= 200:
            raise ValueError(f"hosts must be 1..200, got {hosts}")
        self.hosts = hosts
        self.tag = f"{PREFIX}{os.getpid()}-"
        self.bridge = self.tag + "br"
        self.procs = []  # (name, Popen)

    def host(self, i):
        """The namespace of host `i`."""
        return f"{self.tag}h{i}"

    def address(self, i):
        """Host `i`'s address."""
        return f"{SUBNET}.{i + 1}"

    def __enter__(self):
        remove_stale()
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _make(self):
        _ip("netns", "add", self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")
        for i in range(self.hosts):
            host = self.host(i)
            _ip("netns", "add", host)
            # Made inside the host with its peer in the bridge's namespace: no interface of the
            # bed ever exists in this namespace, even for a moment.
            _ip("-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}",
                "netns", self.bridge)
            _ip("-n", self.bridge, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", self.bridge, "link", "set", f"p{i}", "up")
            _ip("-n", host, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", host, "link", "set", "eth0", "up")
            _ip("-n", host, "link", "set", "lo", "up")

    def cut(self, i):
        """Cuts host `i` off from every other host (its interface down); heal() undoes it."""
        _ip("-n", self.host(i), "link", "set", "eth0", "down")

    def heal(self, i):
        _ip("-n", self.host(i), "link", "set", "eth0", "up")

    def isolate_from_peers(self, i, keep):
        """Drops host `i`'s traffic with every other host but those of `keep` (iptables in its
        namespace, gone with it)."""
        for chain, direction in (("INPUT", "-s"), ("OUTPUT", "-d")):
            for j in keep:
                self.run(i, ["iptables", "-A", chain, direction, self.address(j), "-j", "ACCEPT"],
                         check=True)
            self.run(i, ["iptables", "-A", chain, direction, f"{SUBNET}.0/24", "-j", "DROP"],
                     check=True)

    def command(self, i, argv):
        """`argv` as run on host `i`."""
        return ["ip", "netns", "exec", self.host(i), *argv]

    def spawn(self, i, name, argv, log_dir):
        """Starts `argv` on host `i`, its output in log_dir/name.log; stopped by close()."""
        with open(os.path.join(log_dir, name + ".log"), "wb") as log:
            proc = subprocess.Popen(self.command(i, argv), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, proc))
        return proc

    def run(self, i, argv, **kwargs):
        """Runs `argv` on host `i` to its end (subprocess.run's keyword arguments)."""
        return subprocess.run(self.command(i, argv), **kwargs)

    def close(self):
        """Stops the processes started here, then removes every namespace of this bed."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        # One grace for all of them; whatever is still up then is killed.
        deadline = time.monotonic() + 5
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
        for name in namespaces():
            if name.startswith(self.tag):
                _remove_namespace(name)
