"""The edge's options of `runnerpool lb` and `runnerpool dev`: listed with defaults, checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runnerpool.cli import main
from tests.lb.conftest import FUNCTIONS_TOML

EDGE_OPTIONS = {
    "--max-header-size": "65536",
    "--header-timeout": "10.0",
    "--body-timeout": "60.0",
    "--keepalive-timeout": "5.0",
    "--max-connections": "10000",
    "--drain-timeout": "60.0",
}


class TestEdgeOptions:
    @pytest.mark.parametrize("command", ["lb", "dev"])
    def test_help_lists_each_limit_with_its_default(self, command: str) -> None:
        """`lb --help` and `dev --help` list every edge limit with its default."""
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        for option, default in EDGE_OPTIONS.items():
            start = text.index(option + " ")
            end = text.index("]", text.index("[default:", start)) + 1
            shown = text[start:end]
            assert f"[default: {default};" in shown or f"[default: {default}]" in shown, shown

    def test_default_request_size_is_6_mib(self) -> None:
        """`lb --help` shows the 6 MiB request body default and how to turn it off."""
        text = " ".join(CliRunner().invoke(main, ["lb", "--help"]).output.split())
        assert "0: no limit" in text
        assert "[default: 6291456;" in text

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--max-header-size", "100"], "'--max-header-size': 100 is not in the range x>=1024"),
            (["--header-timeout", "0"], "'--header-timeout': 0.0 is not in the range x>0"),
            (["--body-timeout", "-1"], "'--body-timeout': -1.0 is not in the range x>0"),
            (["--max-connections", "0"], "'--max-connections': 0 is not in the range x>=1"),
            (["--drain-timeout", "-1"], "'--drain-timeout': -1.0 is not in the range x>=0"),
        ],
    )
    def test_bad_limits_exit_2(self, tmp_path: Path, args: list[str], message: str) -> None:
        """A limit out of range exits 2 naming the option, before anything is served."""
        config = tmp_path / "fns.toml"
        config.write_text(FUNCTIONS_TOML)
        result = CliRunner().invoke(
            main, ["lb", "--config", str(config), "--runner-addresses", "127.0.0.1:1", *args]
        )
        assert result.exit_code == 2
        assert message in " ".join(result.output.split())
