"""The job aggregate: decide/evolve through a whole story, duplicates, retries, failures."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from atelier_contracts.commands import SubmitJob
from atelier_contracts.events import (
    JobFailed,
    JobPartialReady,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    StepDispatched,
    StepFailed,
    StepSkipped,
    StepSucceeded,
)
from atelier_contracts.snapshot import JobStatus, StepStatus
from tests.unit.story_sim import Sim, failed, started, submit, succeeded


def dispatched(events: list[object]) -> list[StepDispatched]:
    return [e for e in events if isinstance(e, StepDispatched)]


def run_to_end(sim: Sim) -> None:
    queue = dispatched(sim.send(submit()))
    while queue:
        d = queue.pop(0)
        sim.send(started(d))
        queue += dispatched(sim.send(succeeded(d)))


def test_submit_creates_a_queued_job_and_dispatches_the_first_step() -> None:
    sim = Sim()
    events = sim.send(submit())
    assert isinstance(events[0], JobSubmitted)
    assert [d.step for d in dispatched(events)] == ["story"]
    assert sim.state is not None
    assert sim.state.status == JobStatus.QUEUED
    assert sim.state.steps["story"].status == StepStatus.DISPATCHED


def test_a_story_runs_through_partial_ready_to_succeeded() -> None:
    sim = Sim()
    run_to_end(sim)
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED
    types = [type(e) for e in sim.events()]
    assert types.index(JobStarted) < types.index(JobPartialReady) < types.index(JobSucceeded)
    assert all(s.status == StepStatus.SUCCEEDED for s in sim.state.steps.values())
    assert sim.state.model_used == {name: "offline/m1" for name in sim.state.steps}
    assert sim.replay() == sim.state


def test_cover_and_narration_are_dispatched_together_after_the_text() -> None:
    sim = Sim()
    story = dispatched(sim.send(submit()))[0]
    sim.send(started(story))
    after_text = dispatched(sim.send(succeeded(story)))
    assert sorted(d.step for d in after_text) == ["cover", "narration"]
    assert all("story.out" in d.inputs for d in after_text)
    assert sim.state is not None
    assert sim.state.status == JobStatus.PARTIAL_READY


def test_redelivered_reports_and_submits_decide_nothing() -> None:
    sim = Sim()
    story = dispatched(sim.send(submit()))[0]
    assert sim.send(submit()) == []
    sim.send(started(story))
    assert sim.send(started(story)) == []
    assert sim.send(succeeded(story)) != []
    assert sim.send(succeeded(story)) == []
    assert sim.send(started(story)) == []


def test_a_retryable_failure_dispatches_the_next_attempt() -> None:
    sim = Sim()
    story = dispatched(sim.send(submit()))[0]
    events = sim.send(failed(story))
    # A quick attempt reports no start: its failure is what shows the job has started.
    assert type(events[0]).__name__ == "JobStarted"
    assert isinstance(events[1], StepFailed)
    assert events[1].will_retry
    retry = dispatched(events)
    assert [(d.step, d.attempt) for d in retry] == [("story", 2)]
    late = sim.send(succeeded(story))
    assert [type(e).__name__ for e in late] == ["ReportIgnored"], "a late result is recorded as ignored"
    assert sim.send(succeeded(story)) == [], "and only once"
    assert sim.state is not None
    assert sim.state.steps["story"].last_error is not None
    assert sim.state.steps["story"].attempts == 2


def test_a_final_failure_fails_the_job_with_a_clear_error() -> None:
    sim = Sim()
    story = dispatched(sim.send(submit()))[0]
    events = sim.send(failed(story, retryable=False))
    assert isinstance(events[-1], JobFailed)
    assert {e.step for e in events if isinstance(e, StepSkipped)} == {
        "cover",
        "narration",
        "audio",
        "thumbnail",
        "package",
    }
    assert sim.state is not None
    assert sim.state.status == JobStatus.FAILED
    assert sim.state.last_error is not None
    assert sim.state.last_error.code == "step_failed"


def test_attempts_are_bounded_by_max_attempts() -> None:
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    for _ in range(10):
        nxt = dispatched(sim.send(failed(d)))
        if not nxt:
            break
        d = nxt[0]
    assert sim.state is not None
    assert sim.state.status == JobStatus.FAILED
    assert sim.state.steps["story"].attempts == 3


def test_unknown_kind_is_recorded_as_a_failed_job() -> None:
    sim = Sim()
    events = sim.send(submit(kind="opera"))
    assert isinstance(events[-1], JobFailed)
    assert events[-1].error.code == "unknown_job_kind"


def test_an_input_its_kind_cannot_take_fails_the_job_with_the_field_named() -> None:
    """A command that came around the gateway is held to the same schema: no worker sees it."""
    sim = Sim()
    bad = {"prompt": "p", "capability": "tts", "seed": "abc"}
    events = sim.send(SubmitJob(kind="task", title="t", input=bad))
    assert [type(e) for e in events] == [JobSubmitted, JobFailed]
    failed = events[-1]
    assert isinstance(failed, JobFailed)
    assert failed.error.code == "validation_failed"
    assert "seed" in failed.error.message


def test_each_step_gets_its_share_of_the_input_never_the_whole_of_it() -> None:
    sim = Sim()
    job_input = {"prompt": "a fox", "age": 5, "project": "p1", "seed": 7}
    [story] = dispatched(sim.send(SubmitJob(kind="story", title="The Fox", input=job_input)))
    assert story.params == {
        "title": "The Fox", "kind": "story", "prompt": "a fox", "age": 5, "seed": 7, "project": "p1",
    }  # fmt: skip
    assert story.inputs == {}
    by_step = {d.step: d for d in dispatched(sim.send(succeeded(story)))}
    assert set(by_step) == {"cover", "narration"}
    cover = by_step["cover"]
    assert "input" not in cover.params, "never the whole input"
    assert "prompt" not in cover.params, "the cover is drawn from the story's text"
    assert cover.params == {"title": "The Fox", "kind": "story", "size": 1024, "seed": 7, "project": "p1"}
    assert list(cover.inputs) == ["story.out"], "the text it needs, as a blob reference"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_delivery_order_with_duplicates_succeeds_once_per_step(data: st.DataObject) -> None:
    """Reports arrive in any order, any number of times; each step succeeds exactly once."""
    sim = Sim()
    outbox = [m for d in dispatched(sim.send(submit())) for m in (started(d), succeeded(d))]
    while outbox:
        message = outbox.pop(data.draw(st.integers(0, len(outbox) - 1)))
        if data.draw(st.booleans()):
            outbox.append(message)  # delivered again later
        for d in dispatched(sim.send(message)):
            outbox += [started(d), succeeded(d)]
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED
    wins = [e.step for e in sim.events() if isinstance(e, StepSucceeded)]
    assert sorted(wins) == sorted(sim.state.steps)
    assert sim.replay() == sim.state
