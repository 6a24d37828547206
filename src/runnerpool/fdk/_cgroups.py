"""Memory and process-count limits for function processes, with Linux control groups.

Each function process gets its own group under the runner's (``runnerpool-<runner pid>``,
inside the runner's own group, so a runner in a container stays inside its container's
limits): a memory limit of the function's ``memory`` (swap included, as Docker sets it for
Fn), and at most :data:`MAX_PIDS` processes (Fn's ``pids-limit``). The kernel then kills a
process that goes over its memory, wherever it allocates, and counts that as an OOM kill,
which is how the runner tells running out of memory from any other ``SIGKILL``.

Both cgroup v1 (one hierarchy per controller) and v2 (one unified hierarchy) are handled.
Where the runner may not create groups, :meth:`Cgroups.detect` returns ``None`` and the
launcher's address-space limit holds memory instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_PIDS", "Cgroups", "ProcessCgroup", "default_memory_mb", "host_memory_mb"]

logger = logging.getLogger(__name__)

#: Fn's limit on the processes of one container.
MAX_PIDS = 50
_ROOT = Path("/sys/fs/cgroup")
_PREFIX = "runnerpool-"
#: A v1 or v2 memory limit at or above this is "no limit" (the kernel's page-rounded max).
_UNLIMITED = 1 << 60


def _own_groups() -> dict[str, str]:
    """Map each controller of this process (``""`` for v2) to its group's path."""
    groups: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    return groups


def host_memory_mb() -> int:
    """Return the memory this process may really use, in MB: its cgroup's limit, or the host's.

    This is what a runner's capacity defaults to (Fn's runner does the same), so that it
    refuses calls rather than exhausting the machine.
    """
    with open("/proc/meminfo") as meminfo:
        total = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal"))
    groups = _own_groups()
    candidates = []
    if "memory" in groups:
        candidates.append(_ROOT / "memory" / groups["memory"].lstrip("/") / "memory.limit_in_bytes")
    if "" in groups:
        candidates.append(_ROOT / groups[""].lstrip("/") / "memory.max")
    for path in candidates:
        with contextlib.suppress(OSError, ValueError):
            text = path.read_text().strip()
            if text != "max" and int(text) < _UNLIMITED:
                total = min(total, int(text))
    return total // (1024 * 1024)


def default_memory_mb(host_mb: int | None = None) -> int:
    """Return a runner's default memory capacity: Fn's, the host's memory less a headroom.

    The headroom is 10 % of it, at least 256 MB and at most 5 GB (Fn's resource tracker).

    Args:
        host_mb: The memory there is (default: :func:`host_memory_mb`).
    """
    total = host_memory_mb() if host_mb is None else host_mb
    headroom = min(max(total // 10, 256), 5 * 1024)
    return max(total - headroom, 0)


@dataclass(frozen=True, slots=True)
class ProcessCgroup:
    """The groups of one function process.

    Attributes:
        memory: Its memory group (v1), or its only group (v2).
        pids: Its pids group (v1), or ``None`` (v2: the same as ``memory``).
        unified: Whether this is cgroup v2.
    """

    memory: Path
    pids: Path | None
    unified: bool

    def join(self) -> None:
        """Move the calling process into the groups (run in the child, before ``exec``)."""
        for group in (self.memory, self.pids):
            if group is not None:
                (group / "cgroup.procs").write_text("0")

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the group for going over its memory."""
        name = "memory.events" if self.unified else "memory.oom_control"
        with contextlib.suppress(OSError):
            for line in (self.memory / name).read_text().splitlines():
                key, _, count = line.partition(" ")
                if key == "oom_kill" and int(count) > 0:
                    return True
        return False

    def kill_all(self) -> None:
        """SIGKILL every process still in the group."""
        for group in (self.memory, self.pids):
            if group is None:
                continue
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        """Remove the groups once empty (their processes may take a moment to go)."""
        for group in (self.memory, self.pids):
            if group is None:
                continue
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.01)


class Cgroups:
    """Where a runner makes its function processes' groups.

    Args:
        memory: The runner's memory group directory (v1) or its group (v2).
        pids: The runner's pids group directory (v1), or ``None``.
        unified: Whether this is cgroup v2.
    """

    def __init__(self, memory: Path, pids: Path | None, unified: bool) -> None:
        self.memory = memory
        self.pids = pids
        self.unified = unified

    @classmethod
    def detect(cls) -> Cgroups | None:
        """Make this runner's groups, or return ``None`` where the host does not allow it.

        Groups left by runners that died (SIGKILL) are removed on the way.
        """
        groups = _own_groups()
        name = f"{_PREFIX}{os.getpid()}"
        try:
            if "memory" in groups and (_ROOT / "memory").is_dir():
                memory = _ROOT / "memory" / groups["memory"].lstrip("/")
                pids_parent = (
                    _ROOT / "pids" / groups["pids"].lstrip("/") if "pids" in groups else None
                )
                for parent in (memory, pids_parent):
                    if parent is not None:
                        _reclaim(parent)
                memory = _make(memory / name)
                pids = None if pids_parent is None else _make(pids_parent / name)
                return cls(memory, pids, unified=False)
            if "" in groups and (_ROOT / "cgroup.controllers").is_file():
                parent = _ROOT / groups[""].lstrip("/")
                _reclaim(parent)
                own = _make(parent / name)
                # v2: a group with processes cannot hand controllers to children ("no internal
                # processes"); the runner's function groups sit in this group of their own.
                (own / "cgroup.subtree_control").write_text("+memory +pids")
                return cls(own, None, unified=True)
        except OSError as exc:
            logger.info("No cgroups for function processes (%s)", exc)
        return None

    def create(self, name: str, memory_mb: int, limit_memory: bool = True) -> ProcessCgroup:
        """Make the groups of one process: ``memory_mb`` of memory, :data:`MAX_PIDS` processes.

        Args:
            name: The group's name (unique among the runner's processes).
            memory_mb: Its memory limit, in MB.
            limit_memory: Whether to set the memory limit (else processes only).

        Raises:
            OSError: If the groups cannot be made.
        """
        limit = str(memory_mb * 1024 * 1024)
        memory = _make(self.memory / name)
        if self.unified:
            if limit_memory:
                (memory / "memory.max").write_text(limit)
                with contextlib.suppress(OSError):
                    (memory / "memory.swap.max").write_text("0")
            (memory / "pids.max").write_text(str(MAX_PIDS))
            return ProcessCgroup(memory, None, unified=True)
        if limit_memory:
            (memory / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):
                # Only where swap accounting is on; then swap counts against the same limit.
                (memory / "memory.memsw.limit_in_bytes").write_text(limit)
        pids = None
        if self.pids is not None:
            pids = _make(self.pids / name)
            (pids / "pids.max").write_text(str(MAX_PIDS))
        return ProcessCgroup(memory, pids, unified=False)

    def close(self) -> None:
        """Remove the runner's groups once its processes' groups are gone.

        Executors of one process share these groups: a group still holding another
        executor's processes stays.
        """
        for group in (self.memory, self.pids):
            if group is not None:
                with contextlib.suppress(OSError):
                    group.rmdir()


def _make(path: Path) -> Path:
    # The runner's own group too, if closed meanwhile (an executor closed, another started).
    path.mkdir(parents=True, exist_ok=True)
    return path


def _reclaim(parent: Path) -> None:
    """Remove the groups of runners that are no longer running."""
    with contextlib.suppress(OSError):
        for group in parent.glob(f"{_PREFIX}*"):
            pid = group.name.removeprefix(_PREFIX)
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                for child in [path for path in group.iterdir() if path.is_dir()]:
                    ProcessCgroup(child, None, unified=False).remove()
                with contextlib.suppress(OSError):
                    group.rmdir()
                logger.info("Removed the cgroup %s of a runner that died", group)
