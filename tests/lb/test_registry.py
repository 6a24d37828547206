"""The load balancer's function registry: TOML format, defaults, validation, error lines."""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
from pathlib import Path

import pytest

from runnerpool.examples import FUNCTIONS
from runnerpool.lb._registry import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MEMORY,
    DEFAULT_TIMEOUT,
    App,
    ConfigError,
    Function,
    Registry,
)

FULL = """\
# Two apps and three functions, every key given.
[[apps]]
name = "myapp"
id = "app-01"
config = { GREETING = "hi" }
annotations = { "com.example/owner" = "team-a", limits = { cpu = 2, tags = ["a", "b"] } }
syslog_url = "tcp://logs.example.com:514"

[[apps]]
name = "other"

[[functions]]
id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
name = "hello"
app = "myapp"
image = "hello"
memory = 256
timeout = 60
idle_timeout = 120
config = { NAME = "Ada" }
annotations = { enabled = true, ratio = 0.5, since = 2024-05-01T12:00:00Z }

[[functions]]
id = "fn-2"
name = "hello"  # the same name in another app
app = "other"
image = "echo"

[functions.config]
A = "1"
"B.C" = "2"
"""

APP = ("[[apps]]", 'name = "a"')
FN = ("[[functions]]", 'id = "f"', 'name = "f"', 'app = "a"', 'image = "i"')
FN2 = ("[[functions]]", 'id = "g"', 'name = "g"', 'app = "a"', 'image = "i"')


def doc(*lines: str) -> str:
    return "\n".join(lines) + "\n"


class TestFromToml:
    def test_full_file(self) -> None:
        """Every key of a full file ends up in the apps and functions, in file order."""
        registry = Registry.from_toml(FULL)
        myapp, other = registry.apps
        assert myapp == App(
            id="app-01",
            name="myapp",
            config={"GREETING": "hi"},
            annotations={
                "com.example/owner": "team-a",
                "limits": {"cpu": 2, "tags": ["a", "b"]},
            },
            syslog_url="tcp://logs.example.com:514",
        )
        assert other == App(id="other", name="other")
        hello, second = registry.functions
        assert hello == Function(
            id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
            name="hello",
            app=myapp,
            image="hello",
            memory=256,
            timeout=60,
            idle_timeout=120,
            config={"NAME": "Ada"},
            annotations={"enabled": True, "ratio": 0.5, "since": "2024-05-01T12:00:00+00:00"},
        )
        assert second.app is other
        assert dict(second.config) == {"A": "1", "B.C": "2"}
        assert len(registry) == 2

    def test_lookup_by_id(self) -> None:
        """function() finds a function by its id and gives None for an unknown id."""
        registry = Registry.from_toml(FULL)
        assert registry.function("fn-2") is registry.functions[1]
        assert registry.function("hello") is None

    def test_defaults(self) -> None:
        """Omitted keys take Fn's defaults: app id = name, 128 MB, 30 s, 30 s, empty maps."""
        registry = Registry.from_toml(doc(*APP, *FN))
        (app,) = registry.apps
        (function,) = registry.functions
        assert (app.id, app.config, app.annotations, app.syslog_url) == ("a", {}, {}, "")
        assert (function.memory, function.timeout, function.idle_timeout) == (128, 30, 30)
        assert (DEFAULT_MEMORY, DEFAULT_TIMEOUT, DEFAULT_IDLE_TIMEOUT) == (128, 30, 30)
        assert (function.config, function.annotations) == ({}, {})

    def test_limits_are_inclusive(self) -> None:
        """The largest values Fn allows are accepted, and so is 1."""
        text = doc(*APP, *FN, "memory = 8192", "timeout = 300", "idle_timeout = 3600")
        (function,) = Registry.from_toml(text).functions
        assert (function.memory, function.timeout, function.idle_timeout) == (8192, 300, 3600)
        text = doc(*APP, *FN, "memory = 1", "timeout = 1", "idle_timeout = 1")
        (function,) = Registry.from_toml(text).functions
        assert (function.memory, function.timeout, function.idle_timeout) == (1, 1, 1)

    def test_crlf_lines(self) -> None:
        """Windows line endings are read, and lines are still counted right."""
        text = doc(*APP, *FN, "memory = 0").replace("\n", "\r\n")
        with pytest.raises(ConfigError) as info:
            Registry.from_toml(text)
        assert info.value.line == 8


INVALID = [
    pytest.param(doc('title = "x"', *APP, *FN), 1, "title", "unknown key", id="top-key"),
    pytest.param(doc(*APP, 'nmae = "b"', *FN), 3, "apps[0].nmae", "unknown key", id="app-key"),
    pytest.param(
        doc(*APP, *FN, "memroy = 1"),
        8,
        "functions[0].memroy",
        "unknown key (expected one of: id, name, app, image, memory, timeout, idle_timeout, "
        "config, annotations)",
        id="function-key",
    ),
    pytest.param(
        doc(*APP, *FN, "", "# the second one", *FN2, "  timout = 3  # typo"),
        15,
        "functions[1].timout",
        "unknown key",
        id="second-function-key",
    ),
    pytest.param(doc("[[apps]]", 'id = "x"', *FN), 1, "apps[0].name", "is required", id="no-name"),
    pytest.param(
        doc(*APP, "[[functions]]", 'id = "f"', 'name = "f"', 'app = "a"'),
        3,
        "functions[0].image",
        "is required",
        id="no-image",
    ),
    pytest.param(
        doc(*APP, *FN, *FN2[:-1]),
        8,
        "functions[1].image",
        "is required",
        id="no-image-second",
    ),
    pytest.param(
        doc(*APP, *FN, 'memory = "big"'),
        8,
        "functions[0].memory",
        "must be an integer from 1 to 8192, got 'big'",
        id="memory-str",
    ),
    pytest.param(
        doc(*APP, *FN, "memory = true"),
        8,
        "functions[0].memory",
        "must be an integer from 1 to 8192, got True",
        id="memory-bool",
    ),
    pytest.param(
        doc(*APP, *FN, "memory = 128.0"),
        8,
        "functions[0].memory",
        "must be an integer from 1 to 8192, got 128.0",
        id="memory-float",
    ),
    pytest.param(doc(*APP, *FN, "memory = 0"), 8, "functions[0].memory", "got 0", id="memory-0"),
    pytest.param(
        doc(*APP, *FN, "memory = 8193"), 8, "functions[0].memory", "got 8193", id="memory-max"
    ),
    pytest.param(
        doc(*APP, *FN, "timeout = 0"),
        8,
        "functions[0].timeout",
        "must be an integer from 1 to 300, got 0",
        id="timeout-0",
    ),
    pytest.param(
        doc(*APP, *FN, "timeout = 301"), 8, "functions[0].timeout", "got 301", id="timeout-max"
    ),
    pytest.param(
        doc(*APP, *FN, "idle_timeout = 3601"),
        8,
        "functions[0].idle_timeout",
        "must be an integer from 1 to 3600, got 3601",
        id="idle-timeout-max",
    ),
    pytest.param(
        doc(*APP, *FN, "idle_timeout = -1"),
        8,
        "functions[0].idle_timeout",
        "got -1",
        id="idle-timeout-negative",
    ),
    pytest.param(
        doc(*APP, "[[functions]]", 'id = "f"', 'name = "a b"', 'app = "a"', 'image = "i"'),
        5,
        "functions[0].name",
        "must be 1 to 255 characters from A-Z a-z 0-9 - _ . ~, got 'a b'",
        id="name-space",
    ),
    pytest.param(
        doc(*APP, "[[functions]]", 'id = "f"', 'name = ""', 'app = "a"', 'image = "i"'),
        5,
        "functions[0].name",
        "got ''",
        id="name-empty",
    ),
    pytest.param(
        doc(*APP, "[[functions]]", 'id = "f"', f'name = "{"n" * 256}"', 'app = "a"', 'image = "i"'),
        5,
        "functions[0].name",
        "must be 1 to 255 characters",
        id="name-long",
    ),
    pytest.param(
        doc(*APP, "[[functions]]", "id = 7", 'name = "f"', 'app = "a"', 'image = "i"'),
        4,
        "functions[0].id",
        "must be a string, got 7",
        id="id-int",
    ),
    pytest.param(
        doc(*APP, "[[functions]]", 'id = "a/b"', 'name = "f"', 'app = "a"', 'image = "i"'),
        4,
        "functions[0].id",
        "got 'a/b'",
        id="id-slash",
    ),
    pytest.param(
        doc(*APP, "[[functions]]", 'id = "f"', 'name = "f"', 'app = "a"', 'image = ""'),
        7,
        "functions[0].image",
        "must not be empty",
        id="image-empty",
    ),
    pytest.param(
        doc("[[apps]]", 'name = "my/app"', *FN), 2, "apps[0].name", "got 'my/app'", id="app-name"
    ),
    pytest.param(
        doc(*APP, "[[functions]]", 'id = "f"', 'name = "f"', 'app = "nope"', 'image = "i"'),
        6,
        "functions[0].app",
        "unknown app 'nope' (apps: 'a')",
        id="unknown-app",
    ),
    pytest.param(
        doc(*FN),
        4,
        "functions[0].app",
        "unknown app 'a' (apps: none)",
        id="no-apps",
    ),
    pytest.param(
        doc(*APP, *FN, 'config = { A = "x", B = 1 }'),
        8,
        "functions[0].config.B",
        "must be a string, got 1",
        id="config-value",
    ),
    pytest.param(
        doc(*APP, *FN, "", "[functions.config]", 'A = "x"', "B = 2"),
        11,
        "functions[0].config.B",
        "must be a string, got 2",
        id="config-subtable",
    ),
    pytest.param(
        doc(*APP, *FN, "config.'B' = false"),
        8,
        "functions[0].config.B",
        "must be a string, got False",
        id="config-dotted",
    ),
    pytest.param(
        doc(*APP, *FN, 'config = "A=x"'),
        8,
        "functions[0].config",
        "must be a table of strings, got 'A=x'",
        id="config-str",
    ),
    pytest.param(
        doc(*APP, "config = { N = 1 }", *FN),
        3,
        "apps[0].config.N",
        "must be a string, got 1",
        id="app-config",
    ),
    pytest.param(
        doc(*APP, 'syslog_url = "http://logs:514"', *FN),
        3,
        "apps[0].syslog_url",
        "must be a udp, tcp, unix, unixgram, tcp+tls URL, got 'http://logs:514'",
        id="syslog-scheme",
    ),
    pytest.param(
        doc(*APP, *FN, 'annotations = { "bad key" = "x" }'),
        8,
        'functions[0].annotations."bad key"',
        "keys must be 1 to 128 printable ASCII characters without spaces",
        id="annotation-key",
    ),
    pytest.param(
        doc(*APP, *FN, 'annotations = { "café" = "x" }'),
        8,
        'functions[0].annotations."café"',
        "printable ASCII",
        id="annotation-key-unicode",
    ),
    pytest.param(
        doc(*APP, *FN, "", '[ functions . "annotations" ]  # spaced', "ok = 1", "empty = ''"),
        11,
        "functions[0].annotations.empty",
        "must not be empty",
        id="spaced-quoted-header",
    ),
    pytest.param(
        doc(*APP, *FN, 'annotations."com.example/owner" = ""'),
        8,
        'functions[0].annotations."com.example/owner"',
        "must not be empty",
        id="annotation-empty",
    ),
    pytest.param(
        doc(*APP, *FN, "[functions.annotations]", f'big = "{"x" * 511}"'),
        9,
        "functions[0].annotations.big",
        "must be at most 512 bytes as JSON, got 513",
        id="annotation-size",
    ),
    pytest.param(
        doc(*APP, *FN, "annotations = { x = nan }"),
        8,
        "functions[0].annotations.x",
        "must be a JSON value, got nan",
        id="annotation-nan",
    ),
    pytest.param(
        doc(*APP, *FN, "annotations = 1"),
        8,
        "functions[0].annotations",
        "must be a table, got 1",
        id="annotations-int",
    ),
    pytest.param(
        doc(*APP, *FN, *FN),
        9,
        "functions[1].id",
        "duplicate function id 'f' (also functions[0])",
        id="duplicate-fn-id",
    ),
    pytest.param(
        doc(
            *APP,
            *FN,
            "[[functions]]",
            'id = "g"',
            "# same name",
            'name = "f"',
            'app = "a"',
            'image = "i"',
        ),
        11,
        "functions[1].name",
        "duplicate function name 'f' in app 'a' (also functions[0])",
        id="duplicate-fn-name",
    ),
    pytest.param(
        doc(*APP, *APP, *FN),
        4,
        "apps[1].name",
        "duplicate app name 'a' (also apps[0])",
        id="duplicate-app-name",
    ),
    pytest.param(
        doc("[[apps]]", 'name = "a"', 'id = "x"', "[[apps]]", 'name = "b"', 'id = "x"', *FN),
        6,
        "apps[1].id",
        "duplicate app id 'x' (also apps[0])",
        id="duplicate-app-id",
    ),
    pytest.param(
        doc("[[apps]]", 'name = "a"', 'id = "b"', "[[apps]]", 'name = "b"', *FN),
        4,
        "apps[1].id",
        "duplicate app id 'b' (also apps[0])",
        id="duplicate-default-app-id",
    ),
    pytest.param(doc("apps = 3", *FN), 1, "apps", "must be an array of tables", id="apps-int"),
    pytest.param(
        doc("functions = [1]", *APP),
        1,
        "functions[0]",
        "must be a table, got 1",
        id="function-not-table",
    ),
    pytest.param(
        doc(
            "functions = [",
            '  { id = "f", name = "f", app = "a", image = "i" },',
            '  { id = "g", name = "g", app = "a", image = "i", memory = 0 },',
            "]",
            *APP,
        ),
        1,
        "functions[1].memory",
        "got 0",
        id="inline-array-of-tables",
    ),
    pytest.param(
        # Line-ending backslashes: the string spans lines but holds no newline (images may not).
        doc(*APP, *FN[:-1], 'image = """\\', "[[functions]]\\", 'memory = 1"""', "memory = 0"),
        10,
        "functions[0].memory",
        "got 0",
        id="multi-line-string",
    ),
    pytest.param(
        doc(*APP, *FN, "annotations.tags = [", '  "a]", # ] [', "  '''b''',", "]", "memory = 0"),
        12,
        "functions[0].memory",
        "got 0",
        id="multi-line-array",
    ),
    pytest.param("", None, "functions", "no functions defined", id="empty"),
    pytest.param(doc("# nothing", *APP), None, "functions", "no functions defined", id="no-fns"),
    pytest.param(
        doc("functions = []", *APP), 1, "functions", "no functions defined", id="empty-fns"
    ),
]


class TestValidation:
    @pytest.mark.parametrize(("text", "line", "field", "problem"), INVALID)
    def test_error_names_line_and_field(
        self, text: str, line: int | None, field: str, problem: str
    ) -> None:
        """Each invalid file raises ConfigError at the offending key's line, naming the field."""
        with pytest.raises(ConfigError) as info:
            Registry.from_toml(text, source="fns.toml")
        error = info.value
        assert (error.source, error.line, error.field) == ("fns.toml", line, field)
        where = "fns.toml" if line is None else f"fns.toml:{line}"
        assert str(error).startswith(f"{where}: {field}: ")
        assert problem in error.problem

    def test_message_format(self) -> None:
        """The message reads "<source>:<line>: <path>: <problem>", as documented."""
        text = doc(*APP, *FN, *FN2, "", 'memory = "big"')
        with pytest.raises(ConfigError, match=r"^fns.toml:14: functions\[1\]\.memory: ") as info:
            Registry.from_toml(text, source="fns.toml")
        assert str(info.value) == (
            "fns.toml:14: functions[1].memory: must be an integer from 1 to 8192, got 'big'"
        )
        assert isinstance(info.value, ValueError)

    def test_too_many_annotations(self) -> None:
        """More than Fn's 100 annotation keys is an error."""
        keys = ", ".join(f"k{n} = 1" for n in range(101))
        with pytest.raises(ConfigError, match="at most 100 keys, got 101") as info:
            Registry.from_toml(doc(*APP, *FN, f"annotations = {{ {keys} }}"))
        assert (info.value.line, info.value.field) == (8, "functions[0].annotations")

    @pytest.mark.parametrize(
        ("text", "line"),
        [
            pytest.param(doc(*APP, "name = "), 3, id="invalid-value"),
            pytest.param(doc(*APP, 'name = "b"', *FN), 3, id="duplicate-key"),
            pytest.param(doc(*APP, "[[functions]"), 3, id="bad-header"),
            pytest.param("apps = [", 1, id="end-of-document"),
        ],
    )
    def test_toml_syntax_error_keeps_tomllib_line(self, text: str, line: int) -> None:
        """A TOML syntax error is reported at tomllib's line, with tomllib's message."""
        with pytest.raises(ConfigError) as info:
            Registry.from_toml(text, source="fns.toml")
        assert (info.value.line, info.value.field) == (line, None)
        assert str(info.value).startswith(f"fns.toml:{line}: ")


class TestModels:
    def test_invalid_field_raises(self) -> None:
        """Building a Function by hand validates it like the file does, without a line."""
        app = App(id="a", name="a")
        with pytest.raises(ConfigError) as info:
            Function(id="f", name="f", app=app, image="i", memory=0)
        assert (info.value.source, info.value.line, info.value.field) == (
            "Function",
            None,
            "memory",
        )
        assert str(info.value) == "Function: memory: must be an integer from 1 to 8192, got 0"

    def test_invalid_app_raises(self) -> None:
        """Building an App by hand checks its name and its config values."""
        with pytest.raises(ConfigError, match=r"^App: config\.N: must be a string, got 1$"):
            App(id="a", name="a", config={"N": 1})  # type: ignore[dict-item]

    def test_maps_are_read_only_copies(self) -> None:
        """The config and annotations are read-only copies of what was given."""
        config = {"A": "1"}
        annotations: dict[str, object] = {"tags": ["x"]}
        app = App(id="a", name="a", config=config, annotations=annotations)
        config["A"] = "2"
        annotations["tags"] = ["y"]
        assert (app.config, app.annotations) == ({"A": "1"}, {"tags": ["x"]})
        with pytest.raises(TypeError):
            app.config["A"] = "3"  # type: ignore[index]
        with pytest.raises(dataclasses.FrozenInstanceError):
            app.name = "b"  # type: ignore[misc]

    def test_hashable(self) -> None:
        """Equal apps and functions hash alike, so they can be dictionary keys."""
        app = App(id="a", name="a", config={"A": "1"})
        function = Function(id="f", name="f", app=app, image="i", annotations={"k": [1]})
        twin = Function(
            id="f",
            name="f",
            app=App(id="a", name="a", config={"A": "1"}),
            image="i",
            annotations={"k": [1]},
        )
        assert function == twin
        assert {function: 1}[twin] == 1


class TestRegistry:
    def test_rejects_duplicate_ids(self) -> None:
        """Two functions with one id are refused by the constructor too."""
        app = App(id="a", name="a")
        functions = [Function(id="f", name=name, app=app, image="i") for name in ("x", "y")]
        with pytest.raises(ConfigError) as info:
            Registry([app], functions)
        assert (
            str(info.value)
            == "Registry: functions[1].id: duplicate function id 'f' (also functions[0])"
        )

    def test_rejects_function_of_missing_app(self) -> None:
        """A function whose app is not among the apps is refused."""
        function = Function(id="f", name="f", app=App(id="a", name="a"), image="i")
        with pytest.raises(ConfigError, match="not among the registry's apps"):
            Registry([App(id="b", name="b")], [function])

    def test_sequences_and_len(self) -> None:
        """The apps and functions are tuples in the given order; len counts functions."""
        app = App(id="a", name="a")
        functions = [Function(id=name, name=name, app=app, image="i") for name in ("x", "y")]
        registry = Registry([app], functions)
        assert registry.apps == (app,)
        assert registry.functions == tuple(functions)
        assert len(registry) == 2
        assert registry.function("y") is functions[1]


class TestLoad:
    def test_load_file(self, tmp_path: Path) -> None:
        """A file loads, and its errors name its path."""
        path = tmp_path / "fns.toml"
        path.write_text(FULL, encoding="utf-8")
        assert len(Registry.load(path)) == 2
        path.write_text(doc(*APP, *FN, "memory = 0"), encoding="utf-8")
        with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:8: functions"):
            Registry.load(str(path))

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be read raises ConfigError naming the path and the OS error."""
        path = tmp_path / "missing.toml"
        with pytest.raises(ConfigError) as info:
            Registry.load(path)
        assert str(info.value) == f"{path}: cannot read: No such file or directory"
        assert (info.value.source, info.value.line, info.value.field) == (str(path), None, None)
        assert isinstance(info.value.__cause__, FileNotFoundError)

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 raises ConfigError."""
        path = tmp_path / "latin1.toml"
        path.write_bytes(b'title = "caf\xe9"\n')
        with pytest.raises(ConfigError, match="not UTF-8"):
            Registry.load(path)

    def test_examples_file(self) -> None:
        """The shipped examples.toml loads and serves each example image under its own id."""
        registry = Registry.load(importlib.resources.files("runnerpool") / "examples.toml")
        assert [app.name for app in registry.apps] == ["examples"]
        assert {fn.id: fn.image for fn in registry.functions} == {
            "echo": "echo",
            "hello": "hello",
            "slow": "slow",
            "fail": "fail",
            "hungry": "hungry",
        }
        # Each image is an FDK function bundle of examples/, which `runnerpool dev` serves.
        examples = Path(__file__).parents[2] / "examples"
        assert all((examples / fn.image / "func.py").is_file() for fn in registry.functions)
        assert {fn.image for fn in registry.functions} == set(FUNCTIONS)
