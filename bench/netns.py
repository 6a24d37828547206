"""A test network of namespaces: the load balancer in one, each runner in its own.

Used by the gray-failure tests and the chaos benchmark. Needs root and ``ip`` (iproute2).

Topology (``N`` runners)::

    this process (root namespace) --veth-- LB namespace --veth 1-- runner namespace 1
        root_ip                     lb_ip                --veth N-- runner namespace N
                                    10.77.i.1           10.77.i.2

The root end of the first link gets a /30 derived from this process's id (in 10.250.0.0/16),
so that concurrent runs do not clash; the runner links exist only inside the namespaces. Taking
a runner's end of its link down is a partition: the load balancer's packets to it are dropped,
silently. Deleting the namespaces (:meth:`Topology.destroy`) removes every link.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence

__all__ = ["NetnsUnavailableError", "Topology"]


class NetnsUnavailableError(RuntimeError):
    """Raised when network namespaces cannot be made here (not root, no ``ip``, ...)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        raise NetnsUnavailableError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class Topology:
    """Namespaces and links for one load balancer and ``runners`` runners.

    Args:
        runners: How many runner namespaces.

    Attributes:
        lb_ns: The load balancer's namespace.
        runner_ns: Each runner's namespace.
        lb_ip: The load balancer's address, reachable from this process.
        runner_ips: Each runner's address, reachable from the load balancer's namespace.
    """

    def __init__(self, runners: int) -> None:
        tag = f"{os.getpid() % 100000}"
        self.lb_ns = f"rp{tag}lb"
        self.runner_ns = [f"rp{tag}r{i}" for i in range(runners)]
        self._root_link = f"rpv{tag}"
        pid = os.getpid()
        base = ipaddress.IPv4Address("10.250.0.0") + ((pid % 16384) << 2)
        self.root_ip = str(base + 1)
        self.lb_ip = str(base + 2)
        self.runner_ips = [f"10.77.{i}.2" for i in range(runners)]
        self._made: list[str] = []

    def create(self) -> Topology:
        """Make the namespaces and links; on any failure, undo and raise.

        Raises:
            NetnsUnavailableError: If namespaces cannot be made here (the reason says why).
        """
        if os.geteuid() != 0:
            raise NetnsUnavailableError("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetnsUnavailableError("the ip command (iproute2) is not installed")
        try:
            self._namespace(self.lb_ns)
            _ip("link", "add", self._root_link, "type", "veth", "peer", "name", "up0",
                "netns", self.lb_ns)  # fmt: skip
            _ip("addr", "add", f"{self.root_ip}/30", "dev", self._root_link)
            _ip("link", "set", self._root_link, "up")
            _ip("-n", self.lb_ns, "addr", "add", f"{self.lb_ip}/30", "dev", "up0")
            _ip("-n", self.lb_ns, "link", "set", "up0", "up")
            for i, namespace in enumerate(self.runner_ns):
                self._namespace(namespace)
                _ip("link", "add", "name", f"lb{i}", "netns", self.lb_ns, "type", "veth",
                    "peer", "name", "eth0", "netns", namespace)  # fmt: skip
                _ip("-n", self.lb_ns, "addr", "add", f"10.77.{i}.1/30", "dev", f"lb{i}")
                _ip("-n", self.lb_ns, "link", "set", f"lb{i}", "up")
                _ip("-n", namespace, "addr", "add", f"{self.runner_ips[i]}/30", "dev", "eth0")
                _ip("-n", namespace, "link", "set", "eth0", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def _namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def run_in(self, namespace: str, command: Sequence[str]) -> list[str]:
        """Return ``command`` prefixed to run inside ``namespace``."""
        return ["ip", "netns", "exec", namespace, *command]

    def set_link(self, runner: int, up: bool) -> None:
        """Bring the runner's end of its link up or down (down: a silent partition)."""
        _ip("-n", self.runner_ns[runner], "link", "set", "eth0", "up" if up else "down")

    def destroy(self) -> None:
        """Delete the namespaces made (and with them every link); never raises."""
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        self._made.clear()
        # The root end goes with its peer's namespace; delete it in case it was left alone.
        subprocess.run(["ip", "link", "del", self._root_link], capture_output=True, timeout=10)
