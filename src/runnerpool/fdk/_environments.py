"""Python environments for function bundles: isolated, prepared once, reused.

A function never runs in the runner's own environment: packages there (uvloop, for one)
break the FDK. Each distinct ``requirements.txt`` gets its own virtual environment holding the
``fdk`` package and those requirements, built with uv (≈ 0.1-0.4 s against pip's ≈ 4 s,
docs/decisions.md) and kept under the runner's state directory, so a restarted runner reuses
it. Bundles with the same requirements share one environment: its contents would be equal.

Packages come from a wheelhouse (``find_links``, nothing downloaded) unless an index URL is
given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from uv import find_uv_bin

from .._tasks import watch
from ..runner import RunnerMetrics
from ._errors import EnvironmentFailedError

if TYPE_CHECKING:
    from ._bundles import Bundle

__all__ = ["Environments"]

logger = logging.getLogger(__name__)

State = Literal["preparing", "ready", "failed"]

#: How much of the installer's explanation an error keeps (its end says why).
_MESSAGE_LIMIT = 600
#: What the FDK imports from its environment when a function starts (measured: ``import fdk``).
_FDK_PACKAGES = ("fdk", "httptools", "_distutils_hack")


class Environments:
    """Prepares and caches one Python environment per set of requirements.

    Args:
        root: Where environments live (one directory each, named by their key).
        find_links: Directories of wheels to install from.
        index_url: A package index to install from; ``None``: the wheelhouse only.
        fdk_requirement: The FDK requirement every environment gets.
        python: The interpreter environments are made from (default: the runner's own
            base interpreter; its site-packages are not visible to functions).
        metrics: Where builds are counted (the runner's; counters of its own by default).
    """

    def __init__(
        self,
        root: Path,
        *,
        find_links: Sequence[Path] = (),
        index_url: str | None = None,
        fdk_requirement: str = "fdk",
        python: str = sys.executable,
        metrics: RunnerMetrics | None = None,
    ) -> None:
        self.root = root
        self.metrics = RunnerMetrics() if metrics is None else metrics
        self._find_links = [str(path) for path in find_links]
        self._index_url = index_url
        self._fdk = fdk_requirement
        self._python = python
        self._building: dict[str, asyncio.Task[Path]] = {}
        self._states: dict[str, tuple[State, str]] = {}

    def states(self) -> dict[str, str]:
        """Return each environment's state, for the runner's status.

        A state is ``ready``, ``preparing``, or ``failed: <why>``.
        """
        return {
            key: state if not detail else f"{state}: {detail}"
            for key, (state, detail) in sorted(self._states.items())
        }

    def python(self, bundle: Bundle) -> Path | None:
        """Return the interpreter of a bundle's environment if it is ready, else ``None``."""
        return self.python_of(bundle.environment_key)

    def python_of(self, key: str) -> Path | None:
        """Return the interpreter of the environment of this key if it is ready."""
        python = self.root / key / "bin" / "python"
        return python if python.exists() else None

    async def prepare(self, bundle: Bundle) -> Path:
        """Return the interpreter of the bundle's environment, building it first if needed.

        Concurrent calls for one environment share one build.

        Raises:
            EnvironmentFailedError: If the environment cannot be built (the installer's message).
        """
        key = bundle.environment_key
        ready = self.python(bundle)
        if ready is not None:
            self._states[key] = ("ready", "")
            return ready
        task = self._building.get(key)
        if task is None:
            task = asyncio.create_task(self._build(key, bundle.requirements))
            # Shielded below: a build whose callers all gave up still has its failure logged.
            watch(task, logger, "Building environment %s", key)
            self._building[key] = task
            task.add_done_callback(lambda _: self._building.pop(key, None))
            task.add_done_callback(self._count_build)
        # A caller giving up must not cancel a build others wait for.
        return await asyncio.shield(task)

    def _count_build(self, build: asyncio.Task[Path]) -> None:
        if not build.cancelled():  # cancelled: the runner is closing, nothing was decided
            self.metrics.environment_built(build.exception() is None)

    async def _build(self, key: str, requirements: str) -> Path:
        self._states[key] = ("preparing", "")
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        # Built aside and renamed into place: a directory under its key is always complete.
        # Runners sharing the state directory may build at once; the first rename wins.
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        # Readable by all: sandboxed functions run as other users, and see it read-only.
        os.chmod(staging, 0o755)
        try:
            await self._run("venv", "--quiet", "--python", self._python, str(staging))
            spec = staging / "requirements.txt"
            spec.write_text(f"{self._fdk}\n{requirements}")
            await self._run(
                "pip",
                "install",
                "--quiet",
                "--python",
                str(staging / "bin" / "python"),
                "--cache-dir",
                str(self.root / ".uv-cache"),
                *self._sources(),
                "-r",
                str(spec),
            )
            await _compile_fdk(staging)
            try:
                os.rename(staging, self.root / key)
            except OSError:
                if self.python_of(key) is None:
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except EnvironmentFailedError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            self._states[key] = ("failed", str(exc))
            raise
        self._states[key] = ("ready", "")
        logger.info("Environment %s ready in %.2f s", key, time.monotonic() - started)
        return self.root / key / "bin" / "python"

    def _sources(self) -> list[str]:
        sources = [] if self._index_url else ["--no-index"]
        if self._index_url:
            sources += ["--index-url", self._index_url]
        for path in self._find_links:
            sources += ["--find-links", path]
        return sources

    async def _run(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            find_uv_bin(),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            # uv explains over several indented lines; keep the explanation, in one line.
            text = " ".join(output.decode(errors="replace").split())
            raise EnvironmentFailedError(
                "preparing the function's Python environment failed: "
                + (text[-_MESSAGE_LIMIT:] or f"uv exited {process.returncode}")
            )


async def _compile_fdk(environment: Path) -> None:
    """Compile what a function's start imports from its environment to bytecode, now.

    Sandboxed functions see their environment read-only, so they cannot cache bytecode: without
    this, every cold start would compile the FDK again. Only the FDK's own packages: compiling
    every requirement (uv's ``--compile-bytecode``) took 13 s for the FDK's dependencies alone.
    A function's own imports are compiled in memory on its first call.
    """
    packages = [
        str(path)
        for path in (environment / "lib").glob("python*/site-packages/*")
        if path.name in _FDK_PACKAGES
    ]
    if not packages:
        return
    process = await asyncio.create_subprocess_exec(
        str(environment / "bin" / "python"),
        "-m",
        "compileall",
        "-q",
        *packages,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    # A file that does not compile only loses its cache: the function reports it if imported.
    await process.wait()
