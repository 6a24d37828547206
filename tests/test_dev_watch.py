"""`runnerpool dev`'s edit loop: bundle versions in images, and the watcher reloading them."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from runnerpool._dev import dev_functions
from runnerpool._dev_watch import FunctionWatcher, bundle_version, changes, versioned
from runnerpool.lb._bundle_registry import registry_from_bundles
from runnerpool.lb._live import LiveRegistry
from runnerpool.lb._registry import Registry
from tests.lb.conftest import FUNCTIONS_TOML

V1 = "def handler(ctx, data=None):\n    return 'v1'\n"
V2 = "def handler(ctx, data=None):\n    return 'v2'\n"


def write_bundle(root: Path, name: str, code: str = V1) -> Path:
    """Write a bundle holding func.py; return its directory."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "func.py").write_text(code)
    return directory


def image(live: LiveRegistry, fn_id: str) -> str | None:
    """The image of a function in force, or ``None``."""
    function = live.current.function(fn_id)
    return None if function is None else function.image


def memory(live: LiveRegistry, fn_id: str) -> int | None:
    """The memory of a function in force, or ``None``."""
    function = live.current.function(fn_id)
    return None if function is None else function.memory


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``condition()`` holds: the watcher's thread has no event to wait on here."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the watcher reloads from its own thread's news
            await asyncio.sleep(0.02)


class TestBundleVersion:
    def test_an_edit_changes_the_version(self, tmp_path: Path) -> None:
        """Changing func.py, adding requirements.txt or a helper module each give a new version."""
        directory = write_bundle(tmp_path, "fn")
        seen = {bundle_version(directory)}
        (directory / "func.py").write_text(V2)
        seen.add(bundle_version(directory))
        (directory / "requirements.txt").write_text("iso8601\n")
        seen.add(bundle_version(directory))
        (directory / "lib").mkdir()
        (directory / "lib" / "helper.py").write_text("X = 1\n")
        seen.add(bundle_version(directory))
        assert len(seen) == 4

    def test_caches_and_touches_keep_the_version(self, tmp_path: Path) -> None:
        """__pycache__, hidden files and a new mtime with the same content keep the version."""
        directory = write_bundle(tmp_path, "fn")
        before = bundle_version(directory)
        (directory / "__pycache__").mkdir()
        (directory / "__pycache__" / "func.cpython-311.pyc").write_bytes(b"\x00compiled")
        (directory / ".func.py.swp").write_text("editor state")
        os.utime(directory / "func.py", (1, 1))
        assert bundle_version(directory) == before


class TestVersioned:
    def test_bundle_images_get_their_version_as_tag(self, tmp_path: Path) -> None:
        """Images that are bundles get `name:version` (any tag replaced); others stay as is."""
        write_bundle(tmp_path, "echo")
        registry = Registry.from_toml(
            FUNCTIONS_TOML.replace('image = "hello"', 'image = "echo:0.0.2"')
        )
        tagged = {fn.id: fn.image for fn in versioned(registry, tmp_path).functions}
        version = bundle_version(tmp_path / "echo")
        assert tagged["echo"] == tagged["hello"] == tagged["big"] == f"echo:{version}"
        assert tagged["slow"] == "slow"  # not a bundle under this root

    def test_changes_name_what_moved(self, tmp_path: Path) -> None:
        """`changes` says which functions were added, removed and changed."""
        write_bundle(tmp_path, "a")
        write_bundle(tmp_path, "b")
        old = versioned(registry_from_bundles(tmp_path), tmp_path)
        (tmp_path / "a" / "func.py").write_text(V2)
        write_bundle(tmp_path, "c")
        (tmp_path / "b" / "func.py").unlink()
        new = versioned(registry_from_bundles(tmp_path), tmp_path)
        assert changes(old, new) == ["c added", "b removed", "a changed"]
        assert changes(new, new) == []


class TestFunctionWatcher:
    async def test_edits_and_new_bundles_reload_the_functions(self, tmp_path: Path) -> None:
        """An edit to func.py gives its function a new image; a new folder becomes a function."""
        write_bundle(tmp_path, "fn")
        live = dev_functions(tmp_path)
        watcher = FunctionWatcher(live, tmp_path)
        await watcher.start()
        try:
            first = live.current.function("fn")
            assert first is not None
            (tmp_path / "fn" / "func.py").write_text(V2)

            await until(lambda: image(live, "fn") != first.image)
            assert image(live, "fn") == f"fn:{bundle_version(tmp_path / 'fn')}"
            write_bundle(tmp_path, "added")
            await until(lambda: live.current.function("added") is not None)
        finally:
            await watcher.aclose()

    async def test_a_broken_func_yaml_keeps_the_functions_until_fixed(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """While a func.yaml is invalid the previous functions serve; once fixed, the new do."""
        write_bundle(tmp_path, "fn")
        live = dev_functions(tmp_path)
        watcher = FunctionWatcher(live, tmp_path)
        await watcher.start()
        try:
            before = live.current
            with caplog.at_level(logging.ERROR, logger="runnerpool.lb._live"):
                (tmp_path / "fn" / "func.yaml").write_text("memory: big\n")
                await until(lambda: "func.yaml:1: memory: must be an integer" in caplog.text)
            assert live.current is before
            (tmp_path / "fn" / "func.yaml").write_text("memory: 64\n")
            await until(lambda: memory(live, "fn") == 64)
        finally:
            await watcher.aclose()

    async def test_a_functions_file_replaced_by_an_editor_is_reloaded(self, tmp_path: Path) -> None:
        """A functions file saved by rename (as editors do) is reloaded, twice in a row."""
        bundles = tmp_path / "bundles"
        write_bundle(bundles, "echo")
        config = tmp_path / "fns.toml"
        config.write_text(FUNCTIONS_TOML)
        live = dev_functions(bundles, config)
        watcher = FunctionWatcher(live, bundles, config)
        await watcher.start()
        try:
            for new_id in ("first", "second"):
                staged = tmp_path / "fns.toml.new"
                staged.write_text(FUNCTIONS_TOML.replace('id = "echo"', f'id = "{new_id}"'))
                staged.replace(config)
                await until(lambda: live.current.function(new_id) is not None)  # noqa: B023
            assert live.current.function("echo") is None
        finally:
            await watcher.aclose()
