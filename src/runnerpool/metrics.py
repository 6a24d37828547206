"""Placer metrics: Fn's ``lb_placer_*`` views, exported in the Prometheus text format.

As in Fn, nothing is measured until views are registered, and registering is the embedder's
choice (Fn's ``RegisterPlacerViews``)::

    from runnerpool import metrics

    metrics.register_placer_views(["fn_id"], latency_buckets=[1, 10, 50, 100, 250, 500, 1000])
    with metrics.tagged(fn_id="my-fn"):
        await placer.place_call(pool, call)
    print(metrics.exposition().decode())

Values are labelled with the registered tag keys, taken from :func:`tagged` where the call was
placed (the Python form of the tags Fn reads from the request's context). Three keys are
filled without :func:`tagged` (:data:`LB_TAG_KEYS`): ``fn_id`` and ``app_id`` from the call,
``runner`` from the runner an attempt went to; ``runner`` labels only the views recorded per
runner, and the others have no ``runner`` label (see ``_metric_tags.py``). With no tag keys
(Fn's default) the exposition is Fn's, byte for byte. Until views are registered, the placers
record nothing and pay only a ``None`` check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from prometheus_client import CollectorRegistry, generate_latest

from ._metric_tags import LB_TAG_KEYS, TAGS, TagPlan, current_tags, parse_lb_tags, tagged
from ._process_metrics import register_process_collectors, unregister_process_collectors
from ._views import CountView, DistributionView, GaugeView, ViewCollector

if TYPE_CHECKING:
    from ._model import Call

__all__ = [
    "ATTEMPT_COUNT_BOUNDS",
    "LB_TAG_KEYS",
    "REGISTRY",
    "LBAgentViews",
    "PlacerViews",
    "current_tags",
    "exposition",
    "lb_agent_views",
    "parse_lb_tags",
    "placer_views",
    "register_lb_agent_views",
    "register_placer_views",
    "register_process_collectors",
    "tagged",
    "unregister_lb_agent_views",
    "unregister_placer_views",
    "unregister_process_collectors",
]

#: runnerpool's own registry, used when no other is given.
REGISTRY = CollectorRegistry(auto_describe=True)

#: Bucket bounds of ``lb_placer_attempt_count``: fixed in Fn, whatever the latency buckets.
ATTEMPT_COUNT_BOUNDS = (0, 2, 3, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True, slots=True, eq=False)
class PlacerViews:
    """The twelve placer views of Fn's ``placer_stats.go``, once registered.

    The five counts of an attempt's outcome (``placed_*``, ``retry_*``) are labelled with every
    tag key; the seven views recorded once per placement with every key but ``runner``.

    Attributes:
        tag_keys: The registered tag keys.
        attempt_count: ``lb_placer_attempt_count``: runners tried per call.
        rp_error_count: ``lb_placer_rp_error_count``: calls that failed with a pool error.
        rp_empty_count: ``lb_placer_rp_empty_count``: passes over an empty runner list.
        client_cancelled_count: ``lb_placer_client_cancelled_count``: calls the client
            cancelled.
        client_timeout_count: ``lb_placer_client_timeout_count``: calls whose client deadline
            passed.
        timeout_count: ``lb_placer_timeout_count``: calls the placer timed out on.
        placed_error_count: ``lb_placer_placed_error_count``: committed calls that failed.
        placed_abort_count: ``lb_placer_placed_abort_count``: committed calls cut by the
            client's cancel or deadline.
        placed_ok_count: ``lb_placer_placed_ok_count``: committed calls that succeeded.
        retry_busy_count: ``lb_placer_retry_busy_count``: NACKs (503 too busy).
        retry_error_count: ``lb_placer_retry_error_count``: other refusals.
        latency: ``lb_placer_latency``: milliseconds from the start of placement to the
            start of the committing attempt (or to the end, when nothing took the call).
    """

    tag_keys: tuple[str, ...]
    attempt_count: DistributionView
    rp_error_count: CountView
    rp_empty_count: CountView
    client_cancelled_count: CountView
    client_timeout_count: CountView
    timeout_count: CountView
    placed_error_count: CountView
    placed_abort_count: CountView
    placed_ok_count: CountView
    retry_busy_count: CountView
    retry_error_count: CountView
    latency: DistributionView
    # The last context mapping seen and its tag tuple: the mapping only changes when a
    # tagged() block starts or ends, so most placements reuse the tuple.
    _last: list[object] = field(default_factory=lambda: [None, ()], init=False, repr=False)
    #: Where each tag value comes from.
    plan: TagPlan = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plan", TagPlan(self.tag_keys))

    def tags(self) -> tuple[str, ...]:
        """Return the current context's values of the tag keys other than ``runner``."""
        values = TAGS.get()
        last = self._last
        if last[0] is not values:
            last[:] = [values, current_tags(self.plan.call_keys)]
        return cast("tuple[str, ...]", last[1])

    def call_tags(self, model: Call) -> tuple[str, ...]:
        """Return the labels of the per-placement views for a call (every key but ``runner``)."""
        return self.plan.call_tags(model)

    def runner_tags(self, call_tags: tuple[str, ...], address: str) -> tuple[str, ...]:
        """Return the labels of an attempt's views: ``call_tags`` and the runner's address."""
        return self.plan.runner_tags(call_tags, address)

    def views(self) -> tuple[CountView | DistributionView, ...]:
        """Return the twelve views, in Fn's order."""
        return (
            self.attempt_count,
            self.rp_error_count,
            self.rp_empty_count,
            self.client_cancelled_count,
            self.client_timeout_count,
            self.timeout_count,
            self.placed_error_count,
            self.placed_abort_count,
            self.placed_ok_count,
            self.retry_busy_count,
            self.retry_error_count,
            self.latency,
        )


_Exposed = tuple[ViewCollector, CollectorRegistry]


def _expose(
    views: Sequence[CountView | DistributionView],
    registry: CollectorRegistry | None,
    namespace: str,
) -> _Exposed:
    target = REGISTRY if registry is None else registry
    collector = ViewCollector(views, namespace)
    target.register(collector)
    return collector, target


def _withdraw(exposed: _Exposed | None) -> None:
    if exposed is not None:
        collector, registry = exposed
        registry.unregister(collector)


_placer_views: PlacerViews | None = None
_placer_collector: _Exposed | None = None


def placer_views() -> PlacerViews | None:
    """Return the registered placer views, or ``None`` when none are registered."""
    return _placer_views


def register_placer_views(
    tag_keys: Sequence[str],
    latency_buckets: Sequence[float],
    *,
    registry: CollectorRegistry | None = None,
    namespace: str = "fn",
) -> PlacerViews:
    """Start measuring placements: the port of Fn's ``RegisterPlacerViews``.

    Registering again replaces the earlier views (their values start from zero).

    Args:
        tag_keys: Tag keys that label the placer metrics; values come from :func:`tagged`,
            and for :data:`LB_TAG_KEYS` from the call and the runner.
        latency_buckets: Bucket bounds of ``lb_placer_latency``, in milliseconds (Fn's
            ``fnserver`` uses ``[1, 10, 50, 100, 250, 500, 1000, 10000, 60000, 120000]``).
        registry: Where to expose the metrics; runnerpool's :data:`REGISTRY` by default.
        namespace: Prefix of the exported names; ``"fn"``, as Fn's Prometheus exporter
            names them (``fn_lb_placer_latency``).

    Returns:
        The registered views, whose values tests and embedders may read directly.

    Raises:
        ValueError: If a tag key is not a valid Prometheus label name, or the buckets do not
            increase.
    """
    global _placer_views, _placer_collector
    plan = TagPlan(tag_keys)
    keys, call_keys = plan.keys, plan.call_keys

    def count(name: str, description: str, labels: tuple[str, ...] = call_keys) -> CountView:
        return CountView(name, description, labels)

    views = PlacerViews(
        tag_keys=keys,
        attempt_count=DistributionView(
            "lb_placer_attempt_count",
            "LB Placer Number of Runners Attempted Count",
            call_keys,
            ATTEMPT_COUNT_BOUNDS,
        ),
        rp_error_count=count(
            "lb_placer_rp_error_count", "LB Placer RunnerPool RunnerList Error Count"
        ),
        rp_empty_count=count(
            "lb_placer_rp_empty_count", "LB Placer RunnerPool RunnerList Empty Count"
        ),
        client_cancelled_count=count(
            "lb_placer_client_cancelled_count", "LB Placer Client Cancel Count"
        ),
        client_timeout_count=count(
            "lb_placer_client_timeout_count", "LB Placer Client Timeout Count"
        ),
        timeout_count=count("lb_placer_timeout_count", "LB Placer Timeout Count"),
        placed_error_count=count(
            "lb_placer_placed_error_count", "LB Placer Placed Call Count With Errors", keys
        ),
        placed_abort_count=count(
            "lb_placer_placed_abort_count",
            "LB Placer Placed Call Count With Client Timeout/Cancel",
            keys,
        ),
        placed_ok_count=count(
            "lb_placer_placed_ok_count", "LB Placer Placed Call Count Without Errors", keys
        ),
        retry_busy_count=count(
            "lb_placer_retry_busy_count", "LB Placer Retry Count - Too Busy", keys
        ),
        retry_error_count=count(
            "lb_placer_retry_error_count", "LB Placer Retry Count - Errors", keys
        ),
        latency=DistributionView(
            "lb_placer_latency", "LB Placer Latency", call_keys, latency_buckets
        ),
    )
    unregister_placer_views()
    _placer_views, _placer_collector = views, _expose(views.views(), registry, namespace)
    return views


def unregister_placer_views() -> None:
    """Stop measuring placements and remove the placer metrics from their registry."""
    global _placer_views, _placer_collector
    _withdraw(_placer_collector)
    _placer_views = _placer_collector = None


def exposition(registry: CollectorRegistry | None = None) -> bytes:
    """Return the metrics of a registry (runnerpool's own by default) in Prometheus text format."""
    return generate_latest(REGISTRY if registry is None else registry)


@dataclass(frozen=True, slots=True, eq=False)
class LBAgentViews:
    """The load balancer's call metrics: Fn's agent and LB-agent views (``stats.go``).

    The runners' reported latencies (``lb_runner_*``) are labelled with every tag key; the
    views recorded once per call with every key but ``runner``.

    Attributes:
        tag_keys: The registered tag keys.
        calls: ``calls``: calls created.
        queued: ``queued``: calls waiting to start now.
        running: ``running``: calls being placed or run now.
        completed: ``completed``: calls that succeeded.
        canceled: ``canceled``: calls whose client went away.
        timeouts: ``timeouts``: calls whose reservation (deadline) passed.
        errors: ``errors``: calls that failed otherwise.
        server_busy: ``server_busy``: calls refused because every runner was busy or the
            load balancer was closing.
        call_latency: ``lb_call_latency``: milliseconds the load balancer spent on a call,
            user execution excluded, labelled with ``call_status`` too.
        runner_sched_latency: ``lb_runner_sched_latency``: runners' scheduling time (ms).
        runner_exec_latency: ``lb_runner_exec_latency``: runners' execution time (ms).
    """

    tag_keys: tuple[str, ...]
    calls: CountView
    queued: GaugeView
    running: GaugeView
    completed: CountView
    canceled: CountView
    timeouts: CountView
    errors: CountView
    server_busy: CountView
    call_latency: DistributionView
    runner_sched_latency: DistributionView
    runner_exec_latency: DistributionView
    #: Where each tag value comes from.
    plan: TagPlan = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plan", TagPlan(self.tag_keys))

    def tags(self) -> tuple[str, ...]:
        """Return the current context's values of the tag keys other than ``runner``."""
        return current_tags(self.plan.call_keys)

    def call_tags(self, model: Call) -> tuple[str, ...]:
        """Return the labels of the per-call views for a call (every key but ``runner``)."""
        return self.plan.call_tags(model)

    def runner_tags(self, call_tags: tuple[str, ...], address: str) -> tuple[str, ...]:
        """Return the labels of a runner's reported latencies: ``call_tags`` and its address."""
        return self.plan.runner_tags(call_tags, address)

    def views(self) -> tuple[CountView | GaugeView | DistributionView, ...]:
        """Return every view, in Fn's order."""
        return (
            self.calls,
            self.queued,
            self.running,
            self.completed,
            self.canceled,
            self.timeouts,
            self.errors,
            self.server_busy,
            self.call_latency,
            self.runner_sched_latency,
            self.runner_exec_latency,
        )


_lb_views: LBAgentViews | None = None
_lb_collector: _Exposed | None = None


def lb_agent_views() -> LBAgentViews | None:
    """Return the registered LB agent views, or ``None`` when none are registered."""
    return _lb_views


def register_lb_agent_views(
    tag_keys: Sequence[str],
    latency_buckets: Sequence[float],
    *,
    registry: CollectorRegistry | None = None,
    namespace: str = "fn",
) -> LBAgentViews:
    """Start measuring the load balancer's calls: Fn's ``RegisterAgentViews`` and LB views.

    ``queued`` and ``running`` go up and down, so they are exported as gauges; the other
    sums only grow and are counters.

    Args:
        tag_keys: Tag keys that label the views; values come from :func:`tagged`, and for
            :data:`LB_TAG_KEYS` from the call and the runner.
        latency_buckets: Bucket bounds of the latency distributions, in milliseconds.
        registry: Where to expose the metrics; runnerpool's :data:`REGISTRY` by default.
        namespace: Prefix of the exported names.

    Returns:
        The registered views.

    Raises:
        ValueError: If a tag key is not a valid Prometheus label name, or the buckets do not
            increase.
    """
    global _lb_views, _lb_collector
    plan = TagPlan(tag_keys)
    keys, call_keys = plan.keys, plan.call_keys
    status_keys = ("call_status", *(k for k in call_keys if k != "call_status"))

    def count(name: str, description: str) -> CountView:
        return CountView(name, description, call_keys)

    views = LBAgentViews(
        tag_keys=keys,
        calls=count("calls", "calls created in agent"),
        queued=GaugeView("queued", "calls currently queued against agent", call_keys),
        running=GaugeView("running", "calls currently running in agent", call_keys),
        completed=count("completed", "calls completed in agent"),
        canceled=count("canceled", "calls canceled in agent"),
        timeouts=count("timeouts", "calls timed out in agent"),
        errors=count("errors", "calls errored in agent"),
        server_busy=count("server_busy", "calls where server was too busy in agent"),
        call_latency=DistributionView(
            "lb_call_latency", "LB Call Latency Reported By LBAgent", status_keys, latency_buckets
        ),
        runner_sched_latency=DistributionView(
            "lb_runner_sched_latency",
            "Runner Scheduler Latency Reported By LBAgent",
            keys,
            latency_buckets,
        ),
        runner_exec_latency=DistributionView(
            "lb_runner_exec_latency",
            "Runner Container Execution Latency Reported By LBAgent",
            keys,
            latency_buckets,
        ),
    )
    unregister_lb_agent_views()
    _lb_views, _lb_collector = views, _expose(views.views(), registry, namespace)
    return views


def unregister_lb_agent_views() -> None:
    """Stop measuring the load balancer's calls and remove the views from their registry."""
    global _lb_views, _lb_collector
    _withdraw(_lb_collector)
    _lb_views = _lb_collector = None
