"""The live registry: reloaded whole, the old one kept (and the error logged) when invalid."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runnerpool.lb._live import LiveRegistry
from runnerpool.lb._registry import ConfigError, Registry
from tests.lb.conftest import FUNCTIONS_TOML

BROKEN = FUNCTIONS_TOML.replace('image = "fail"', 'image = "fail"\nmemory = "lots"')


class TestLiveRegistry:
    def test_reload_puts_the_new_file_in_force(self, tmp_path: Path) -> None:
        """After reload, a function added to the file is found and a removed one is not."""
        path = tmp_path / "fns.toml"
        path.write_text(FUNCTIONS_TOML)
        live = LiveRegistry(lambda: Registry.load(path), str(path))
        old = live.current
        assert live.current.function("echo") is not None
        path.write_text(FUNCTIONS_TOML.replace('id = "echo"', 'id = "echo2"'))
        new = live.reload()
        assert new is live.current is not old
        assert live.current.function("echo") is None
        assert live.current.function("echo2") is not None

    def test_an_invalid_file_keeps_the_old_one_and_logs_the_line(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A broken file leaves the old registry in force; the error names file, line, field."""
        path = tmp_path / "fns.toml"
        path.write_text(FUNCTIONS_TOML)
        live = LiveRegistry(lambda: Registry.load(path), str(path))
        old = live.current
        path.write_text(BROKEN)
        with caplog.at_level(logging.ERROR, logger="runnerpool.lb._live"):
            assert live.reload() is None
        assert live.current is old
        assert f"{path}:28: functions[3].memory: must be an integer" in caplog.text

    def test_a_vanished_file_keeps_the_old_one(self, tmp_path: Path) -> None:
        """A file removed after start is an error on reload, not a crash."""
        path = tmp_path / "fns.toml"
        path.write_text(FUNCTIONS_TOML)
        live = LiveRegistry(lambda: Registry.load(path), str(path))
        path.unlink()
        assert live.reload() is None
        assert live.current.function("echo") is not None

    def test_the_first_read_raises(self, tmp_path: Path) -> None:
        """An invalid source at construction raises ConfigError: there is nothing to keep."""
        path = tmp_path / "fns.toml"
        path.write_text(BROKEN)
        with pytest.raises(ConfigError, match=r":28: functions\[3\]\.memory"):
            LiveRegistry(lambda: Registry.load(path), str(path))
