"""The public API is pinned: names outside code imports must not vanish or drift."""

from __future__ import annotations

from types import GenericAlias

import runnerpool
from runnerpool import cli, fdk, lb, metrics, placers, rpc, runner, testing, tracing

PINNED = {
    "APIError",
    "AsyncResource",
    "BackoffMode",
    "BasePlacer",
    "BoundedLoadPlacer",
    "BufferedCall",
    "BufferedResponse",
    "CHPlacer",
    "Call",
    "CallTimeoutError",
    "FuncError",
    "FunctionFailedError",
    "GrpcRunner",
    "Keepalive",
    "LeastLoadedPlacer",
    "LogWriter",
    "NaivePlacer",
    "NoRunnerReachableError",
    "NotPlacedError",
    "OutlierPolicy",
    "PartialRunnersError",
    "Placer",
    "PlacerConfig",
    "PlacerRuntime",
    "PlacerTracker",
    "RendezvousPlacer",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "ResponseWriter",
    "Runner",
    "RunnerBusyError",
    "RunnerCall",
    "RunnerClosedError",
    "RunnerConnectionError",
    "RunnerPool",
    "RunnerPoolError",
    "RunnerProtocolError",
    "RunnerStatus",
    "RunnerUnavailableError",
    "ServerBusyError",
    "StaticRunnerPool",
    "WarmBoundedPlacer",
    "__version__",
    "client_tls",
    "create_placer",
    "server_tls",
}


def ruff_sorted(names: list[str]) -> list[str]:
    """Sort names as ruff's RUF022 does: SCREAMING_CASE constants first, then by code point."""
    return sorted(names, key=lambda name: (not name.isupper(), name))


class TestExports:
    def test_all_is_pinned_and_sorted(self) -> None:
        """runnerpool.__all__ is exactly the pinned names, sorted."""
        assert set(runnerpool.__all__) == PINNED
        assert runnerpool.__all__ == sorted(runnerpool.__all__)

    def test_packages_export_sorted_names(self) -> None:
        """The packages' names are sorted as ruff sorts them: constants first, then sorted."""
        for module in (fdk, runner, lb, placers, tracing):
            assert module.__all__ == ruff_sorted(module.__all__), module.__name__
        assert {"FdkExecutor", "Bundles", "Environments", "slot_key", "LogBook"} <= set(fdk.__all__)
        assert {"Admission", "Capacity", "Executor", "InProcessExecutor"} <= set(runner.__all__)

    def test_entry_points_are_public(self) -> None:
        """serve_lb, the LB app factory, its workers, the function registry and the settings."""
        assert {"LBSettings", "Registry", "create_app", "serve_lb"} <= set(lb.__all__)
        assert {"WorkerContext", "default_workers", "run_workers"} <= set(lb.__all__)
        assert {"RunnerSettings", "serve_runner"} <= set(runner.__all__)
        assert {"create_placer", "placer_names", "register_placer"} <= set(placers.__all__)
        assert cli.__all__ == ["main"]
        assert {"enable_tracing", "disable_tracing", "tracer_provider_from_environment"} <= set(
            tracing.__all__
        )

    def test_cli_imports_no_private_name_of_another_package(self) -> None:
        """The CLI reaches the library through public names only (its own modules aside)."""
        import ast
        from pathlib import Path

        for path in Path(cli.__file__).parent.glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 2:
                    module = node.module or ""
                    # The CLI's own helpers at the top (_dev, _logging, _logs_command) are
                    # the CLI's; any subpackage is reached through its __init__.
                    assert "." not in module, f"{path.name} imports {module}"
                    names = [alias.name for alias in node.names]
                    assert not [n for n in names if n.startswith("_")], (path.name, names)

    def test_every_name_resolves_and_is_documented(self) -> None:
        """Every public name of every public module exists and has a docstring."""
        for module in (runnerpool, metrics, testing, runner, fdk, lb, placers, tracing, rpc):
            for name in module.__all__:
                obj = getattr(module, name)
                # Type aliases (ConfigureHook = Callable[...], BackoffMode = Literal[...])
                # are documented where defined.
                alias = isinstance(obj, GenericAlias) or type(obj).__module__ == "typing"
                if name != "__version__" and callable(obj) and not alias:
                    assert obj.__doc__, f"{module.__name__}.{name} has no docstring"

    def test_fakes_are_public(self) -> None:
        """The fakes users test with are in runnerpool.testing."""
        assert {"FakeCall", "FakeDetachedPlacer", "FakeRunner", "FakeRunnerPool"} <= set(
            testing.__all__
        )
        # Test fakes are in runnerpool.testing only, not in the API a load balancer uses.
        assert "FakeDetachedPlacer" not in runnerpool.__all__
        assert "FakeDetachedPlacer" not in placers.__all__
        assert "register_placer_views" in metrics.__all__
