"""Hosts made of Linux network namespaces: one veth pair each, joined by a bridge in the root namespace.

Every namespace and the bridge carry the prefix `lnc-`, so a run killed half-way leaves nothing that the next run's
`remove_stale()` cannot find: it kills what still runs inside those namespaces, then deletes them and the bridge.
Needs root and iproute2 (`make cluster-deps`).
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "lnc-"
BRIDGE = "lnc-br0"
SUBNET = "10.77.0"
GATEWAY = f"{SUBNET}.1"  # the bridge: the root namespace, where the test, its stubs and its driver run


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def namespaces() -> list[str]:
    out = ip("-o", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def kill_inside(netns: str) -> None:
    """SIGKILL every process running in `netns` (what a host losing its power does)."""
    pids = ip("netns", "pids", netns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove_stale() -> None:
    """Whatever a previous run (or this one) made: processes in the namespaces, the namespaces, the bridge."""
    for netns in namespaces():
        kill_inside(netns)
    for netns in namespaces():
        ip("netns", "delete", netns, check=False)
    # A veth goes with its namespace, but only once the kernel has let the namespace go: delete what is left.
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            ip("link", "delete", name, check=False)


@dataclass
class Host:
    """One namespace with one address on the bridge's subnet."""

    name: str
    address: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return PREFIX + self.name

    def spawn(self, argv: list[str], *, env: dict, cwd: str, log: str) -> subprocess.Popen:
        """Start `argv` inside this host, in its own process group, its output appended to `log`."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], env=env, cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], check=True, capture_output=True, text=True)

    def power_off(self) -> None:
        """kill -9 everything on this host."""
        kill_inside(self.netns)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()

    def freeze(self, thaw: bool = False) -> None:
        """SIGSTOP (or, thawing, SIGCONT) everything on this host: it holds what it has and does nothing."""
        for pid in ip("netns", "pids", self.netns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGCONT if thaw else signal.SIGSTOP)
            except ProcessLookupError:
                pass

    def cut_from(self, other: "Host") -> None:
        """Drop, silently, every packet this host sends to `other` (a partition, not a refusal: no RST)."""
        self.run("ip", "route", "add", "blackhole", f"{other.address}/32")

    def heal_from(self, other: "Host") -> None:
        self.run("ip", "route", "del", "blackhole", f"{other.address}/32")


class Network:
    """The bridge and the hosts on it; `close()` removes all of it (and is safe to call twice)."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        remove_stale()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")

    def add(self, name: str, last_octet: int) -> Host:
        host = Host(name, f"{SUBNET}.{last_octet}")
        outside = (PREFIX + name)[:15]
        ip("netns", "add", host.netns)
        ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        ip("link", "set", outside, "master", BRIDGE)
        ip("link", "set", outside, "up")
        for args in (("link", "set", "lo", "up"), ("addr", "add", f"{host.address}/24", "dev", "eth0"),
                     ("link", "set", "eth0", "up"), ("route", "add", "default", "via", GATEWAY)):
            ip("-n", host.netns, *args)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            for proc in host.procs:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        for host in self.hosts.values():
            for proc in host.procs:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        remove_stale()
        self.hosts.clear()
