"""The function registry of the load balancer: apps and functions read from TOML.

``runnerpool lb`` reads its functions file at start and again on SIGHUP
(:class:`~runnerpool.lb._live.LiveRegistry`); docs/guide.md describes the format for users.

The load balancer serves ``POST /invoke/{fn_id}`` by looking the function up here. The models
mirror Fn Project's ``api/models/app.go`` and ``fn.go``: the same defaults (128 MB, 30 s
timeout, 30 s idle timeout) and the same validation (memory 1..8192 MB, timeout 1..300 s,
idle timeout 1..3600 s, annotation limits, syslog URL schemes). Names and ids must be 1 to 255
characters from ``A-Z a-z 0-9 - _ . ~``, so that they are safe in a URL path as they are.

The file format::

    [[apps]]
    name = "myapp"                 # required, unique
    id = "app-01"                  # optional; defaults to the name
    config = { GREETING = "hi" }   # optional, string values only
    annotations = { "com.example/owner" = "team-a" }  # optional, any TOML value
    syslog_url = ""                # optional: udp, tcp, unix, unixgram or tcp+tls URL

    [[functions]]
    id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"   # required, unique: the fn_id of /invoke/{fn_id}
    name = "hello"                       # required, unique within its app
    app = "myapp"                        # required: the name of an app above
    image = "hello"             # required
    memory = 128                         # MB, default 128
    timeout = 30                         # seconds, default 30
    idle_timeout = 30                    # seconds, default 30
    config = { NAME = "Ada" }            # optional, string values only
    annotations = {}                     # optional, any TOML value

    [[triggers]]                         # optional: HTTP triggers, ANY /t/{app}{source}
    name = "hello"                       # required, unique within its app
    app = "myapp"                        # required: the name of an app above
    function = "hello"                   # required: the name of a function of that app
    source = "/hello"                    # required, starts with "/"; unique within its app
    id = "myapp.hello"                   # optional; defaults to "{app}.{name}"
    type = "http"                        # optional; "http", the only type Fn knows
    annotations = {}                     # optional, any TOML value

Annotation values are kept as JSON values (TOML dates and times become ISO 8601 strings).
Unknown keys are errors, so that a typo is never silently ignored. Every problem raises
:class:`ConfigError` with the line of the offending key, found by a small scanner of the
source text because ``tomllib`` reports no positions. The scanner follows ``[table]`` and
``[[array]]`` headers, dotted and quoted keys, comments, strings and values that span lines.
Its limits: a key inside an inline table or an array, including a function written as an
element of an inline array (``functions = [{ ... }]``), is reported at the line of the key
that holds the inline value; a missing key is reported at its table's header.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tomllib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from .._images import MAX_IMAGE_LENGTH, valid_image
from .._model import DEFAULT_IDLE_TIMEOUT, DEFAULT_MEMORY, DEFAULT_TIMEOUT
from .._unsafe_env import unsafe_config_key
from ._toml_lines import BARE_KEY, KeyPath, locate

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MEMORY",
    "DEFAULT_TIMEOUT",
    "MAX_IDLE_TIMEOUT",
    "MAX_MEMORY",
    "MAX_NAME_LENGTH",
    "MAX_TIMEOUT",
    "App",
    "ConfigError",
    "Function",
    "Registry",
    "Trigger",
]

MAX_MEMORY = 8192  #: MB, Fn's ``MaxMemory``.
MAX_TIMEOUT = 300  #: Seconds, Fn's ``MaxTimeout``.
MAX_IDLE_TIMEOUT = 3600  #: Seconds, Fn's ``MaxIdleTimeout``.
MAX_NAME_LENGTH = 255  #: Fn's ``MaxLengthAppName`` and ``MaxLengthFnName``.

# Fn's annotation limits (api/models/annotations.go).
_MAX_ANNOTATION_KEYS = 100
_MAX_ANNOTATION_KEY_BYTES = 128
_MAX_ANNOTATION_VALUE_BYTES = 512
_ANNOTATION_KEY = re.compile(r"[!-~]+")
_SYSLOG_SCHEMES = ("udp", "tcp", "unix", "unixgram", "tcp+tls")
_NAME = re.compile(rf"[A-Za-z0-9._~-]{{1,{MAX_NAME_LENGTH}}}")
#: Longest trigger source accepted from a functions file.
_MAX_SOURCE_LENGTH = 256
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")

_TOP_KEYS = ("apps", "functions", "triggers")
_APP_KEYS = ("name", "id", "config", "annotations", "syslog_url")
_FUNCTION_KEYS = (
    *("id", "name", "app", "image", "memory", "timeout", "idle_timeout"),
    *("config", "annotations"),
)
_TRIGGER_KEYS = ("name", "app", "function", "source", "id", "type", "annotations")
#: Fn's only trigger type.
HTTP = "http"

_Path = KeyPath


class ConfigError(ValueError):
    """Raised when a registry or its TOML source is invalid or cannot be read.

    ``str()`` gives ``"<source>:<line>: <field>: <problem>"``, e.g.
    ``"fns.toml:14: functions[1].memory: must be an integer from 1 to 8192, got 'big'"``;
    the line and the field are left out when unknown.

    Args:
        source: The file name, ``"<config>"`` for text, or the class whose arguments are wrong.
        line: The 1-based line of the problem in the source, if known.
        field: The path of the offending value, such as ``functions[1].memory``, if any.
        problem: What is wrong.

    Attributes:
        source: The file name, ``"<config>"`` for text, or the class whose arguments are wrong.
        line: The 1-based line of the problem in the source, or ``None``.
        field: The path of the offending value, or ``None``.
        problem: What is wrong.
    """

    def __init__(self, source: str, line: int | None, field: str | None, problem: str) -> None:
        super().__init__(source, line, field, problem)
        self.source = source
        self.line = line
        self.field = field
        self.problem = problem

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.field is not None:
            where = f"{where}: {self.field}"
        return f"{where}: {self.problem}"


class _Invalid(Exception):
    """Raised by the checks below; callers turn it into a located :class:`ConfigError`."""

    def __init__(self, path: _Path, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class App:
    """An application: a named group of functions sharing configuration.

    ``config`` and ``annotations`` are stored as read-only copies. They take no part in the
    hash (equality still compares them), so apps and functions can be dictionary keys.

    Attributes:
        id: The app's id, unique in a registry.
        name: The app's name, unique in a registry.
        config: Environment for every function of the app; functions may override entries.
        annotations: Metadata not passed to functions, as JSON values.
        syslog_url: Where function logs go; empty for nowhere.

    Raises:
        ConfigError: If a field is invalid; its ``source`` is ``"App"``.
    """

    id: str
    name: str
    config: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, object] = field(default_factory=dict, hash=False)
    syslog_url: str = ""

    def __post_init__(self) -> None:
        try:
            _name(("id",), self.id)
            _name(("name",), self.name)
            config = _config(("config",), self.config)
            annotations = _annotations(("annotations",), self.annotations)
            _syslog_url(("syslog_url",), self.syslog_url)
        except _Invalid as exc:
            raise ConfigError("App", None, _format(exc.path), exc.problem) from None
        object.__setattr__(self, "config", MappingProxyType(config))
        object.__setattr__(self, "annotations", MappingProxyType(annotations))


@dataclass(frozen=True, slots=True)
class Function:
    """A function that ``POST /invoke/{id}`` calls: an image and the resources it gets.

    Attributes:
        id: The function's id, unique in a registry: the ``fn_id`` of ``/invoke/{fn_id}``.
        name: The function's name, unique within its app.
        app: The app the function belongs to.
        image: The image to run, e.g. ``"hello"``.
        memory: Memory in MB, 1 to 8192.
        timeout: Longest run of one call in seconds, 1 to 300.
        idle_timeout: Seconds an idle container is kept for the next call, 1 to 3600.
        config: The function's own environment, as read-only strings.
        annotations: Metadata not passed to the function, as read-only JSON values.

    Raises:
        ConfigError: If a field is invalid; its ``source`` is ``"Function"``.
    """

    id: str
    name: str
    app: App
    image: str
    memory: int = DEFAULT_MEMORY
    timeout: int = DEFAULT_TIMEOUT
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    config: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        try:
            _name(("id",), self.id)
            _name(("name",), self.name)
            if not isinstance(self.app, App):
                raise _Invalid(("app",), f"must be an App, got {_show(self.app)}")
            _image(("image",), self.image)
            _integer(("memory",), self.memory, MAX_MEMORY)
            _integer(("timeout",), self.timeout, MAX_TIMEOUT)
            _integer(("idle_timeout",), self.idle_timeout, MAX_IDLE_TIMEOUT)
            config = _config(("config",), self.config)
            annotations = _annotations(("annotations",), self.annotations)
        except _Invalid as exc:
            raise ConfigError("Function", None, _format(exc.path), exc.problem) from None
        object.__setattr__(self, "config", MappingProxyType(config))
        object.__setattr__(self, "annotations", MappingProxyType(annotations))


@dataclass(frozen=True, slots=True)
class Trigger:
    """An HTTP trigger: ``ANY /t/{app name}{source}`` calls the function ``fn_id``.

    As Fn's ``api/models/trigger.go``: the app and the function are named by id, the source
    starts with ``/``, and ``http`` is the only type.

    Attributes:
        id: The trigger's id (the call's ``trigger_id``).
        name: The trigger's name, unique within its app.
        app_id: The id of the app whose URL prefix the trigger is under.
        fn_id: The id of the function it calls, a function of the same app.
        source: The path after ``/t/{app name}``, starting with ``/``.
        type: ``"http"``.
        annotations: Metadata, as read-only JSON values (not passed to the function).

    Raises:
        ConfigError: If a field is invalid; its ``source`` is ``"Trigger"``.
    """

    id: str
    name: str
    app_id: str
    fn_id: str
    source: str
    type: str = HTTP
    annotations: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        try:
            _name(("id",), self.id)
            _name(("name",), self.name)
            _name(("app_id",), self.app_id)
            _name(("fn_id",), self.fn_id)
            _source(("source",), self.source)
            if self.type != HTTP:
                raise _Invalid(("type",), f'must be "{HTTP}", got {_show(self.type)}')
            annotations = _annotations(("annotations",), self.annotations)
        except _Invalid as exc:
            raise ConfigError("Trigger", None, _format(exc.path), exc.problem) from None
        object.__setattr__(self, "annotations", MappingProxyType(annotations))


class Registry:
    """The apps, functions and triggers a load balancer serves, looked up by id or name.

    Args:
        apps: The apps, with unique names and ids.
        functions: The functions, with unique ids, names unique within each app, and each
            app among ``apps``.
        triggers: The HTTP triggers, with unique ids, names and sources unique within each
            app, each calling a function of its own app.

    Raises:
        ConfigError: If a name, id or source repeats, or a function's app or a trigger's app
            or function is not in the registry; its ``source`` is ``"Registry"``.
    """

    __slots__ = (
        *("_apps", "_apps_by_id", "_apps_by_name", "_by_id", "_by_source"),
        *("_functions", "_triggers"),
    )

    def __init__(
        self, apps: Sequence[App], functions: Sequence[Function], triggers: Sequence[Trigger] = ()
    ) -> None:
        self._apps = tuple(apps)
        self._functions = tuple(functions)
        self._triggers = tuple(triggers)
        try:
            _check_unique(self._apps, self._functions)
            _check_triggers(self._functions, self._triggers)
        except _Invalid as exc:
            raise ConfigError("Registry", None, _format(exc.path), exc.problem) from None
        self._by_id = {function.id: function for function in self._functions}
        self._apps_by_id = {app.id: app for app in self._apps}
        self._apps_by_name = {app.name: app for app in self._apps}
        self._by_source = {
            (trigger.app_id, trigger.type, trigger.source): trigger for trigger in self._triggers
        }

    @classmethod
    def from_toml(cls, text: str, source: str = "<config>") -> Registry:
        """Read a registry from TOML text in the format of this module's docstring.

        Args:
            text: The TOML document.
            source: The name to give in error messages, usually the file's path.

        Returns:
            The registry.

        Raises:
            ConfigError: If the text is not TOML, has an unknown key, a wrong or missing value,
                a repeated name or id, or no functions.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = _TOML_LINE.search(str(exc))
            # tomllib says "at end of document" without a line; Python 3.14 counts it so.
            line = int(match[1]) if match else text.count("\n") + 1
            raise ConfigError(source, line, None, str(exc)) from exc
        try:
            apps, functions, triggers = _from_data(data)
            _check_unique(apps, functions)
            _check_triggers(functions, triggers)
        except _Invalid as exc:
            where = locate(text, exc.path)
            raise ConfigError(source, where, _format(exc.path), exc.problem) from None
        return cls(apps, functions, triggers)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | Traversable) -> Registry:
        """Read a registry from a TOML file.

        Args:
            path: The file, or a resource such as
                ``importlib.resources.files("runnerpool") / "examples.toml"``.

        Returns:
            The registry.

        Raises:
            ConfigError: If the file cannot be read or is not UTF-8, or as
                :meth:`from_toml` raises; its ``source`` is the path.
        """
        source = os.fspath(path) if isinstance(path, str | os.PathLike) else str(path)
        resource = Path(path) if isinstance(path, str | os.PathLike) else path
        try:
            text = resource.read_bytes().decode()
        except OSError as exc:
            raise ConfigError(source, None, None, f"cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(source, None, None, f"not UTF-8: {exc}") from exc
        return cls.from_toml(text, source)

    @property
    def apps(self) -> tuple[App, ...]:
        """The apps, in the order given."""
        return self._apps

    @property
    def functions(self) -> tuple[Function, ...]:
        """The functions, in the order given."""
        return self._functions

    @property
    def triggers(self) -> tuple[Trigger, ...]:
        """The triggers, in the order given."""
        return self._triggers

    def function(self, fn_id: str) -> Function | None:
        """Return the function with this id, or ``None`` if there is none."""
        return self._by_id.get(fn_id)

    def app(self, app_id: str) -> App | None:
        """Return the app with this id, or ``None`` if there is none."""
        return self._apps_by_id.get(app_id)

    def app_by_name(self, name: str) -> App | None:
        """Return the app with this name, or ``None`` if there is none."""
        return self._apps_by_name.get(name)

    def trigger(self, app_id: str, type: str, source: str) -> Trigger | None:
        """Return the app's trigger of this type and source, or ``None`` if there is none."""
        return self._by_source.get((app_id, type, source))

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return (
            f"<Registry: {len(self._apps)} apps, {len(self._functions)} functions, "
            f"{len(self._triggers)} triggers>"
        )


def _from_data(data: dict[str, object]) -> tuple[list[App], list[Function], list[Trigger]]:
    _check_keys((), data, _TOP_KEYS, ())
    raw_apps = _tables(data, "apps")
    raw_functions = _tables(data, "functions")
    if not raw_functions:
        raise _Invalid(("functions",), "no functions defined")
    apps = [_app_from_toml(("apps", index), table) for index, table in enumerate(raw_apps)]
    # Duplicate apps first: a function naming a duplicated app is ambiguous.
    _check_unique(apps, ())
    by_name = {app.name: app for app in reversed(apps)}
    functions = [
        _function_from_toml(("functions", index), table, by_name)
        for index, table in enumerate(raw_functions)
    ]
    # Duplicate functions first: a trigger naming a duplicated function is ambiguous.
    _check_unique(apps, functions)
    triggers = [
        _trigger_from_toml(("triggers", index), table, by_name, functions)
        for index, table in enumerate(_tables(data, "triggers"))
    ]
    return apps, functions, triggers


def _app_from_toml(path: _Path, table: dict[str, object]) -> App:
    _check_keys(path, table, _APP_KEYS, ("name",))
    name = _name((*path, "name"), table["name"])
    return App(
        id=_name((*path, "id"), table.get("id", name)),
        name=name,
        config=_config((*path, "config"), table.get("config", {})),
        annotations=_annotations((*path, "annotations"), table.get("annotations", {})),
        syslog_url=_syslog_url((*path, "syslog_url"), table.get("syslog_url", "")),
    )


def _function_from_toml(path: _Path, table: dict[str, object], apps: dict[str, App]) -> Function:
    _check_keys(path, table, _FUNCTION_KEYS, ("id", "name", "app", "image"))
    fn_id = _name((*path, "id"), table["id"])
    name = _name((*path, "name"), table["name"])
    app_name = _string((*path, "app"), table["app"])
    app = apps.get(app_name)
    if app is None:
        known = ", ".join(map(repr, apps)) or "none"
        raise _Invalid((*path, "app"), f"unknown app {app_name!r} (apps: {known})")
    image = _image((*path, "image"), table["image"])
    return Function(
        id=fn_id,
        name=name,
        app=app,
        image=image,
        memory=_integer((*path, "memory"), table.get("memory", DEFAULT_MEMORY), MAX_MEMORY),
        timeout=_integer((*path, "timeout"), table.get("timeout", DEFAULT_TIMEOUT), MAX_TIMEOUT),
        idle_timeout=_integer(
            (*path, "idle_timeout"),
            table.get("idle_timeout", DEFAULT_IDLE_TIMEOUT),
            MAX_IDLE_TIMEOUT,
        ),
        config=_config((*path, "config"), table.get("config", {})),
        annotations=_annotations((*path, "annotations"), table.get("annotations", {})),
    )


def _trigger_from_toml(
    path: _Path, table: dict[str, object], apps: dict[str, App], functions: Sequence[Function]
) -> Trigger:
    _check_keys(path, table, _TRIGGER_KEYS, ("name", "app", "function", "source"))
    name = _name((*path, "name"), table["name"])
    app_name = _string((*path, "app"), table["app"])
    app = apps.get(app_name)
    if app is None:
        known = ", ".join(map(repr, apps)) or "none"
        raise _Invalid((*path, "app"), f"unknown app {app_name!r} (apps: {known})")
    fn_name = _string((*path, "function"), table["function"])
    own = {function.name: function for function in functions if function.app == app}
    function = own.get(fn_name)
    if function is None:
        known = ", ".join(map(repr, own)) or "none"
        raise _Invalid(
            (*path, "function"),
            f"no function {fn_name!r} in app {app_name!r} (its functions: {known})",
        )
    trigger_type = _string((*path, "type"), table.get("type", HTTP))
    if trigger_type != HTTP:
        raise _Invalid((*path, "type"), f'must be "{HTTP}", got {_show(trigger_type)}')
    return Trigger(
        id=_name((*path, "id"), table.get("id", f"{app.name}.{name}")),
        name=name,
        app_id=app.id,
        fn_id=function.id,
        source=_source((*path, "source"), table["source"]),
        annotations=_annotations((*path, "annotations"), table.get("annotations", {})),
    )


def _check_triggers(functions: Sequence[Function], triggers: Sequence[Trigger]) -> None:
    by_id = {function.id: function for function in functions}
    for index, trigger in enumerate(triggers):
        function = by_id.get(trigger.fn_id)
        if function is None:
            raise _Invalid(
                ("triggers", index, "function"),
                f"function id {trigger.fn_id!r} is not among the registry's functions",
            )
        if function.app.id != trigger.app_id:
            # Fn's ErrTriggerFnIDNotSameApp.
            raise _Invalid(
                ("triggers", index, "function"),
                f"function {function.name!r} is not in the trigger's app",
            )
    _unique("triggers", "id", [(t.id, f"trigger id {t.id!r}") for t in triggers])
    _unique(
        "triggers",
        "name",
        [((t.app_id, t.name), f"trigger name {t.name!r} in its app") for t in triggers],
    )
    _unique(
        "triggers",
        "source",
        [
            ((t.app_id, t.type, t.source), f"trigger source {t.source!r} in its app")
            for t in triggers
        ],
    )


def _check_unique(apps: Sequence[App], functions: Sequence[Function]) -> None:
    _unique("apps", "name", [(app.name, f"app name {app.name!r}") for app in apps])
    _unique("apps", "id", [(app.id, f"app id {app.id!r}") for app in apps])
    known = set(apps)
    for index, function in enumerate(functions):
        if function.app not in known:
            raise _Invalid(
                ("functions", index, "app"),
                f"app {function.app.name!r} is not among the registry's apps",
            )
    _unique("functions", "id", [(fn.id, f"function id {fn.id!r}") for fn in functions])
    _unique(
        "functions",
        "name",
        [
            ((fn.app.id, fn.name), f"function name {fn.name!r} in app {fn.app.name!r}")
            for fn in functions
        ],
    )


def _unique(table: str, key: str, values: Sequence[tuple[Hashable, str]]) -> None:
    first: dict[Hashable, int] = {}
    for index, (value, shown) in enumerate(values):
        if value in first:
            raise _Invalid((table, index, key), f"duplicate {shown} (also {table}[{first[value]}])")
        first[value] = index


def _tables(data: dict[str, object], key: str) -> list[dict[str, object]]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _Invalid((key,), f"must be an array of tables ([[{key}]]), got {_show(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Invalid((key, index), f"must be a table, got {_show(item)}")
    return value


def _check_keys(
    path: _Path, table: Mapping[str, object], allowed: Sequence[str], required: Sequence[str]
) -> None:
    for key in table:
        if key not in allowed:
            raise _Invalid((*path, key), f"unknown key (expected one of: {', '.join(allowed)})")
    for key in required:
        if key not in table:
            raise _Invalid((*path, key), "is required")


def _string(path: _Path, value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"must be a string, got {_show(value)}")
    return value


def _image(path: _Path, value: object) -> str:
    image = _string(path, value)
    if not image:
        raise _Invalid(path, "must not be empty")
    if not valid_image(image):
        raise _Invalid(
            path, f"must be at most {MAX_IMAGE_LENGTH} characters, none of them control characters"
        )
    return image


def _name(path: _Path, value: object) -> str:
    if not _NAME.fullmatch(_string(path, value)):
        raise _Invalid(
            path,
            f"must be 1 to {MAX_NAME_LENGTH} characters from A-Z a-z 0-9 - _ . ~, "
            f"got {_show(value)}",
        )
    return str(value)


def _source(path: _Path, value: object) -> str:
    source = _string(path, value)
    if not source.startswith("/"):
        # Fn's ErrTriggerMissingSourcePrefix.
        raise _Invalid(path, f"must start with '/', got {_show(value)}")
    if len(source) > _MAX_SOURCE_LENGTH or not source.isprintable():
        raise _Invalid(
            path, f"must be at most {_MAX_SOURCE_LENGTH} printable characters, got {_show(value)}"
        )
    return source


def _integer(path: _Path, value: object, high: int) -> int:
    # bool is an int in Python, but `memory = true` is a mistake, not 1 MB.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise _Invalid(path, f"must be an integer from 1 to {high}, got {_show(value)}")
    return value


def _config(path: _Path, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"must be a table of strings, got {_show(value)}")
    config = {_string(path, key): _string((*path, key), item) for key, item in value.items()}
    for key, item in config.items():
        # Config becomes the function's environment: nothing that steers its interpreter.
        problem = unsafe_config_key(key, item)
        if problem is not None:
            raise _Invalid((*path, key), problem)
    return config


def _annotations(path: _Path, value: object) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"must be a table, got {_show(value)}")
    if len(value) > _MAX_ANNOTATION_KEYS:
        raise _Invalid(path, f"must have at most {_MAX_ANNOTATION_KEYS} keys, got {len(value)}")
    annotations: dict[str, object] = {}
    for key, item in value.items():
        here = (*path, _string(path, key))
        if not _ANNOTATION_KEY.fullmatch(key) or len(key) > _MAX_ANNOTATION_KEY_BYTES:
            raise _Invalid(
                here,
                f"keys must be 1 to {_MAX_ANNOTATION_KEY_BYTES} printable ASCII characters "
                "without spaces",
            )
        try:
            encoded = json.dumps(
                item,
                default=_iso_format,
                allow_nan=False,
                ensure_ascii=False,
                separators=(",", ":"),
            )
        except (TypeError, ValueError):
            raise _Invalid(here, f"must be a JSON value, got {_show(item)}") from None
        if encoded == '""':
            raise _Invalid(here, "must not be empty")
        size = len(encoded.encode())
        if size > _MAX_ANNOTATION_VALUE_BYTES:
            raise _Invalid(
                here, f"must be at most {_MAX_ANNOTATION_VALUE_BYTES} bytes as JSON, got {size}"
            )
        # A decoded copy is pure JSON data and shares nothing with the caller's objects.
        annotations[key] = json.loads(encoded)
    return annotations


def _iso_format(value: object) -> str:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _syslog_url(path: _Path, value: object) -> str:
    url = _string(path, value).strip()
    if url:
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            scheme = ""
        if scheme not in _SYSLOG_SCHEMES:
            raise _Invalid(path, f"must be a {', '.join(_SYSLOG_SCHEMES)} URL, got {_show(value)}")
    return str(value)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _format(path: _Path) -> str | None:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            text += f".{key}" if text else key
    return text or None
