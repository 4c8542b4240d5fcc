"""Progress ticks: kept per step (the latest wins), carried into threads, nothing outside work."""

from __future__ import annotations

import asyncio

from atelier_contracts.progress import progress_key
from atelier_contracts.runtime.progress import ProgressPublisher, StepTicks, report_progress
from atelier_contracts.work import WorkItem


def item(step: str = "composite") -> WorkItem:
    return WorkItem(
        work_id=f"job_1.{step}.2", job_id="job_1", tenant="t", step=step, attempt=2, capability="x"
    )


def test_only_the_latest_tick_is_taken_and_only_once() -> None:
    ticks = StepTicks(item())
    assert ticks.take() is None
    for i in range(1000):
        ticks.tick(i / 1000, f"frame {i}")
    assert ticks.take() == (0.999, "frame 999")
    assert ticks.take() is None, "nothing new: nothing to put"


def test_fractions_are_clamped_and_messages_cut() -> None:
    ticks = StepTicks(item())
    ticks.tick(7.0, "x" * 1000)
    fraction, message = ticks.take() or (None, "")
    assert fraction == 1.0
    assert len(message) == 200
    ticks.tick(None, "working")
    assert ticks.take() == (None, "working")


async def test_report_progress_ticks_the_step_it_runs_in_also_from_a_thread() -> None:
    publisher = ProgressPublisher(js=None)  # type: ignore[arg-type]  # nothing is put here
    report_progress(0.5, "outside any work: a no-op")
    with publisher.following(item()) as ticks:
        await asyncio.to_thread(report_progress, 0.25, "in the encoder's thread")
        assert ticks.take() == (0.25, "in the encoder's thread")
        with publisher.following(item("other")) as inner:
            report_progress(0.75)
        assert inner.take() == (0.75, "")
        assert ticks.take() is None
    report_progress(1.0)
    assert ticks.take() is None, "the step ended: its ticks are no longer heard"


def test_progress_keys_are_one_token_per_step() -> None:
    assert progress_key("job_1", "composite") == "job_1.composite"
    odd = progress_key("job_1", "shot.3/clip*")
    assert odd.startswith("job_1.")
    assert "*" not in odd
    assert odd.count(".") == 1
