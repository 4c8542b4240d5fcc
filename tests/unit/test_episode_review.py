"""Verdicts on an episode's shots as the gateway sends them (``app/projects.review_commands``):
every one checked against the render before any is sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from atelier_contracts.commands import ReviewStep
from atelier_contracts.snapshot import JobView, StepView
from atelier_gateway.app.errors import IllegalTransition, InputInvalid, ShotNotFound
from atelier_gateway.app.projects import ShotVerdict, review_commands

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def render(gates: dict[str, str]) -> JobView:
    steps = {name: StepView(name=name, capability="review", status=status) for name, status in gates.items()}
    image = {f"image_00{i}": StepView(name=f"image_00{i}", capability="image.generate") for i in (1, 2)}
    return JobView(
        id="job_e", tenant="t1", kind="episode", title="e", status="awaiting_review", input={},
        steps={**image, **steps}, created_at=T0, updated_at=T0,
    )  # fmt: skip


def test_verdicts_become_commands_to_their_shots_gates() -> None:
    job = render({"review_001": "awaiting_review", "review_002": "awaiting_review"})
    verdicts = [
        ShotVerdict(shot=2, verdict="reject", feedback="more fog"),
        ShotVerdict(shot=1, verdict="approve"),
    ]
    assert review_commands(job, verdicts, "kai") == [
        ReviewStep(step="review_002", verdict="reject", feedback="more fog", reviewer="kai"),
        ReviewStep(step="review_001", verdict="approve", feedback="", reviewer="kai"),
    ]


def test_a_request_that_cannot_be_taken_whole_is_refused_whole() -> None:
    job = render({"review_001": "awaiting_review", "review_002": "succeeded"})
    with pytest.raises(InputInvalid):
        review_commands(
            job, [ShotVerdict(shot=1, verdict="approve"), ShotVerdict(shot=1, verdict="reject")], ""
        )
    with pytest.raises(ShotNotFound):
        review_commands(job, [ShotVerdict(shot=1, verdict="approve", of="clip")], "")
    with pytest.raises(IllegalTransition, match=r"\[2\]"):
        review_commands(
            job, [ShotVerdict(shot=1, verdict="approve"), ShotVerdict(shot=2, verdict="approve")], ""
        )
