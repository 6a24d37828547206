"""The public API is pinned: names outside code imports must not vanish or drift."""

from __future__ import annotations

from types import GenericAlias

import runnerpool
from runnerpool import fdk, metrics, runner, testing

PINNED = {
    "APIError",
    "AsyncResource",
    "BasePlacer",
    "BoundedLoadPlacer",
    "BufferedCall",
    "BufferedResponse",
    "CHPlacer",
    "Call",
    "CallTimeoutError",
    "FakeDetachedPlacer",
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


class TestExports:
    def test_all_is_pinned_and_sorted(self) -> None:
        """runnerpool.__all__ is exactly the pinned names, sorted."""
        assert set(runnerpool.__all__) == PINNED
        assert runnerpool.__all__ == sorted(runnerpool.__all__)

    def test_packages_export_sorted_names(self) -> None:
        """The runner and FDK packages pin their names too: sorted, each one defined."""
        assert fdk.__all__ == sorted(fdk.__all__)
        assert runner.__all__ == sorted(runner.__all__)
        assert {"FdkExecutor", "Bundles", "Environments", "slot_key", "LogBook"} <= set(fdk.__all__)
        assert {"Admission", "Capacity", "Executor", "InProcessExecutor"} <= set(runner.__all__)

    def test_every_name_resolves_and_is_documented(self) -> None:
        """Every public name of every public module exists and has a docstring."""
        for module in (runnerpool, metrics, testing, runner, fdk):
            for name in module.__all__:
                obj = getattr(module, name)
                # Type aliases (ConfigureHook = Callable[...]) are documented where defined.
                if name != "__version__" and callable(obj) and not isinstance(obj, GenericAlias):
                    assert obj.__doc__, f"{module.__name__}.{name} has no docstring"

    def test_fakes_are_public(self) -> None:
        """The fakes users test with are in runnerpool.testing."""
        assert {"FakeCall", "FakeRunner", "FakeRunnerPool"} <= set(testing.__all__)
        assert "register_placer_views" in metrics.__all__
