"""Test "hosts" as Linux network namespaces: each has its own network stack and reaches the
others, and the servers the test starts, only through a bridge the test makes.

    with Network.create(["a", "b", "c"]) as net:
        net.gateway            # the bridge's address in this namespace: servers listen there
        net.address("a")       # host a's address
        net.popen("a", [...])  # a process on host a (`ip netns exec`)

Made with iproute2 (`ip netns`, `ip link ... type bridge|veth`), which needs root: `skip_reason`
says why it cannot run. Names carry a random tag and the subnet is one that no interface here
uses, so two test sessions on one machine never meet; everything is removed on exit (a
namespace's processes first).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from typing import Any


def skip_reason() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    probe = f"pgt-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _free_subnet() -> int:
    """A third octet X such that no interface here has an address in 10.231.X.0/24."""
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for _ in range(100):
        x = random.randrange(1, 250)
        if f"10.231.{x}." not in used:
            return x
    raise RuntimeError("no free 10.231.X.0/24 subnet")


class Network:
    """A bridge in this namespace and one namespace per host, each joined to it by a veth pair."""

    def __init__(self, hosts: Sequence[str]) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = _free_subnet()
        self.bridge = f"pgt{self.tag}br"
        self.gateway = f"10.231.{self.subnet}.1"
        self.hosts = list(hosts)
        self._procs: list[subprocess.Popen[Any]] = []

    def netns(self, host: str) -> str:
        return f"pgt{self.tag}-{host}"

    def address(self, host: str) -> str:
        return f"10.231.{self.subnet}.{10 + self.hosts.index(host)}"

    @classmethod
    @contextlib.contextmanager
    def create(cls, hosts: Sequence[str]) -> Iterator[Network]:
        net = cls(hosts)
        try:
            net._make()
            yield net
        finally:
            net._remove()

    def _make(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, host in enumerate(self.hosts):
            ns, outside, inside = self.netns(host), f"pgt{self.tag}o{i}", f"pgt{self.tag}i{i}"
            _ip("netns", "add", ns)
            _ip("link", "set", "lo", "up", netns=ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("link", "set", inside, "netns", ns)
            _ip("addr", "add", f"{self.address(host)}/24", "dev", inside, netns=ns)
            _ip("link", "set", inside, "up", netns=ns)

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """`argv` run on `host`, in a process group of its own (kill it with os.killpg)."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns(host), *argv], start_new_session=True, **kwargs
        )
        self._procs.append(proc)
        return proc

    def _remove(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            with contextlib.suppress(Exception):
                proc.wait(10)
        for i, host in enumerate(self.hosts):
            subprocess.run(["ip", "link", "del", f"pgt{self.tag}o{i}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.netns(host)], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
