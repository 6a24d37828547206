"""Checked by mypy only: user classes and the fakes satisfy runnerpool's Protocols."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from runnerpool import (
    AsyncResource,
    BasePlacer,
    CHPlacer,
    NaivePlacer,
    Placer,
    PlacerConfig,
    PlacerRuntime,
    Runner,
    RunnerCall,
    RunnerPool,
    RunnerStatus,
    StaticRunnerPool,
)
from runnerpool.fdk import Bundles, Environments, FdkExecutor
from runnerpool.lb import LBSettings, Registry, serve_lb
from runnerpool.placers import DEFAULT_RUNTIME, PlacerFactory, register_placer
from runnerpool.runner import (
    Executor,
    HotProcesses,
    InProcessExecutor,
    RunnerMetrics,
    RunnerServer,
    RunnerService,
    RunnerSettings,
    serve_runner,
)
from runnerpool.testing import FakeCall, FakeDetachedPlacer, FakeRunner, FakeRunnerPool


class UserRunner:
    """A user's runner with no base class: structural typing is enough."""

    address = "10.0.0.1:9190"

    async def try_exec(self, call: RunnerCall) -> None:
        """Run nothing."""

    async def status(self) -> RunnerStatus:
        """Report an idle runner."""
        return RunnerStatus()

    async def aclose(self) -> None:
        """Nothing to close."""


class UserPool:
    """A user's pool of one runner."""

    async def runners(self, call: RunnerCall) -> Sequence[Runner]:
        """The one runner."""
        return [UserRunner()]

    async def aclose(self) -> None:
        """Nothing to close."""


runner: Runner = UserRunner()
fake_runner: Runner = FakeRunner("r")
pool: RunnerPool = UserPool()
fake_pool: RunnerPool = FakeRunnerPool()
call: RunnerCall = FakeCall()
placers: list[Placer] = [
    CHPlacer(),
    CHPlacer(PlacerConfig(), variant="fn"),
    NaivePlacer(),
    # Injected clock, jitter and metric views: a user's own (here a fixed clock, no metrics).
    NaivePlacer(runtime=PlacerRuntime(clock=lambda: 0.0, rng=random.Random(1), views=lambda: None)),
    FakeDetachedPlacer(PlacerConfig(), 0.1),
]

# The executors a runner can serve with: both satisfy the Executor protocol (admission included).
executors: list[Executor] = [
    InProcessExecutor({}),
    FdkExecutor(Bundles(Path("examples")), Environments(Path("envs"))),
]

# One RunnerMetrics shared by the service, the FDK executor and its environments; the FDK
# executor reports its hot processes to the service's scrape-time collector.
shared_metrics = RunnerMetrics()
hot: HotProcesses = FdkExecutor(
    Bundles(Path("examples")),
    Environments(Path("envs"), metrics=shared_metrics),
    metrics=shared_metrics,
)
metrics_service = RunnerService(InProcessExecutor({}), metrics=shared_metrics)


async def closing() -> None:
    """Every resource closes with aclose() and under async with, which returns its own type."""
    async with StaticRunnerPool(["127.0.0.1:9190"]) as static_pool:
        closing_pool: RunnerPool = static_pool
        await closing_pool.aclose()
    async with FakeRunner("r") as runner_in_block, FakeRunnerPool() as pool_in_block:
        closing_runner: Runner = runner_in_block
        await closing_runner.aclose()
        await pool_in_block.aclose()
    async with RunnerServer(RunnerService(InProcessExecutor({}))) as server:
        print(server.address)
    resources: list[AsyncResource] = [InProcessExecutor({}), server]
    for resource in resources:
        await resource.aclose()


def user_placer(
    config: PlacerConfig | None, /, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
) -> BasePlacer:
    """A user's placer factory, as register_placer takes it: a config and a runtime."""
    return NaivePlacer(config, runtime=runtime)


# Factories: the user's, and the placer classes themselves.
factories: list[PlacerFactory] = [user_placer, CHPlacer, NaivePlacer]


async def serving() -> None:
    """The entry points take settings built once."""
    register_placer("user", user_placer, description="a user's placer")
    await serve_lb(Registry([], []), ["127.0.0.1:9190"], LBSettings(port=0, placer="user"))
    await serve_runner(InProcessExecutor({}), RunnerSettings(port=0))
