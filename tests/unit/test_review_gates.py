"""Review gates: a person, an automatic reviewer, or both decide; a rejection regenerates with the
feedback; waiting for a person does not eat the job's deadline; the gate has its own."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from atelier_contracts.commands import ExpireDeadlines, ReviewStep, SubmitJob
from atelier_contracts.events import (
    JobEvent,
    JobFailed,
    JobSucceeded,
    ReviewRequested,
    StepDispatched,
    StepReviewed,
    StepSucceeded,
)
from atelier_contracts.snapshot import JobStatus, StepStatus
from atelier_orchestrator.domain.decide import Rejected
from tests.unit.story_sim import Sim, succeeded


def dispatched(events: list[JobEvent]) -> list[StepDispatched]:
    return [e for e in events if isinstance(e, StepDispatched)]


def gallery(review: str, **more: Any) -> SubmitJob:
    job_input = {"prompt": "foxes", "count": 2, "size": 256, "review": review, **more}
    return SubmitJob(kind="gallery", title="Foxes", input=job_input)


def to_review(sim: Sim, review: str = "manual", **more: Any) -> list[JobEvent]:
    """Submit, plan two pictures, draw them: the events of the last picture's success."""
    [ideas] = dispatched(sim.send(gallery(review, **more)))
    pictures = dispatched(sim.send(replace(succeeded(ideas), data={"items": ["a fox", "two foxes"]})))
    assert [p.step for p in pictures] == ["picture_001", "picture_002"]
    sim.send(succeeded(pictures[0]))
    return sim.send(succeeded(pictures[1]))


def review(sim: Sim, verdict: str, feedback: str = "") -> list[JobEvent]:
    return sim.send(
        ReviewStep(step="review", verdict=verdict, feedback=feedback, reviewer="ana"), f"r-{sim.clock}"
    )  # type: ignore[arg-type]


def test_rejected_twice_with_feedback_then_approved_the_log_tells_the_story() -> None:
    sim = Sim()
    [asked] = [e for e in to_review(sim) if isinstance(e, ReviewRequested)]
    assert (asked.step, asked.round) == ("review", 1)
    assert sim.state is not None
    assert sim.state.status == JobStatus.AWAITING_REVIEW
    assert sim.state.steps["package"].status == StepStatus.PENDING, "held back by the gate"

    again = dispatched(review(sim, "reject", "warmer light"))
    assert [d.step for d in again] == ["picture_001", "picture_002"], "drawn again"
    assert all(d.params["feedback"] == "warmer light" for d in again)
    assert sim.state.status != JobStatus.AWAITING_REVIEW
    for d in again:
        events = sim.send(succeeded(d))
    assert [e.round for e in events if isinstance(e, ReviewRequested)] == [2]

    third = dispatched(review(sim, "reject", "a smaller fox"))
    assert all(d.params["feedback"] == "a smaller fox" for d in third)
    for d in third:
        sim.send(succeeded(d))
    [package] = dispatched(review(sim, "approve", "lovely"))
    assert package.step == "package"
    assert isinstance(sim.send(succeeded(package))[-1], JobSucceeded)
    assert [(r.round, r.verdict, r.feedback, r.reviewer) for r in sim.state.reviews] == [
        (1, "reject", "warmer light", "ana"),
        (2, "reject", "a smaller fox", "ana"),
        (3, "approve", "lovely", "ana"),
    ]
    verdicts = [e for e in sim.events() if isinstance(e, StepReviewed)]
    assert [v.verdict for v in verdicts] == ["reject", "reject", "approve"]
    assert sim.replay() == sim.state


def test_a_verdict_on_a_gate_that_is_not_waiting_is_refused() -> None:
    sim = Sim()
    sim.send(gallery("manual"))
    with pytest.raises(Rejected) as refused:
        review(sim, "approve")
    assert refused.value.code == "illegal_transition"


def test_waiting_for_a_person_does_not_count_against_the_job_deadline() -> None:
    sim = Sim()
    to_review(sim)
    assert sim.state is not None
    deadline = sim.state.deadline_at
    assert deadline is not None
    gate = sim.state.steps["review"]
    assert sim.state.next_deadline == gate.deadline_at, "the gate's own deadline, not the job's"
    sim.clock += 10 * 3600  # ten hours later: the job's hour is long over, the gate's day is not
    assert sim.send(ExpireDeadlines()) == []
    [package] = dispatched(review(sim, "approve"))
    assert sim.state.deadline_at is not None
    assert sim.state.deadline_at - deadline >= timedelta(hours=10), "the deadline moved by the wait"
    assert package.step == "package"


@pytest.mark.parametrize(
    ("policy", "ends"), [("approve", "package"), ("reject", "picture_001"), ("fail", None)]
)
def test_a_gate_nobody_reviews_in_time_follows_its_policy(policy: str, ends: str | None) -> None:
    sim = Sim()
    to_review(sim, review_timeout_s=60, on_review_timeout=policy)
    sim.clock += 61
    events = sim.send(ExpireDeadlines())
    [verdict] = [e for e in events if isinstance(e, StepReviewed)]
    assert verdict.reviewer == "timeout"
    if ends is None:
        assert isinstance(events[-1], JobFailed)
        assert sim.state is not None
        assert sim.state.steps["review"].last_error is not None
        assert sim.state.steps["review"].last_error.code == "review_timeout"
    else:
        assert dispatched(events)[0].step == ends


def test_an_automatic_reviewer_decides_and_a_rejection_regenerates() -> None:
    sim = Sim()
    [gate] = dispatched(to_review(sim, "auto"))
    assert (gate.step, gate.capability) == ("review", "review.auto")
    assert gate.params["checks"]["min_side"] == 256
    assert sorted(gate.inputs) == ["ideas.out", "picture_001.out", "picture_002.out"]
    verdict = {"verdict": "reject", "feedback": "picture_002 is too dark"}
    again = dispatched(sim.send(replace(succeeded(gate), data=verdict)))
    assert [d.step for d in again] == ["picture_001", "picture_002"]
    for d in again:
        events = sim.send(succeeded(d))
    [gate2] = dispatched(events)
    [package] = dispatched(sim.send(replace(succeeded(gate2), data={"verdict": "approve"})))
    assert package.step == "package"
    assert sim.state is not None
    assert [(r.auto, r.verdict) for r in sim.state.reviews] == [(True, "reject"), (True, "approve")]


def test_both_the_automatic_reviewer_then_a_person() -> None:
    sim = Sim()
    [gate] = dispatched(to_review(sim, "both"))
    events = sim.send(replace(succeeded(gate), data={"verdict": "approve"}))
    [asked] = [e for e in events if isinstance(e, ReviewRequested)]
    assert asked.round == 1, "the person reviews the round the machine passed"
    assert sim.state is not None
    assert sim.state.status == JobStatus.AWAITING_REVIEW
    [package] = dispatched(review(sim, "approve"))
    assert package.step == "package"
    assert [(r.round, r.auto) for r in sim.state.reviews] == [(1, True), (1, False)]


def test_a_gate_rejected_as_often_as_allowed_fails_the_job() -> None:
    sim = Sim()
    to_review(sim)
    for _ in range(4):
        for d in dispatched(review(sim, "reject", "no")):
            sim.send(succeeded(d))
    events = review(sim, "reject", "still no")
    assert isinstance(events[-1], JobFailed)
    assert sim.state is not None
    assert sim.state.steps["review"].last_error is not None
    assert sim.state.steps["review"].last_error.code == "review_rejected"


def test_a_gate_that_failed_leaves_no_paused_deadline_behind_for_a_requeue() -> None:
    from atelier_contracts.commands import RequeueJob

    sim = Sim()
    to_review(sim, review_timeout_s=60, on_review_timeout="fail")
    sim.clock += 61
    sim.send(ExpireDeadlines())
    assert sim.state is not None
    assert sim.state.status == JobStatus.FAILED
    assert sim.state.review_waiting_since is None, "nobody is waited for any more"
    failed_at = sim.state.updated_at
    events = sim.send(RequeueJob(), "requeue-1")  # type: ignore[arg-type]
    [asked] = [e for e in events if isinstance(e, ReviewRequested)]
    assert asked.round == 2, "the pictures stand: the gate asks again at once"
    assert sim.state.review_waiting_since is not None
    assert sim.state.review_waiting_since > failed_at, "waiting since the requeue, not before"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_order_of_reports_and_verdicts_with_duplicates_ends_once_per_step(data: st.DataObject) -> None:
    """Reports and a person's verdicts arrive in any order, some twice; a verdict the gate is not
    waiting for is refused. The job ends, each of its steps succeeding once per run, and replay
    equals the state."""
    sim = Sim()
    items = ["a fox", "two foxes"]

    made = iter(range(10**6))

    def reports(d: StepDispatched) -> list[tuple[str, object]]:
        done = replace(succeeded(d), data={"items": items}) if d.step == "ideas" else succeeded(d)
        return [(f"m{next(made)}", done)]  # a message keeps its id when delivered again

    outbox: list[tuple[str, object]] = [
        m for d in dispatched(sim.send(gallery("manual"))) for m in reports(d)
    ]
    rejections = data.draw(st.integers(0, 3))
    for _ in range(400):
        assert sim.state is not None
        if sim.state.status in JobStatus.TERMINAL:
            break
        if not outbox and sim.state.status == JobStatus.AWAITING_REVIEW:
            verdict = "reject" if rejections else "approve"
            rejections -= verdict == "reject"
            verdict_of = ReviewStep(step="review", verdict=verdict, feedback="again", reviewer="ana")  # type: ignore[arg-type]
            outbox.append((f"m{next(made)}", verdict_of))
        msg_id, message = outbox.pop(data.draw(st.integers(0, len(outbox) - 1)))
        if data.draw(st.booleans()):
            outbox.append((msg_id, message))  # delivered again later
        try:
            events = sim.send(message, msg_id)  # type: ignore[arg-type]
        except Rejected:
            continue  # a verdict when the gate waits for none: refused, nothing appended
        for d in dispatched(events):
            outbox += reports(d)
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED
    runs = 1 + sum(1 for r in sim.state.reviews if r.verdict == "reject")
    wins = Counter(e.step for e in sim.events() if isinstance(e, StepSucceeded))
    assert wins["ideas"] == 1
    assert wins["package"] == 1
    assert wins["picture_001"] == wins["picture_002"] == runs, "drawn once per round"
    assert sim.replay() == sim.state
