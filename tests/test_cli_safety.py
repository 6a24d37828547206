"""The runner's command line refuses unsafe exposure unless asked, and says so when asked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from runnerpool.cli import main


class TestInsecure:
    @pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
    def test_beyond_loopback_without_tls_needs_insecure(self, host: str) -> None:
        """Serving beyond loopback without TLS is a usage error naming --insecure."""
        result = CliRunner().invoke(main, ["runner", "--host", host, "--port", "0"])
        assert result.exit_code == 2
        assert "--insecure" in result.output

    def test_insecure_is_accepted_with_a_warning(self) -> None:
        """With --insecure the runner warns and goes on (here to an address it cannot bind)."""
        # 192.0.2.1 is TEST-NET-1: never this host's, so nothing listens beyond loopback.
        result = CliRunner().invoke(
            main, ["runner", "--host", "192.0.2.1", "--port", "0", "--insecure"]
        )
        assert "cannot serve on 192.0.2.1:0" in result.output
        # The CLI's own log handler writes to the stderr CliRunner captures.
        assert "without TLS (--insecure)" in result.stderr

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
    def test_loopback_needs_nothing(self, host: str) -> None:
        """Loopback addresses need no --insecure (the check passes; --help stops before serving)."""
        result = CliRunner().invoke(main, ["runner", "--host", host, "--help"])
        assert result.exit_code == 0
