"""A test Fn API node: the reads Fn's LB node makes, answered as the real API node answers them.

An ASGI application served by uvicorn on 127.0.0.1 (port 0) in a thread of its own, so that
load balancer processes and in-process sources alike can read it. It serves the objects of
``tests/data/fn-api-recorded.json`` (and any added), as recorded from Fn v0.3.753: the
``fnproject.io/fn/invokeEndpoint`` annotation added to every fn from the request's ``Host``,
``triggerBySource`` stripping exactly one ``/`` from its wildcard (so Fn's double slash finds
``/hello``, a single slash does not), ``?name=`` an exact match, Fn's error bodies.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn

RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "fn-api-recorded.json").read_text()
)
APP: dict[str, Any] = RECORDED["app"]
BARE_APP: dict[str, Any] = RECORDED["bare_app"]
FN: dict[str, Any] = RECORDED["fn"]
TRIGGER: dict[str, Any] = RECORDED["trigger"]
INVOKE_ENDPOINT = "fnproject.io/fn/invokeEndpoint"
JSON = b"application/json; charset=utf-8"

Scope = dict[str, Any]


class FnApi:
    """A test Fn API node in a thread: start, stop (unreachable), start again on its port.

    Attributes:
        apps: App objects by id, as stored.
        fns: Fn objects by id, as stored (without the injected annotation).
        triggers: Trigger objects by id, as stored.
        requests: The raw request targets received (path and query, undecoded), in order.
        fail_with: When set, requests answer this status (``{"message": ...}``).
        failures: How many requests answer ``fail_with`` (``None``: every one).
        delay: Seconds every answer waits before it is sent.
    """

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.fns: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.fail_with: int | None = None
        self.failures: int | None = None
        self.delay = 0.0
        self.port = 0
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self.reset()

    def reset(self) -> None:
        """Hold the recorded objects only, forget the requests, answer at once; serve again."""
        self.apps.clear()
        self.fns.clear()
        self.triggers.clear()
        self.requests.clear()
        self.fail_with = self.failures = None
        self.delay = 0.0
        for app in (APP, BARE_APP):
            self.add_app(app)
        self.add_fn(FN)
        self.add_trigger(TRIGGER)
        if self.port and self._server is None:
            self.start()

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def add_app(self, app: dict[str, Any]) -> None:
        """Store an app."""
        self.apps[app["id"]] = copy.deepcopy(app)

    def add_fn(self, fn: dict[str, Any]) -> None:
        """Store a fn."""
        self.fns[fn["id"]] = copy.deepcopy(fn)

    def add_trigger(self, trigger: dict[str, Any]) -> None:
        """Store a trigger."""
        self.triggers[trigger["id"]] = copy.deepcopy(trigger)

    def count(self, prefix: str) -> int:
        """Return how many requests had a target starting with ``prefix``."""
        return sum(target.startswith(prefix) for target in self.requests)

    def start(self) -> None:
        """Serve (on the port of the last run, if any) and return once listening."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, log_config=None, access_log=False, lifespan="off", interface="asgi3"
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
        )
        self._thread.start()
        for _ in range(500):
            if server.started:
                return
            threading.Event().wait(0.01)
        raise RuntimeError("the test Fn API server did not start")

    def stop(self) -> None:
        """Stop serving and close the port: connections to it are refused."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    async def _app(
        self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        assert scope["type"] == "http"
        raw = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            raw += "?" + scope["query_string"].decode("latin-1")
        self.requests.append(raw)
        if self.delay:
            await asyncio.sleep(self.delay)
        status, body = self._answer(scope)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", JSON), (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> tuple[int, bytes]:
        method, path = scope["method"], scope["path"]
        if self.fail_with is not None and self.failures != 0:
            if self.failures is not None:
                self.failures -= 1
            return _error(self.fail_with, "internal server error")
        parts = path.split("/")
        if method != "GET":
            return _error(405, f"Method not allowed: {method} {path}")
        if path == "/v2/apps":
            names = parse_qs(scope["query_string"].decode()).get("name")
            items = [a for a in self.apps.values() if names is None or a["name"] == names[0]]
            return 200, _json({"items": items})
        if len(parts) == 4 and parts[:3] == ["", "v2", "apps"]:
            app = self.apps.get(parts[3])
            return (200, _json(app)) if app else _error(404, "App not found")
        if len(parts) == 4 and parts[:3] == ["", "v2", "fns"]:
            fn = self.fns.get(parts[3])
            if fn is None:
                return _error(404, "Fn not found")
            host = dict(scope["headers"]).get(b"host", b"").decode()
            shown = copy.deepcopy(fn)
            shown.setdefault("annotations", {})[INVOKE_ENDPOINT] = (
                f"http://{host}/invoke/{fn['id']}"
            )
            return 200, _json(shown)
        if (
            len(parts) >= 7
            and parts[:4] == ["", "v2", "runner", "apps"]
            and (parts[5] == "triggerBySource")
        ):
            app_id, trigger_type = parts[4], parts[6]
            # Gin's wildcard keeps its leading "/"; the API node strips exactly one.
            wildcard = "/" + "/".join(parts[7:])
            source = wildcard[1:]
            for trigger in self.triggers.values():
                if (trigger["app_id"], trigger["type"], trigger["source"]) == (
                    app_id,
                    trigger_type,
                    source,
                ):
                    return 200, _json(trigger)
            return _error(404, "Trigger not found")
        return _error(404, f"Path not found: {method} {path}")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, _json({"message": message})
