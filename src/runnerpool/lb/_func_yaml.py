"""A bundle's ``func.yaml`` as a function of the load balancer: name, limits, config.

Fn's CLI writes ``func.yaml`` beside a function's code (``common/funcfile.go``). The fields
read here are the ones that shape a call: ``name``, ``memory`` (MB), ``timeout`` and
``idle_timeout`` (seconds), ``config`` (strings) and ``annotations``. ``entrypoint`` is the
runner's (:mod:`runnerpool.fdk._bundles`). Fn's other fields (``schema_version``,
``version``, ``runtime``, ``build_image``, ``triggers``...) are accepted and ignored. Unlike
Fn's CLI, an unknown key is an error, so that a typo such as ``memroy`` is never silently
ignored. Every problem raises :class:`ConfigError` naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from ._registry import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MEMORY,
    DEFAULT_TIMEOUT,
    App,
    ConfigError,
    Function,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FUNC_YAML_FIELDS", "bundle_function"]

#: The fields of a function this module reads from ``func.yaml``.
FUNC_YAML_FIELDS = ("name", "memory", "timeout", "idle_timeout", "config", "annotations")
#: Fn's other func.yaml fields (its two schemas): valid, and not this module's business.
_IGNORED = (
    *("schema_version", "version", "runtime", "build_image", "run_image", "cmd", "entrypoint"),
    *("content_type", "type", "cpus", "format", "path", "headers", "build", "expects"),
    *("triggers", "tests"),
)


@dataclass(frozen=True, slots=True)
class _Located:
    """The document's top-level keys with their 1-based lines, and its data."""

    data: dict[str, Any]
    lines: dict[str, int]
    config: dict[str, str] | None


def bundle_function(directory: Path, *, image: str, app: App) -> Function:
    """Return the function a bundle declares in its ``func.yaml`` (Fn's defaults without one).

    Args:
        directory: The bundle's directory.
        image: The function's image: the bundle's name under its root.
        app: The app the function belongs to.

    Returns:
        The function; its id and name are func.yaml's ``name``, else the directory's name.

    Raises:
        ConfigError: If ``func.yaml`` cannot be read, is not YAML, has an unknown key or an
            invalid value; ``str()`` gives ``"<path>:<line>: <field>: <problem>"``.
    """
    path = directory / "func.yaml"
    source = str(path)
    if path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, None, None, f"cannot read: {exc}") from None
        located = _locate(text, source)
    else:
        located = _Located({}, {}, None)
    for key, line in located.lines.items():
        if key not in FUNC_YAML_FIELDS and key not in _IGNORED:
            raise ConfigError(
                source, line, key, f"unknown key (fields used: {', '.join(FUNC_YAML_FIELDS)})"
            )
    data = located.data
    name = data.get("name", directory.name)
    # Function checks every value's type and range itself.
    try:
        return Function(
            id=name,
            name=name,
            app=app,
            image=image,
            memory=data.get("memory", DEFAULT_MEMORY),
            timeout=data.get("timeout", DEFAULT_TIMEOUT),
            idle_timeout=data.get("idle_timeout", DEFAULT_IDLE_TIMEOUT),
            config=located.config if located.config is not None else data.get("config", {}),
            annotations=data.get("annotations", {}),
        )
    except ConfigError as exc:
        # The function's id is func.yaml's name: report it as the field the user wrote.
        field = "name" if exc.field in ("id", None) else exc.field
        problem = exc.problem
        if field == "name" and "name" not in data:
            problem += f" (it is the name of the folder {directory}: set `name:` in func.yaml)"
        key = field.split(".", 1)[0]
        raise ConfigError(source, located.lines.get(key), field, problem) from None


def _locate(text: str, source: str) -> _Located:
    """Parse the document, keeping the line of each top-level key."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, line, None, f"not valid YAML: {problem}") from None
    if node is None:
        return _Located({}, {}, None)
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise ConfigError(source, node.start_mark.line + 1, None, "must be a mapping of fields")
    lines: dict[str, int] = {}
    config: dict[str, str] | None = None
    for key, value in node.value:
        lines[str(key.value)] = key.start_mark.line + 1
        if key.value == "config" and isinstance(value, yaml.MappingNode):
            config = _config_text(value, source)
    return _Located({str(key): item for key, item in data.items()}, lines, config)


def _config_text(node: yaml.MappingNode, source: str) -> dict[str, str]:
    """Read config values as the text written, as Fn's CLI does (``PORT: 8080`` is "8080")."""
    config: dict[str, str] = {}
    for key, value in node.value:
        field = f"config.{key.value}"
        if not isinstance(key, yaml.ScalarNode):
            raise ConfigError(source, key.start_mark.line + 1, "config", "keys must be strings")
        if not isinstance(value, yaml.ScalarNode) or value.tag == "tag:yaml.org,2002:null":
            raise ConfigError(source, value.start_mark.line + 1, field, "must be a string")
        config[str(key.value)] = str(value.value)
    return config
