"""Functions from bundles: func.yaml's fields, Fn's defaults, located errors, discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from runnerpool.lb._bundle_registry import DEV_APP, bundle_directories, registry_from_bundles
from runnerpool.lb._func_yaml import bundle_function
from runnerpool.lb._registry import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MEMORY,
    DEFAULT_TIMEOUT,
    App,
    ConfigError,
)

APP = App(id="dev", name="dev")

#: A func.yaml as Fn's CLI writes it, with every field runnerpool reads.
FULL = """\
schema_version: 20180708
name: greeter
version: 0.0.3
runtime: python
build_image: fnproject/python:3.11-dev
run_image: fnproject/python:3.11
entrypoint: /python/bin/fdk /function/func.py handler
memory: 256
timeout: 60
idle_timeout: 120
config:
  GREETING: hi
  PORT: 8080
  DEBUG: true
annotations:
  com.example/owner: team-a
triggers:
- name: greeter
  type: http
  source: /greeter
"""


def bundle(root: Path, name: str, func_yaml: str | None = None) -> Path:
    """Write a bundle with a func.py, and a func.yaml if given; return its directory."""
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "func.py").write_text("def handler(ctx, data=None):\n    return 'hi'\n")
    if func_yaml is not None:
        (directory / "func.yaml").write_text(func_yaml)
    return directory


class TestBundleFunction:
    def test_every_field_is_read(self, tmp_path: Path) -> None:
        """name, memory, timeout, idle_timeout, config and annotations come from func.yaml."""
        function = bundle_function(bundle(tmp_path, "g", FULL), image="g", app=APP)
        assert (function.id, function.name, function.image) == ("greeter", "greeter", "g")
        assert (function.memory, function.timeout, function.idle_timeout) == (256, 60, 120)
        # As Fn's CLI reads them: config values are the text written.
        assert dict(function.config) == {"GREETING": "hi", "PORT": "8080", "DEBUG": "true"}
        assert dict(function.annotations) == {"com.example/owner": "team-a"}
        assert function.app is APP

    def test_without_func_yaml_fn_defaults_and_the_folder_name(self, tmp_path: Path) -> None:
        """A bundle with only func.py is named after its folder, with Fn's limits."""
        function = bundle_function(bundle(tmp_path, "plain"), image="plain", app=APP)
        assert (function.id, function.name) == ("plain", "plain")
        assert (function.memory, function.timeout, function.idle_timeout) == (
            DEFAULT_MEMORY,
            DEFAULT_TIMEOUT,
            DEFAULT_IDLE_TIMEOUT,
        )
        assert dict(function.config) == {}

    def test_an_empty_func_yaml_gives_the_defaults(self, tmp_path: Path) -> None:
        """An empty func.yaml is a function with the folder's name and Fn's defaults."""
        function = bundle_function(bundle(tmp_path, "empty", ""), image="empty", app=APP)
        assert (function.id, function.memory) == ("empty", DEFAULT_MEMORY)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                "name: x\nmemory: big\n",
                ":2: memory: must be an integer from 1 to 8192, got 'big'",
            ),
            ("name: x\n\ntimeout: 301\n", ":3: timeout: must be an integer from 1 to 300, got 301"),
            ("idle_timeout: 0\n", ":1: idle_timeout: must be an integer from 1 to 3600, got 0"),
            ("memroy: 64\n", ":1: memroy: unknown key (fields used: name, memory, timeout,"),
            ("name: has space\n", ":1: name: must be 1 to 255 characters from A-Z a-z 0-9"),
            ("name: x\nconfig:\n  A: [1, 2]\n", ":3: config.A: must be a string"),
            ("config: nope\n", ":1: config: must be a table of strings, got 'nope'"),
            ("- a\n- b\n", ":1: must be a mapping of fields"),
            ("name: [unclosed\n", ": not valid YAML:"),
        ],
    )
    def test_invalid_func_yaml_names_file_line_and_field(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        """Each invalid func.yaml raises ConfigError naming the file, the line and the field."""
        directory = bundle(tmp_path, "bad", text)
        with pytest.raises(ConfigError) as caught:
            bundle_function(directory, image="bad", app=APP)
        assert str(caught.value).startswith(str(directory / "func.yaml"))
        assert message in str(caught.value)

    def test_an_invalid_folder_name_says_to_set_name(self, tmp_path: Path) -> None:
        """A folder whose name is not a valid function name points at func.yaml's name."""
        directory = bundle(tmp_path, "my fn")
        with pytest.raises(ConfigError, match=r"set `name:` in func.yaml"):
            bundle_function(directory, image="my fn", app=APP)


class TestRegistryFromBundles:
    def test_one_function_per_bundle_folder_in_app_dev(self, tmp_path: Path) -> None:
        """Each folder with func.py or func.yaml is a function of the app 'dev'; others are not."""
        bundle(tmp_path, "b-second")
        bundle(tmp_path, "a-first", "name: first\nmemory: 64\n")
        yaml_only = tmp_path / "yaml-only"
        yaml_only.mkdir()
        (yaml_only / "func.yaml").write_text("entrypoint: /python/bin/fdk main.py greet\n")
        (tmp_path / "notes").mkdir()
        (tmp_path / "__pycache__").mkdir()
        bundle(tmp_path, ".hidden")
        (tmp_path / "README.md").write_text("not a bundle")
        registry = registry_from_bundles(tmp_path)
        assert [(fn.id, fn.image, fn.memory) for fn in registry.functions] == [
            ("first", "a-first", 64),
            ("b-second", "b-second", DEFAULT_MEMORY),
            ("yaml-only", "yaml-only", DEFAULT_MEMORY),
        ]
        assert [app.name for app in registry.apps] == [DEV_APP]
        assert registry.function("first") is registry.functions[0]
        assert bundle_directories(tmp_path) == [
            tmp_path / "a-first",
            tmp_path / "b-second",
            yaml_only,
        ]

    def test_an_empty_directory_has_no_functions(self, tmp_path: Path) -> None:
        """A directory without bundles gives an empty registry (bundles may be added later)."""
        assert len(registry_from_bundles(tmp_path)) == 0

    def test_two_bundles_with_one_name_are_an_error(self, tmp_path: Path) -> None:
        """Two func.yaml with the same name: the error names the second file and the first."""
        first = bundle(tmp_path, "one", "name: same\n")
        bundle(tmp_path, "two", "name: same\n")
        with pytest.raises(ConfigError) as caught:
            registry_from_bundles(tmp_path)
        assert str(caught.value) == (
            f"{tmp_path / 'two' / 'func.yaml'}: name: duplicate function name 'same' "
            f"(also the bundle {first})"
        )

    def test_a_missing_directory_is_an_error(self, tmp_path: Path) -> None:
        """A bundles directory that does not exist raises ConfigError naming it."""
        with pytest.raises(ConfigError, match="not a directory of function bundles"):
            registry_from_bundles(tmp_path / "missing")
