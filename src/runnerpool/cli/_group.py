"""The ``runnerpool`` click group: the global log options, and errors in the log format."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource

from .._logging import LOG_FORMATS, LOG_LEVELS, configure_logging, json_mode
from .._tracing import start_from_environment

__all__ = ["main"]

logger = logging.getLogger("runnerpool.cli")


@dataclass
class LogSettings:
    """The log level and format chosen so far (in the root context's ``meta``)."""

    level: str = "info"
    format: str = "text"


def log_settings(ctx: click.Context) -> LogSettings:
    """Return the log settings of this command line (the defaults before any is applied)."""
    settings: LogSettings = ctx.find_root().meta.setdefault("runnerpool.log", LogSettings())
    return settings


def _set_log_option(ctx: click.Context, param: click.Parameter, value: str) -> None:
    """Apply a log option at once, so that later errors already have the chosen format.

    The group's value comes from its command line, ``FN_LOG_*`` or the default; a
    subcommand's replaces it only when given on the subcommand's command line.
    """
    assert param.name is not None
    if (
        ctx.parent is not None
        and ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE
    ):
        return
    settings = log_settings(ctx)
    setattr(settings, param.name.removeprefix("log_"), value.lower())
    configure_logging(settings.level, settings.format)


def _log_options() -> list[click.Option]:
    """The global options: the group has them, and every subcommand a copy."""
    return [
        click.Option(
            ["--log-level"],
            envvar="FN_LOG_LEVEL",
            default="info",
            type=click.Choice(list(LOG_LEVELS), case_sensitive=False),
            is_eager=True,
            expose_value=False,
            callback=_set_log_option,
            help="Level of runnerpool's messages on stderr (Fn's level names; other "
            "libraries' messages from warning up) [env FN_LOG_LEVEL].",
        ),
        click.Option(
            ["--log-format"],
            envvar="FN_LOG_FORMAT",
            default="text",
            type=click.Choice(list(LOG_FORMATS), case_sensitive=False),
            is_eager=True,
            expose_value=False,
            callback=_set_log_option,
            help="text: one readable line per message; json: every line on stderr (and the "
            "ready line on stdout) is a JSON object, with the call id, function id and "
            "runner address of call messages [env FN_LOG_FORMAT].",
        ),
    ]


class _Command(click.Command):
    """A subcommand that takes the global options after its name too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_log_options())


class _Group(click.Group):
    """The ``runnerpool`` group: global options, and errors in the log format."""

    command_class = _Command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; in JSON mode, Ctrl-C is an abort without click's blank line."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if not json_mode():
                raise
            raise click.Abort from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in JSON mode, report an error as a JSON log line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        # The process ends here: as a log line, the reason is shown at any level.
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            if not json_mode():
                exc.show()
            else:
                logger.critical("%s", exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            if not json_mode():
                click.echo("Aborted!", err=True)
            else:
                logger.critical("Aborted")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


# show_default: every option with a default shows it in --help (subcommands inherit it).
@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True}
)
@click.version_option(package_name="runnerpool")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Place serverless function calls on runners, the way Fn Project does."""
    if ctx.invoked_subcommand in _TRACED:
        _start_tracing(ctx)


#: The commands that serve calls, and so trace them when OTEL_TRACES_EXPORTER says so.
_TRACED = frozenset({"lb", "runner", "dev"})


def _start_tracing(ctx: click.Context) -> None:
    """Enable tracing as OpenTelemetry's variables say; flush the spans when the command ends."""
    try:
        stop = start_from_environment(f"runnerpool-{ctx.invoked_subcommand}", os.environ)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if stop is not None:
        ctx.call_on_close(stop)


main.params.extend(_log_options())
