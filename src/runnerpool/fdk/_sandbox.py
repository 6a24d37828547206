"""A sandbox per function process: bubblewrap's namespaces, a uid per app, a minimal file system.

Fn runs each function in its own container; runnerpool runs it in a sandbox built by
bubblewrap (``bwrap``, Debian's ``bubblewrap``; chosen by measurement in docs/decisions.md):

* its own mount, PID, IPC and UTS namespaces, and its own network namespace (loopback only)
  when its function has network off (annotation ``runnerpool/network = false``);
* a file system holding only the system's ``/usr`` (and the interpreter's installation), a few
  files of ``/etc``, its bundle at ``/function`` and its Python environment at ``/python``,
  both read-only, its socket directory at ``/tmp/iofs`` (Fn's path) and a private ``/tmp``;
* a fresh ``/proc`` that shows its own processes only, so no other function and no runner can
  be seen or signalled;
* when the runner is root, an unprivileged uid of its own per app (``setpriv`` drops to it with
  no capabilities and ``no_new_privs`` before the interpreter starts); otherwise the runner's
  uid, in a user namespace;
* memory and process count held by its own cgroup (:mod:`._cgroups`) where the host allows.

When the sandbox's first process ends, the kernel kills everything else in its PID namespace:
whatever a function started (``setsid`` or not) ends with it. ``--die-with-parent`` ends the
sandbox when the runner dies, even by ``SIGKILL``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._cgroups import Cgroups

__all__ = [
    "NETWORK_ANNOTATION",
    "Sandbox",
    "SandboxUnavailableError",
    "host_sandbox",
    "network_allowed",
]

logger = logging.getLogger(__name__)

#: The annotation (Fn's function annotations, or the functions file's) that turns network off.
NETWORK_ANNOTATION = "runnerpool/network"
#: Per-app uids are taken from [UID_BASE, UID_BASE + UID_COUNT): far from system and user ids.
UID_BASE = 200_000
UID_COUNT = 65_536
#: Where things are inside a sandbox.
FUNCTION_DIR = "/function"
PYTHON_DIR = "/python"
IOFS_DIR = "/tmp/iofs"
LAUNCHER = "/runnerpool/launch.py"
#: Files of /etc a Python program may need (name resolution, certificates, time zone).
_ETC = (
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "services",
    "protocols",
    "ssl",
    "ca-certificates",
    "localtime",
)


class SandboxUnavailableError(RuntimeError):
    """Raised when this host cannot make the sandbox; the message says why and what to do."""


def network_allowed(annotations: Mapping[str, str]) -> bool:
    """Return whether a call's function may use the network (on unless annotated off).

    Args:
        annotations: The call's annotations, as raw JSON text (``false`` or ``"off"``/
            ``"none"`` turn network off).
    """
    raw = annotations.get(NETWORK_ANNOTATION)
    return raw is None or raw.strip().lower() not in ("false", '"off"', '"none"', '"false"')


class Sandbox:
    """Builds the command that runs a function process in its sandbox.

    Create it with :meth:`detect`.

    Args:
        bwrap: The bubblewrap executable.
        setpriv: The ``setpriv`` executable (to drop to a per-app uid), or ``None`` when the
            runner is not root (the function keeps the runner's uid, in a user namespace).
        cgroups: Where processes' cgroups are made, or ``None``.
    """

    def __init__(self, bwrap: str, setpriv: str | None, cgroups: Cgroups | None) -> None:
        self.bwrap = bwrap
        self.setpriv = setpriv
        self.cgroups = cgroups
        self._system = _system_binds()

    @classmethod
    def detect(cls, *, cgroups: bool = True) -> Sandbox:
        """Return a working sandbox on this host, or say why there is none.

        Args:
            cgroups: Whether to hold processes with cgroups where the host allows.

        Raises:
            SandboxUnavailableError: If bubblewrap is missing or cannot make namespaces here.
        """
        if not sys.platform.startswith("linux"):
            raise SandboxUnavailableError(
                f"function sandboxes need Linux namespaces; this is {sys.platform}"
            )
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailableError(
                "bubblewrap (bwrap) is not installed: `apt-get install bubblewrap` "
                "(make install does it as root)"
            )
        root = os.geteuid() == 0
        setpriv = shutil.which("setpriv") if root else None
        if root and setpriv is None:
            raise SandboxUnavailableError("setpriv (util-linux) is not installed")
        sandbox = cls(bwrap, setpriv, None)
        probe = [bwrap, *sandbox._namespaces(network=True), *sandbox._system, "--", "/bin/true"]
        try:
            result = subprocess.run(probe, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailableError(f"bubblewrap does not run: {exc}") from None
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip()
            raise SandboxUnavailableError(
                f"bubblewrap cannot make namespaces here ({said or result.returncode}); "
                "user namespaces may be off"
            )
        sandbox.cgroups = Cgroups.detect() if cgroups else None
        return sandbox

    def describe(self) -> str:
        """Say what the sandbox holds, for the runner's status."""
        parts = ["bubblewrap: mount, pid, ipc, uts namespaces"]
        parts.append("a uid per app" if self.setpriv else "the runner's uid in a user namespace")
        if self.cgroups is None:
            parts.append("no cgroups (memory by address-space limit)")
        else:
            version = "v2" if self.cgroups.unified else "v1"
            parts.append(f"cgroup {version} memory and pids limits")
        return "; ".join(parts)

    def uid(self, app_id: str) -> int | None:
        """Return the uid an app's processes run as (``None``: the runner's own).

        The same app gets the same uid on every runner; two apps share one with odds of 1 in
        :data:`UID_COUNT`, and even then see nothing of each other (namespaces).
        """
        if self.setpriv is None:
            return None
        digest = hashlib.sha256(app_id.encode(errors="surrogatepass")).digest()
        return UID_BASE + int.from_bytes(digest[:4], "big") % UID_COUNT

    def command(
        self,
        inner: Sequence[str],
        *,
        environment: Path,
        bundle: Path,
        launcher: Path,
        socket_dir: Path,
        uid: int | None,
        network: bool,
    ) -> list[str]:
        """Return the command that runs ``inner`` (paths as the sandbox sees them) sandboxed.

        Args:
            inner: The function's command, e.g. ``/python/bin/python /runnerpool/launch.py``.
            environment: The function's Python environment (seen at ``/python``).
            bundle: The function's bundle (seen at ``/function``, its working directory).
            launcher: The launcher script (seen at ``/runnerpool/launch.py``).
            socket_dir: Its socket directory (seen at ``/tmp/iofs``).
            uid: The uid it runs as, or ``None`` for the runner's own.
            network: Whether it shares the host's network.
        """
        command = [self.bwrap, *self._namespaces(network=network), *self._system]
        command += _interpreter_binds(environment)
        command += ["--ro-bind", str(environment), PYTHON_DIR]
        command += ["--ro-bind", str(bundle), FUNCTION_DIR]
        command += [*_directory(Path(LAUNCHER).parent), "--ro-bind", str(launcher), LAUNCHER]
        command += ["--perms", "1777", "--tmpfs", "/tmp"]
        command += ["--bind", str(socket_dir), IOFS_DIR, "--chdir", FUNCTION_DIR]
        if uid is not None and self.setpriv is not None:
            # bwrap run by root keeps no capability but these two, which setpriv uses to drop
            # to the app's uid; the interpreter then starts with none, and no way to gain any.
            command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
            command += [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            command += ["--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
        command += ["--", *inner]
        return command

    def _namespaces(self, *, network: bool) -> list[str]:
        args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"]
        args += ["--unshare-uts", "--hostname", "fn", "--unshare-cgroup-try"]
        if os.geteuid() != 0:
            args.append("--unshare-user")
        if not network:
            args.append("--unshare-net")
        return args


def host_sandbox() -> tuple[Sandbox | None, str]:
    """Return this host's sandbox, or ``None`` and why not, said loudly (an error log line).

    The second item is what a runner's status says when there is no sandbox.
    """
    try:
        return Sandbox.detect(), ""
    except SandboxUnavailableError as exc:
        logger.error(
            "NO SANDBOX: function processes run unisolated, able to read and signal each other "
            "and this runner: %s. Pass --no-sandbox to make that choice explicit.",
            exc,
        )
        return None, f"UNAVAILABLE: {exc}"


def _system_binds() -> list[str]:
    """The host's system directories, read-only; merged-/usr links kept as links."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    return args


def _interpreter_binds(environment: Path) -> list[str]:
    """Bind the installation the environment's interpreter comes from, if outside ``/usr``."""
    try:
        config = (environment / "pyvenv.cfg").read_text()
    except OSError:
        return []
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            prefix = Path(value.strip()).parent
            if prefix.is_dir() and not prefix.is_relative_to("/usr"):
                return [*_directory(prefix.parent), "--ro-bind", str(prefix), str(prefix)]
    return []


def _directory(path: Path) -> list[str]:
    """Make ``path`` and its parents in the sandbox, traversable by the function's uid.

    (bubblewrap makes the parents of a bind's destination readable by root only.)
    """
    args: list[str] = []
    for directory in [*reversed(path.parents), path][1:]:
        args += ["--perms", "0755", "--dir", str(directory)]
    return args
