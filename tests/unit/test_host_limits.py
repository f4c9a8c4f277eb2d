"""Limits that mirror host.json are tied to it: a change on one side fails here."""

from __future__ import annotations

import json
from pathlib import Path

from deployer.config import MAX_STEP_SLICE_SECONDS, SETTINGS
from deployer.devhost.host import HostOptions
from deployer.rotation.engine import MAX_ATTEMPTS, STEP_WORK_SECONDS
from deployer.rotation.looks import INLINE_PAUSE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
HOST = json.loads((ROOT / "host.json").read_text())


def _seconds(hms: str) -> int:
    hours, minutes, seconds = (int(x) for x in hms.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_the_pipelines_attempts_are_the_hosts_max_dequeue_count() -> None:
    assert HOST["extensions"]["queues"]["maxDequeueCount"] == MAX_ATTEMPTS


def test_the_function_timeout_covers_the_longest_slice_plus_a_steps_own_work() -> None:
    timeout = _seconds(HOST["functionTimeout"])
    assert timeout >= MAX_STEP_SLICE_SECONDS + STEP_WORK_SECONDS
    default = int(next(s.default for s in SETTINGS if s.env == "DEPLOYER_STEP_SLICE_SECONDS") or 0)
    assert 0 < default <= 30 < timeout  # "well under a minute"


def test_a_retried_step_comes_back_well_before_a_wait_would_have_ended() -> None:
    # the host makes a failed message visible again after visibilityTimeout
    assert _seconds(HOST["extensions"]["queues"]["visibilityTimeout"]) <= 60


def test_a_continuation_is_picked_up_soon_after_its_delay_ends() -> None:
    # waits longer than an inline pause go back on the queue; the host's default polling
    # interval for an empty queue (one minute) would make each of them up to a minute late
    polling = _seconds(HOST["extensions"]["queues"]["maxPollingInterval"])
    assert 0 < polling <= INLINE_PAUSE_SECONDS
    assert HostOptions.from_host_json(ROOT / "host.json").poll_seconds == polling


def test_the_nightly_cleanup_stops_a_minute_before_the_function_timeout() -> None:
    """A timer run killed by the host writes no report and never checks rotated secrets."""
    from deployer.pipeline.cleanup import TIMER_BUDGET_SECONDS

    assert _seconds(HOST["functionTimeout"]) >= TIMER_BUDGET_SECONDS + 60


def test_the_timer_caps_a_longer_cleanup_budget(world) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from deployer.pipeline.cleanup import TIMER_BUDGET_SECONDS, timer_budget

    world.services.settings = replace(world.services.settings, cleanup_budget_seconds=600)
    assert timer_budget(world.services) == TIMER_BUDGET_SECONDS
    world.services.settings = replace(world.services.settings, cleanup_budget_seconds=100)
    assert timer_budget(world.services) == 100
