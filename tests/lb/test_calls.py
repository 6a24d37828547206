"""The call model the LB builds from an invoke request (spec 6.1)."""

from __future__ import annotations

from runnerpool.lb._calls import build_model, canonical_header
from runnerpool.lb._registry import App, Function


def function() -> Function:
    app = App(
        id="app1",
        name="myapp",
        config={"SHARED": "app", "APP_ONLY": "a"},
        annotations={"com.example/team": "a", "com.example/tier": 1},
    )
    return Function(
        id="fn1",
        name="hello",
        app=app,
        image="img:1",
        memory=256,
        timeout=45,
        idle_timeout=60,
        config={"SHARED": "fn"},
        annotations={"com.example/tier": {"level": 2}},
    )


class TestBuildModel:
    def test_as_fn_builds_it(self) -> None:
        """Config, annotations, limits, ids, URL and method follow Fn's FromHTTPFnRequest."""
        model = build_model(
            function(),
            call_id="01CALL",
            url="http://lb/invoke/fn1",
            method="POST",
            headers=[("content-type", "text/plain"), ("x-many", "1"), ("X-Many", "2")],
            detached=False,
        )
        assert model.config == {
            "SHARED": "fn",
            "APP_ONLY": "a",
            "FN_MEMORY": "256",
            "FN_TYPE": "sync",
            "FN_FN_ID": "fn1",
            "FN_APP_ID": "app1",
        }
        assert model.annotations == {"com.example/team": '"a"', "com.example/tier": '{"level":2}'}
        assert model.headers == {"Content-Type": ["text/plain"], "X-Many": ["1", "2"]}
        assert (model.id, model.image, model.type, model.url, model.method) == (
            "01CALL",
            "img:1",
            "sync",
            "http://lb/invoke/fn1",
            "POST",
        )
        assert (model.memory, model.timeout, model.idle_timeout) == (256, 45, 60)
        assert (model.app_id, model.app_name, model.fn_id) == ("app1", "myapp", "fn1")
        assert model.created_at is not None

    def test_detached(self) -> None:
        """A detached call's type is detached, but FN_TYPE stays sync, as in Fn."""
        model = build_model(
            function(), call_id="c", url="u", method="POST", headers=[], detached=True
        )
        assert (model.type, model.config["FN_TYPE"]) == ("detached", "sync")

    def test_canonical_header(self) -> None:
        """Header names are written as Go canonicalizes them."""
        assert canonical_header("content-type") == "Content-Type"
        assert canonical_header("FN-INVOKE-TYPE") == "Fn-Invoke-Type"
        assert canonical_header("x") == "X"
