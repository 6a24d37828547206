"""What a runner says of its health: the port of Go's ``runnerpool.RunnerStatus``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["RunnerStatus"]


@dataclass(frozen=True, slots=True)
class RunnerStatus:
    """A runner's health and load, as its ``Status`` call reports it.

    Every field of Fn's ``RunnerStatus``, plus ``custom_status`` (the map a runner's custom
    health check returns, carried by the wire protocol but dropped by Fn's Go struct).
    Durations are seconds; dates are timezone-aware, or ``None`` when the runner sent none.

    Attributes:
        active_request_count: Calls running on the runner now.
        requests_received: Calls the runner has received since it started.
        requests_handled: Calls it has finished, NACKs excluded.
        kdumps_on_disk: Kernel crash dumps the runner found on its disk.
        status_failed: Whether the status check itself failed.
        cached: Whether the runner answered from its status cache.
        status_id: The id of the status call that produced this status.
        details: Free-form details (the status function's output).
        error_code: When ``status_failed``, the error's code.
        error_str: When ``status_failed``, the error's message.
        created_at: When the status call was created on the runner.
        started_at: When it started.
        completed_at: When it completed.
        scheduler_duration: Time the runner's scheduler spent on the status call.
        execution_duration: Time spent executing the status function.
        image_pull_wait_duration: Time spent waiting for the image pull.
        ctr_prep_duration: Time spent preparing the container.
        ctr_create_duration: Time spent creating the container.
        init_start_time: Time until the function's process was ready.
        is_network_disabled: Whether the runner's network is off (its barrier file is gone).
        custom_status: The runner's custom health check output.
    """

    active_request_count: int = 0
    requests_received: int = 0
    requests_handled: int = 0
    kdumps_on_disk: int = 0
    status_failed: bool = False
    cached: bool = False
    status_id: str = ""
    details: str = ""
    error_code: int = 0
    error_str: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    scheduler_duration: float = 0.0
    execution_duration: float = 0.0
    image_pull_wait_duration: float = 0.0
    ctr_prep_duration: float = 0.0
    ctr_create_duration: float = 0.0
    init_start_time: float = 0.0
    is_network_disabled: bool = False
    custom_status: dict[str, str] = field(default_factory=dict)
