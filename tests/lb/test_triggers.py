"""HTTP triggers as Fn serves them: source, URL, request headers and response mapping."""

from __future__ import annotations

import json

import pytest

from runnerpool._errors import APIError
from runnerpool.lb._calls import build_model
from runnerpool.lb._registry import App, Function
from runnerpool.lb._triggers import (
    request_url,
    trigger_headers,
    trigger_response,
    trigger_source,
)
from tests.lb.fn_api import RECORDED

#: The request of the recorded trigger call, header by header as curl sent it.
RECORDED_REQUEST = [
    ("Host", "127.0.0.1:24082"),
    ("User-Agent", "curl/7.88.1"),
    ("Accept", "*/*"),
    ("Content-Type", "text/plain"),
    ("X-Dup", "d1"),
    ("X-Dup", "d2"),
    ("Connection", "keep-alive"),
    ("TE", "trailers"),
    ("Cookie", "c=1"),
    ("Authorization", "Bearer t"),
    ("Fn-Intent", "spoof"),
    ("Fn-Http-Status", "299"),
    ("Content-Length", "11"),
]
URL = "http://127.0.0.1:24082/t/myapp/hello?a=1&a=2"


def grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Group header pairs by name, as the call model holds them."""
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        result.setdefault(name, []).append(value)
    return result


class TestSource:
    @pytest.mark.parametrize(
        ("rest", "source"),
        [
            (None, "/"),
            ("", "/"),
            ("hello", "/hello"),
            ("hello/", "/hello/"),
            ("/hello", "//hello"),
            ("a/b/c", "/a/b/c"),
        ],
    )
    def test_source_is_the_path_after_the_app(self, rest: str | None, source: str) -> None:
        """``/t/app`` and ``/t/app/`` are source ``/``; the rest keeps its slashes as sent."""
        assert trigger_source(rest) == source


class TestRequestUrl:
    def test_raw_target_kept(self) -> None:
        """The URL is the Host header and the raw request target: escapes and query undecoded."""
        url = request_url("http", "example.org", b"/t/myapp/hel%6co", b"a=1&a=%32")
        assert url == "http://example.org/t/myapp/hel%6co?a=1&a=%32"

    def test_no_query(self) -> None:
        """Without a query, no ``?`` is added."""
        assert request_url("http", "h:1", b"/t/a", b"") == "http://h:1/t/a"


class TestRequestHeaders:
    def test_recorded_call(self) -> None:
        """The recorded request's headers become exactly the headers Fn's LB sent the runner."""
        rewritten = trigger_headers(RECORDED_REQUEST, method="POST", url=URL)
        assert grouped(rewritten) == RECORDED["trigger_call"]["headers"]

    def test_duplicates_kept_in_order(self) -> None:
        """A repeated header keeps every value in order, whatever the case of its name."""
        rewritten = trigger_headers(
            [("x-dup", "1"), ("X-DUP", "2"), ("X-Dup", "3")], method="GET", url="u"
        )
        assert grouped(rewritten)["Fn-Http-H-X-Dup"] == ["1", "2", "3"]

    def test_spoofed_fn_headers_are_prefixed(self) -> None:
        """A client's ``Fn-*`` headers are renamed, so they cannot pose as Fn's own."""
        rewritten = grouped(
            trigger_headers(
                [
                    ("fn-intent", "cloudevent"),
                    ("fn-http-method", "DELETE"),
                    ("fn-http-request-url", "http://evil/"),
                    ("fn-call-id", "forged"),
                    ("fn-invoke-type", "detached"),
                    ("fn-http-h-x", "pre-prefixed"),
                ],
                method="GET",
                url="http://lb/t/a",
            )
        )
        assert rewritten["Fn-Intent"] == ["httprequest"]
        assert rewritten["Fn-Http-Method"] == ["GET"]
        assert rewritten["Fn-Http-Request-Url"] == ["http://lb/t/a"]
        assert rewritten["Fn-Http-H-Fn-Intent"] == ["cloudevent"]
        assert rewritten["Fn-Http-H-Fn-Call-Id"] == ["forged"]
        assert rewritten["Fn-Http-H-Fn-Invoke-Type"] == ["detached"]
        assert rewritten["Fn-Http-H-Fn-Http-H-X"] == ["pre-prefixed"]
        assert "Fn-Call-Id" not in rewritten

    def test_hop_by_hop_removed(self) -> None:
        """Hop-by-hop headers and Host go; a header named in Connection stays, as in Fn."""
        rewritten = grouped(
            trigger_headers(
                [
                    ("host", "lb"),
                    ("connection", "close, x-listed"),
                    ("proxy-connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("proxy-authenticate", "Basic"),
                    ("proxy-authorization", "Basic Zm9v"),
                    ("trailer", "Expires"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "websocket"),
                    ("te", "gzip"),
                    ("x-listed", "kept"),
                ],
                method="GET",
                url="u",
            )
        )
        assert rewritten == {
            "Fn-Http-H-X-Listed": ["kept"],
            "Fn-Http-Method": ["GET"],
            "Fn-Http-Request-Url": ["u"],
            "Fn-Intent": ["httprequest"],
        }

    @pytest.mark.parametrize("te", ["trailers", "gzip, trailers", " TRAILERS ,x"])
    def test_te_trailers_survives(self, te: str) -> None:
        """A ``TE`` naming ``trailers`` reaches the function as ``trailers`` alone."""
        rewritten = grouped(trigger_headers([("te", te)], method="GET", url="u"))
        assert rewritten["Fn-Http-H-Te"] == ["trailers"]

    def test_content_type_unprefixed(self) -> None:
        """Content-Type alone keeps its name (all its values)."""
        rewritten = grouped(
            trigger_headers(
                [("content-type", "a/b"), ("content-type", "c/d")], method="PUT", url="u"
            )
        )
        assert rewritten["Content-Type"] == ["a/b", "c/d"]

    def test_recorded_call_model(self) -> None:
        """The model built from the recorded app, fn and request equals Fn's, field by field."""
        recorded = RECORDED["trigger_call"]
        app_data, fn_data = RECORDED["app"], RECORDED["fn"]
        app = App(
            id=app_data["id"],
            name=app_data["name"],
            config=app_data["config"],
            annotations=app_data["annotations"],
            syslog_url=app_data["syslog_url"],
        )
        annotations = {
            **fn_data["annotations"],
            "fnproject.io/fn/invokeEndpoint": recorded["annotations"][
                "fnproject.io/fn/invokeEndpoint"
            ],
        }
        function = Function(
            id=fn_data["id"],
            name=fn_data["name"],
            app=app,
            image=fn_data["image"],
            memory=fn_data["memory"],
            timeout=fn_data["timeout"],
            idle_timeout=fn_data["idle_timeout"],
            config=fn_data["config"],
            annotations=annotations,
        )
        model = build_model(
            function,
            call_id="01CALL",
            url=URL,
            method="POST",
            headers=trigger_headers(RECORDED_REQUEST, method="POST", url=URL),
            detached=False,
            app=app,
            trigger_id=RECORDED["trigger"]["id"],
        )
        for field in ("image", "memory", "timeout", "idle_timeout", "type", "app_id", "app_name"):
            assert getattr(model, field) == recorded[field], field
        for field in ("fn_id", "trigger_id", "method", "url", "syslog_url", "config", "headers"):
            assert getattr(model, field) == recorded[field], field
        assert {k: json.loads(v) for k, v in model.annotations.items()} == recorded["annotations"]


class TestResponse:
    @pytest.mark.parametrize(
        ("status", "headers", "expected_status", "expected_headers"),
        [
            # Fn-Http-Status gives the status below 400.
            (200, [("Fn-Http-Status", "418")], 418, []),
            (200, [("Fn-Http-Status", "202")], 202, []),
            (200, [("Fn-Http-Status", "302")], 302, []),
            (200, [("Fn-Http-Status", "500")], 500, []),
            (200, [("Fn-Http-Status", "+201")], 201, []),
            # Not a Go integer: 200.
            (200, [("Fn-Http-Status", "abc")], 200, []),
            (200, [("Fn-Http-Status", " 418")], 200, []),
            (200, [("Fn-Http-Status", "4_18")], 200, []),
            (200, [("Fn-Http-Status", "")], 200, []),
            # No Fn-Http-Status: 200, even when the runner said 201.
            (201, [], 200, []),
            (200, [], 200, []),
            # The runner's status wins from 400.
            (502, [("Fn-Http-Status", "200")], 502, []),
            (404, [("Fn-Http-Status", "201")], 404, []),
            (400, [], 400, []),
            # Headers: Fn-Http-H- unprefixed, Content-Type kept, the rest dropped.
            (
                200,
                [
                    ("Content-Type", "application/json"),
                    ("Fn-Http-H-X-Custom", "yes"),
                    ("Fn-Http-H-X-Multi", "m1"),
                    ("Fn-Http-H-X-Multi", "m2"),
                    ("fn-http-h-set-cookie", "a=1"),
                    ("Fn-Http-H-", "dropped: no name"),
                    ("Fn-Fdk-Version", "fdk-python/0.1.128"),
                    ("Fn-Fdk-Runtime", "python/3.11.7 final"),
                    ("X-Plain", "dropped"),
                    ("Content-Length", "12"),
                    ("Fn-Call-Id", "the runner's"),
                ],
                200,
                [
                    ("Content-Type", "application/json"),
                    ("X-Custom", "yes"),
                    ("X-Multi", "m1"),
                    ("X-Multi", "m2"),
                    ("set-cookie", "a=1"),
                ],
            ),
        ],
    )
    def test_mapping(
        self,
        status: int,
        headers: list[tuple[str, str]],
        expected_status: int,
        expected_headers: list[tuple[str, str]],
    ) -> None:
        """The answer's status and headers are Fn's mapping of the runner's."""
        assert trigger_response(status, headers) == (expected_status, expected_headers)

    @pytest.mark.parametrize("value", ["0", "99", "600", "1000", "-200", "199"])
    def test_unwritable_status_is_502(self, value: str) -> None:
        """A number outside 200..599 in Fn-Http-Status answers 502 naming it."""
        with pytest.raises(APIError) as caught:
            trigger_response(200, [("Fn-Http-Status", value)])
        assert caught.value.status_code == 502
        assert value in caught.value.message
