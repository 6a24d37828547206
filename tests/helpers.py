"""Small helpers shared by the tests."""

from __future__ import annotations

from runnerpool import metrics
from runnerpool.metrics import PlacerViews

#: The latency buckets Fn's fnserver registers its views with.
FN_LATENCY_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 10000, 60000, 120000)


def register_views() -> PlacerViews:
    """Register the placer views with no tag keys and Fn's latency buckets."""
    return metrics.register_placer_views([], FN_LATENCY_BUCKETS)


def counts(views: PlacerViews) -> dict[str, int]:
    """Return every placer metric that was recorded, as Fn's scenarios list them.

    Counts map to their number of records; the attempt count maps to the sum of attempts,
    and latency to its number of records. Metrics never recorded are left out.
    """
    result: dict[str, int] = {}
    for name, view in (
        ("rp_error", views.rp_error_count),
        ("rp_empty", views.rp_empty_count),
        ("client_cancelled", views.client_cancelled_count),
        ("client_timeout", views.client_timeout_count),
        ("placer_timeout", views.timeout_count),
        ("placed_error", views.placed_error_count),
        ("placed_abort", views.placed_abort_count),
        ("placed_ok", views.placed_ok_count),
        ("retry_busy", views.retry_busy_count),
        ("retry_error", views.retry_error_count),
    ):
        if view.value():
            result[name] = view.value()
    _, recorded, attempts = views.attempt_count.snapshot()
    assert recorded == 1, "attempt_count is recorded exactly once per placement"
    result["attempt"] = int(attempts)
    return result


def latency_ms(views: PlacerViews) -> float:
    """Return the single recorded placer latency, in milliseconds."""
    _, recorded, total = views.latency.snapshot()
    assert recorded == 1
    return total
