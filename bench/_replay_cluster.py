"""The real side of the replay benchmark: a load balancer, runners, FDK functions, a driver.

:func:`run_cluster` starts ``runnerpool runner --bundles bench/replay_bundles`` processes
(each with ``--max-memory``) and a ``runnerpool lb`` in front of them, declares every
function of the workload on the ``sleep`` bundle with the workload's memory, sends the
arrivals open loop at their times (the body is the call's duration in seconds), and
collects per call what the client, the load balancer's access log and the function saw,
plus the load balancer's ``/metrics`` and each runner's process starts.

Every process it starts is stopped (SIGTERM, then SIGKILL) when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.lb import Service
from runnerpool import GrpcRunner, RunnerPoolError
from runnerpool.fdk import Bundles, Environments
from runnerpool.sim import Arrival, Function

__all__ = ["BUNDLES", "CallRecord", "ClusterRun", "functions_file", "run_cluster"]

#: The repository, where ``python -m bench._replay_cluster`` is found.
_ROOT = str(Path(__file__).resolve().parent.parent)
#: The bundles the runners serve: one, ``sleep``, which every function of the workload runs.
BUNDLES = Path(__file__).resolve().parent / "replay_bundles"
IMAGE = "sleep"
APP = "replay"
_MB = 1024 * 1024
#: Seconds a call may wait for its answer (queueing included) before the client gives up.
CLIENT_TIMEOUT = 300.0


@dataclass
class CallRecord:
    """What happened to one call of the real run.

    Attributes:
        fn_id: Its function.
        arrival: When it was due, seconds from the start of the run.
        duration: The seconds it asked its function to sleep.
        memory: Its function's memory, MB.
        sent: When the client sent it, seconds from the start.
        status: The answer's status, or ``None`` if none came.
        started: When the function started it, seconds from the start (wall clock).
        runner: The runner that took it (the access log's ``runner_addr``).
        attempts: Runners offered it (the access log's ``attempts``).
        process: The token of the function process that ran it.
        process_call: Which call of that process it was (1: its first).
        age: Seconds since that process was spawned, at the call's start.
    """

    fn_id: str
    arrival: float
    duration: float
    memory: int
    sent: float = 0.0
    status: int | None = None
    started: float | None = None
    runner: str = ""
    attempts: int = 0
    process: str = ""
    process_call: int = 0
    age: float | None = None
    call_id: str = ""


@dataclass
class ClusterRun:
    """The real run's records and the counters read at its end.

    Attributes:
        calls: One record per arrival, in arrival order.
        attempts_sum: ``lb_placer_attempt_count``'s sum (runners offered calls, all calls).
        attempts_count: Its count (calls placed or refused).
        process_starts: Function processes each runner started, by runner address.
        seconds: Wall-clock seconds from the first arrival to the last answer.
        round_trips: Seconds of ``Status`` round trips to the runners sampled during the run.
        execution: Seconds a runner held a call it took, from its start there to its end,
            mean (the load balancer's ``lb_runner_exec_latency``, from the runners' reports).
    """

    calls: list[CallRecord]
    attempts_sum: float = 0.0
    attempts_count: float = 0.0
    process_starts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    round_trips: list[float] = field(default_factory=list)
    execution: float = 0.0


def functions_file(functions: Sequence[Function], idle_timeout: int, timeout: int) -> str:
    """Return the functions file declaring every function on the ``sleep`` bundle."""
    lines = [f'[[apps]]\nname = "{APP}"\n']
    for fn in functions:
        lines.append(
            f'[[functions]]\nid = "{fn.fn_id}"\nname = "{fn.fn_id}"\napp = "{APP}"\n'
            f'image = "{IMAGE}"\nmemory = {fn.memory}\ntimeout = {timeout}\n'
            f"idle_timeout = {idle_timeout}\n"
        )
    return "\n".join(lines)


def _runnerpool(*args: str) -> list[str]:
    return [sys.executable, "-m", "runnerpool", "--log-level", "warning", *args]


@contextmanager
def _cluster(
    work: Path,
    *,
    runners: int,
    runner_memory: int,
    config: Path,
    placer: str,
    placer_config: Path,
    wheelhouse: Path,
    sandbox: bool,
) -> Iterator[tuple[Service, list[Service], Path]]:
    """Start the runners and the load balancer; stop them all at the end."""
    with ExitStack() as stack:
        started: list[Service] = []

        def stop() -> None:
            for service in reversed(started):
                service.close()

        stack.callback(stop)
        for index in range(runners):
            argv = _runnerpool("runner", "--port", "0", "--bundles", str(BUNDLES))
            argv += ["--wheelhouse", str(wheelhouse), "--state-dir", str(work)]
            argv += ["--max-memory", str(runner_memory * _MB), "--no-function-logs"]
            if not sandbox:
                argv.append("--no-sandbox")
            log = stack.enter_context((work / f"runner-{index}.log").open("wb"))
            started.append(Service(f"runner {index}", argv, "runner listening on ", log))
        addresses = ",".join(service.address for service in started)
        access = work / "lb.log"
        argv = _runnerpool("lb", "--port", "0", "--config", str(config))
        argv += ["--runner-addresses", addresses, "--placer", placer]
        argv += ["--placer-config", str(placer_config)]
        log = stack.enter_context(access.open("wb"))
        lb = Service("load balancer", argv, "load balancer listening on ", log)
        started.append(lb)
        yield lb, started[:-1], access


async def _call(client: httpx.AsyncClient, record: CallRecord, start: float, wall: float) -> None:
    record.sent = time.monotonic() - start
    try:
        answer = await client.post(
            f"/invoke/{record.fn_id}", content=f"{record.duration:.6f}".encode()
        )
    except httpx.HTTPError:
        return
    record.status = answer.status_code
    record.call_id = answer.headers.get("fn-call-id", "")
    if answer.status_code == 200:
        seen = json.loads(answer.content)
        record.started = seen["start"] - wall
        record.process = seen["process"]
        record.process_call = seen["call"]
        record.age = seen["age"]


#: Seconds between two samples of the runners' round trip.
SAMPLE_INTERVAL = 0.1


async def _sample_round_trips(addresses: Sequence[str], into: list[float]) -> None:
    """Time ``Status`` calls to the runners, in turn, until cancelled.

    A call that fails (a runner too slow to answer on a loaded machine) is not a sample.
    """
    runners = [GrpcRunner(address) for address in addresses]
    try:
        for runner in itertools.cycle(runners):
            began = time.monotonic()
            try:
                await runner.status()
            except RunnerPoolError:
                pass
            else:
                into.append(time.monotonic() - began)
            await asyncio.sleep(SAMPLE_INTERVAL)
    finally:
        for runner in runners:
            await runner.aclose()


async def _sample_until_stdin_closes(addresses: Sequence[str]) -> list[float]:
    samples: list[float] = []
    sampler = asyncio.create_task(_sample_round_trips(addresses, samples))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    return samples


class RoundTripSampler:
    """A process that times ``Status`` calls to the runners until :meth:`stop`.

    The round trip of a ``TryCall`` and its NACK, measured from a process of its own on the
    same loaded machine (in the driver's process, the driver's own work would count).

    Args:
        addresses: The runners.
    """

    def __init__(self, addresses: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._replay_cluster", "sample", *addresses],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_ROOT,
        )

    def stop(self) -> list[float]:
        """Stop sampling; return the round trips, seconds (none if the process failed)."""
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return []
        return [float(value) for value in json.loads(out or "[]")]


async def _send_all(url: str, calls: Sequence[CallRecord]) -> float:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200, keepalive_expiry=2)
    timeout = httpx.Timeout(CLIENT_TIMEOUT)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        start = time.monotonic()
        # The functions report wall-clock times; this maps them onto the run's clock.
        wall = time.time() - (time.monotonic() - start)
        tasks = []
        for record in calls:
            delay = record.arrival - (time.monotonic() - start)
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_call(client, record, start, wall)))
        await asyncio.gather(*tasks)
        return time.monotonic() - start


#: The load balancer's access log line's fields (README "Logs").
_ACCESS = re.compile(r"call_id=(\S+) fn_id=\S+ runner_addr=(\S+) attempts=(\d+)")


def _read_access_log(path: Path, calls: Sequence[CallRecord]) -> None:
    by_id = {record.call_id: record for record in calls if record.call_id}
    for match in _ACCESS.finditer(path.read_text(errors="replace")):
        record = by_id.get(match[1])
        if record is not None:
            record.runner = "" if match[2] == "-" else match[2]
            record.attempts = int(match[3])


def _histogram(metrics: str, name: str) -> tuple[float, float]:
    """Return the sum and the count of the histogram whose name ends with ``name``."""
    total = count = 0.0
    for family in text_string_to_metric_families(metrics):
        if family.name.endswith(name):
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total += sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
    return total, count


async def _process_starts(addresses: Sequence[str]) -> dict[str, int]:
    starts = {}
    for address in addresses:
        async with GrpcRunner(address) as runner:
            status = await runner.status()
        starts[address] = int(status.custom_status.get("process_starts", "0"))
    return starts


def prepare_environment(work: Path, wheelhouse: Path) -> None:
    """Build the ``sleep`` bundle's environment in ``work`` once, before the runners start."""
    with asyncio.Runner() as loop:
        environments = Environments(work, find_links=[wheelhouse])
        loop.run(environments.prepare(Bundles(BUNDLES).resolve(IMAGE)))


def run_cluster(
    work: Path,
    arrivals: Sequence[Arrival],
    functions: Sequence[Function],
    *,
    runners: int,
    runner_memory: int,
    placer: str,
    placer_config: dict[str, object],
    idle_timeout: int,
    wheelhouse: Path,
    sandbox: bool = False,
    keep_metrics: bool = False,
) -> ClusterRun:
    """Run the arrivals through a real load balancer, runners and functions.

    Args:
        work: A directory for the environment, the functions file and the logs; the
            environment is built there if missing.
        arrivals: The calls, times and durations in real seconds.
        functions: The workload's functions (their ids and memory).
        runners: How many runners.
        runner_memory: Each runner's ``--max-memory``, MB.
        placer: The load balancer's ``--placer``.
        placer_config: Its ``--placer-config``, as JSON.
        idle_timeout: Every function's idle timeout, whole seconds.
        wheelhouse: The wheels of the functions' environment.
        sandbox: Run the functions in their sandbox (else ``--no-sandbox``).
        keep_metrics: Write the load balancer's ``/metrics`` to ``work/metrics.txt``.
    """
    prepare_environment(work, wheelhouse)
    longest = max((arrival.duration for arrival in arrivals), default=0.0)
    config = work / "functions.toml"
    config.write_text(functions_file(functions, idle_timeout, min(300, int(longest) + 30)))
    placer_file = work / "placer.json"
    placer_file.write_text(json.dumps(placer_config))
    calls = [
        CallRecord(arrival.fn_id, arrival.time, arrival.duration, arrival.memory)
        for arrival in arrivals
    ]
    with _cluster(
        work,
        runners=runners,
        runner_memory=runner_memory,
        config=config,
        placer=placer,
        placer_config=placer_file,
        wheelhouse=wheelhouse,
        sandbox=sandbox,
    ) as (lb, runner_services, access_log):
        url = lb.address
        with asyncio.Runner() as loop:
            addresses = [service.address for service in runner_services]
            sampler = RoundTripSampler(addresses)
            try:
                seconds = loop.run(_send_all(url, calls))
            finally:
                round_trips = sampler.stop()
            metrics = httpx.get(f"{url}/metrics", timeout=30).text
            starts = loop.run(_process_starts(addresses))
    _read_access_log(access_log, calls)
    if keep_metrics:
        (work / "metrics.txt").write_text(metrics)
    attempts_sum, attempts_count = _histogram(metrics, "lb_placer_attempt_count")
    exec_sum, exec_count = _histogram(metrics, "lb_runner_exec_latency")
    return ClusterRun(
        calls,
        attempts_sum,
        attempts_count,
        starts,
        seconds,
        round_trips,
        exec_sum / exec_count / 1000 if exec_count else 0.0,
    )


def main(argv: Sequence[str]) -> None:
    """``sample ADDRESS...``: time ``Status`` calls until stdin closes; print them as JSON."""
    if len(argv) < 2 or argv[0] != "sample":
        sys.exit("usage: python -m bench._replay_cluster sample ADDRESS...")
    print(json.dumps(asyncio.run(_sample_until_stdin_closes(argv[1:]))))


if __name__ == "__main__":
    main(sys.argv[1:])
