"""Triggers in the functions file, and the file source that serves them."""

from __future__ import annotations

import pytest

from runnerpool.lb._registry import App, ConfigError, Function, Registry, Trigger
from runnerpool.lb._sources import (
    AppNotFoundError,
    FileSource,
    FnNotFoundError,
    TriggerNotFoundError,
    as_source,
)

BASE = """\
[[apps]]
name = "myapp"
id = "app-1"

[[apps]]
name = "other"

[[functions]]
id = "fn-1"
name = "hello"
app = "myapp"
image = "hello"

[[functions]]
id = "fn-2"
name = "hello"
app = "other"
image = "echo"
"""

TRIGGER = """
[[triggers]]
name = "hello"
app = "myapp"
function = "hello"
source = "/hello"
"""


def registry(extra: str = TRIGGER) -> Registry:
    """A registry of BASE plus ``extra``."""
    return Registry.from_toml(BASE + extra, "fns.toml")


class TestFile:
    def test_trigger_read_with_defaults(self) -> None:
        """A trigger names its app and function by name; id and type have defaults."""
        (trigger,) = registry().triggers
        assert trigger == Trigger(
            id="myapp.hello", name="hello", app_id="app-1", fn_id="fn-1", source="/hello"
        )
        assert trigger.type == "http"

    def test_every_key(self) -> None:
        """Every key of a trigger is read."""
        text = """
[[triggers]]
name = "t"
id = "trig-01"
app = "other"
function = "hello"
source = "/a/b/c"
type = "http"
annotations = { "com.example/x" = 1 }
"""
        (trigger,) = registry(text).triggers
        assert (trigger.id, trigger.app_id, trigger.fn_id, trigger.source) == (
            "trig-01",
            "other",
            "fn-2",
            "/a/b/c",
        )
        assert dict(trigger.annotations) == {"com.example/x": 1}

    def test_lookups(self) -> None:
        """Apps by id and name, and triggers by app, type and source, are looked up."""
        found = registry()
        app = found.app_by_name("myapp")
        assert app is not None
        assert found.app("app-1") is app
        assert found.app("myapp") is None
        trigger = found.trigger("app-1", "http", "/hello")
        assert trigger is not None
        assert trigger.fn_id == "fn-1"
        assert found.trigger("app-1", "http", "/Hello") is None
        assert found.trigger("other", "http", "/hello") is None
        assert repr(found) == "<Registry: 2 apps, 2 functions, 1 triggers>"

    def test_no_triggers(self) -> None:
        """A file without triggers has none."""
        assert registry("").triggers == ()

    @pytest.mark.parametrize(
        ("extra", "line", "field", "problem"),
        [
            (TRIGGER.replace('"/hello"', '"hello"'), 24, "triggers[0].source", "start with '/'"),
            (TRIGGER.replace('source = "/hello"\n', ""), 20, "triggers[0].source", "is required"),
            (TRIGGER.replace('app = "myapp"', 'app = "nope"'), 22, "triggers[0].app", "unknown"),
            (
                TRIGGER.replace('function = "hello"', 'function = "fn-1"'),
                23,
                "triggers[0].function",
                "no function 'fn-1' in app 'myapp'",
            ),
            (TRIGGER + 'type = "cron"\n', 25, "triggers[0].type", 'must be "http"'),
            (TRIGGER + "colour = 1\n", 25, "triggers[0].colour", "unknown key"),
            (
                TRIGGER + TRIGGER.replace('name = "hello"', 'name = "other"'),
                30,
                "triggers[1].source",
                "duplicate trigger source '/hello'",
            ),
            (
                TRIGGER + TRIGGER.replace('"/hello"', '"/x"'),
                26,
                "triggers[1].id",
                "duplicate trigger id 'myapp.hello'",
            ),
        ],
    )
    def test_errors_name_line_and_field(
        self, extra: str, line: int, field: str, problem: str
    ) -> None:
        """A bad trigger is a ConfigError with its line and field."""
        with pytest.raises(ConfigError) as caught:
            registry(extra)
        assert (caught.value.line, caught.value.field) == (line, field)
        assert problem in caught.value.problem

    def test_duplicate_name_in_app(self) -> None:
        """Two triggers of one name in one app are refused, whatever their ids."""
        text = TRIGGER + TRIGGER.replace('"/hello"', '"/x"') + 'id = "other-id"\n'
        with pytest.raises(ConfigError, match="duplicate trigger name 'hello'"):
            registry(text)


class TestModel:
    def test_invalid_trigger(self) -> None:
        """A trigger built with a bad field raises, naming it."""
        with pytest.raises(ConfigError, match="source"):
            Trigger(id="t", name="t", app_id="a", fn_id="f", source="x")
        with pytest.raises(ConfigError, match="type"):
            Trigger(id="t", name="t", app_id="a", fn_id="f", source="/", type="cron")

    def test_registry_checks_trigger_function(self) -> None:
        """A registry refuses a trigger of an unknown function or of another app's function."""
        app, other = App(id="a", name="a"), App(id="b", name="b")
        function = Function(id="f", name="f", app=app, image="i")
        unknown = Trigger(id="t", name="t", app_id="a", fn_id="nope", source="/")
        with pytest.raises(ConfigError, match="not among"):
            Registry([app, other], [function], [unknown])
        foreign = Trigger(id="t", name="t", app_id="b", fn_id="f", source="/")
        with pytest.raises(ConfigError, match="not in the trigger's app"):
            Registry([app, other], [function], [foreign])


class TestFileSource:
    async def test_lookups(self) -> None:
        """The file source answers the four lookups, and Fn's not-found errors."""
        source = FileSource(registry())
        assert await source.app_id("myapp") == "app-1"
        assert (await source.app("app-1")).name == "myapp"
        assert (await source.trigger("app-1", "http", "/hello")).fn_id == "fn-1"
        assert (await source.function("fn-1")).image == "hello"
        for lookup, error in (
            (source.app_id("nope"), AppNotFoundError),
            (source.app("nope"), AppNotFoundError),
            (source.trigger("app-1", "http", "/nope"), TriggerNotFoundError),
            (source.function("nope"), FnNotFoundError),
        ):
            with pytest.raises(error):
                await lookup
        await source.aclose()

    async def test_registry_swap(self) -> None:
        """Replacing the source's registry is seen by the next lookup."""
        source = FileSource(registry(""))
        with pytest.raises(TriggerNotFoundError):
            await source.trigger("app-1", "http", "/hello")
        source.registry = registry()
        assert (await source.trigger("app-1", "http", "/hello")).id == "myapp.hello"

    def test_as_source(self) -> None:
        """A registry is wrapped in a file source; a source is kept as it is."""
        wrapped = as_source(registry())
        assert isinstance(wrapped, FileSource)
        assert as_source(wrapped) is wrapped
        assert repr(wrapped).startswith("<FileSource: <Registry")
