"""Dynamic fan-out: a step's result plans new steps (``StepsPlanned``), bounded, split, never lost."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from atelier_contracts.commands import SubmitJob
from atelier_contracts.envelope import encode
from atelier_contracts.events import (
    JobFailed,
    JobSucceeded,
    StepDispatched,
    StepFailed,
    StepsPlanned,
    StepSucceeded,
)
from atelier_contracts.snapshot import JobStatus, StepStatus
from atelier_contracts.work import WorkSucceeded
from atelier_orchestrator.app.handlers import split_events
from atelier_orchestrator.domain.decide import Context, decide
from tests.unit.story_sim import Sim, started, succeeded


def dispatched(events: list[object]) -> list[StepDispatched]:
    return [e for e in events if isinstance(e, StepDispatched)]


def gallery(count: int = 3) -> SubmitJob:
    return SubmitJob(kind="gallery", title="Foxes", input={"prompt": "foxes", "count": count, "size": 256})


def ideas_done(d: StepDispatched, items: object) -> WorkSucceeded:
    return replace(succeeded(d), data={"items": items})


def test_the_ideas_plan_one_picture_each_and_the_package_waits_for_all() -> None:
    sim = Sim()
    [ideas] = dispatched(sim.send(gallery()))
    assert ideas.step == "ideas"
    events = sim.send(ideas_done(ideas, ["a red fox", "a fox asleep", "two foxes"]))
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("StepsPlanned") < kinds.index("StepSucceeded"), "planned before it succeeds"
    [planned] = [e for e in events if isinstance(e, StepsPlanned)]
    assert [s.name for s in planned.steps] == ["picture_001", "picture_002", "picture_003"]
    assert planned.needs == {"package": ["picture_001", "picture_002", "picture_003"]}
    pictures = dispatched(events)
    assert [p.params["prompt"] for p in pictures] == ["a red fox", "a fox asleep", "two foxes"]
    assert all("input" not in p.params and p.params["size"] == 256 for p in pictures)
    assert sim.state is not None
    assert list(sim.state.steps) == ["ideas", "picture_001", "picture_002", "picture_003", "package"]
    assert sim.state.steps["package"].status == StepStatus.PENDING
    for p in pictures[:-1]:
        assert dispatched(sim.send(succeeded(p))) == [], "the package needs every picture"
    [package] = dispatched(sim.send(succeeded(pictures[-1])))
    assert package.step == "package"
    assert sorted(package.inputs) == ["ideas.out", *(f"picture_00{i}.out" for i in (1, 2, 3))]
    sim.send(succeeded(package))
    assert sim.state.status == JobStatus.SUCCEEDED
    assert sim.replay() == sim.state


def test_a_plan_wider_than_the_bound_fails_the_step_and_the_job() -> None:
    sim = Sim(max_fan_out=2)
    [ideas] = dispatched(sim.send(gallery()))
    events = sim.send(ideas_done(ideas, ["a", "b", "c"]))
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert failed[0].error.code == "plan_too_large"
    assert not any(isinstance(e, StepsPlanned) for e in events)
    assert isinstance(events[-1], JobFailed)


@pytest.mark.parametrize("items", [None, [], "a list", [1, 2], ["ok", "  "]])
def test_a_result_that_is_not_a_list_fails_the_attempt_and_is_retried(items: object) -> None:
    sim = Sim()
    [ideas] = dispatched(sim.send(gallery()))
    events = sim.send(ideas_done(ideas, items))
    [failure] = [e for e in events if isinstance(e, StepFailed)]
    assert failure.error.code == "plan_invalid"
    assert "cannot be planned from" in failure.error.message
    assert not any(isinstance(e, StepSucceeded | StepsPlanned) for e in events)
    [retry] = dispatched(events)
    assert (retry.step, retry.attempt) == ("ideas", 2), "another model answer may be a list"


def test_a_plan_cut_short_is_completed_when_the_report_comes_again() -> None:
    """The first commit of a large plan made it into the log, the rest did not (a crash): the
    report comes again and plans what is missing, nothing twice."""
    whole, cut = Sim(), Sim()
    items = [f"idea {i}" for i in range(150)]
    [ideas] = dispatched(whole.send(gallery(150)))
    cut.send(gallery(150))
    report = ideas_done(ideas, items)
    full = whole.send(report)
    first = split_events(full, 4096)[0]
    cut.commit(first)
    again = cut.send(report)
    planned = [s.name for e in [*first, *again] if isinstance(e, StepsPlanned) for s in e.steps]
    assert len(planned) == 150 == len(set(planned)), "none lost, none twice"
    assert any(isinstance(e, StepSucceeded) and e.step == "ideas" for e in again)
    assert whole.state is not None
    assert cut.state is not None
    assert list(cut.state.steps) == list(whole.state.steps)
    assert cut.state.steps["package"].needs == whole.state.steps["package"].needs


def test_a_plan_too_large_for_one_commit_is_cut_into_plans_that_say_the_same() -> None:
    whole, cut = Sim(), Sim()
    [ideas] = dispatched(whole.send(gallery(150)))
    cut.send(gallery(150))
    ctx = Context(whole.job_id, whole.tenant, whole.now())
    events = decide(whole.state, ideas_done(ideas, [f"idea {i}" for i in range(150)]), ctx)
    runs = split_events(events, 4096)
    assert len(runs) > 10
    assert all(len(encode(run)) + 64 * len(run) <= 4096 for run in runs), "each commit within budget"
    assert [e for run in runs for e in run] != events, "the plan itself was cut, not only the list of events"
    for run in runs:
        cut.commit(run, ctx.now)
    whole.commit(events, ctx.now)
    assert whole.state is not None
    assert cut.state is not None
    assert cut.state.steps == whole.state.steps
    assert split_events(events) == [events], "within the default budget: one commit"


@settings(max_examples=100, deadline=None)
@given(st.data(), st.integers(1, 12))
def test_any_delivery_order_with_duplicates_runs_each_planned_step_once(
    data: st.DataObject, count: int
) -> None:
    sim = Sim()
    items = [f"idea {i}" for i in range(count)]

    def reports(d: StepDispatched) -> list[object]:
        done = ideas_done(d, items) if d.step == "ideas" else succeeded(d)
        return [started(d), done]

    outbox = [m for d in dispatched(sim.send(gallery(count))) for m in reports(d)]
    while outbox:
        message = outbox.pop(data.draw(st.integers(0, len(outbox) - 1)))
        if data.draw(st.booleans()):
            outbox.append(message)  # delivered again later
        for d in dispatched(sim.send(message)):  # type: ignore[arg-type]
            outbox += reports(d)
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED
    wins = Counter(e.step for e in sim.events() if isinstance(e, StepSucceeded))
    assert wins == dict.fromkeys(sim.state.steps, 1)
    assert len(sim.state.steps) == count + 2
    planned = [s.name for e in sim.events() if isinstance(e, StepsPlanned) for s in e.steps]
    assert len(planned) == count == len(set(planned))
    assert any(isinstance(e, JobSucceeded) for e in sim.events())
    assert sim.replay() == sim.state


def test_a_decision_whose_tail_was_lost_is_finished_when_the_report_comes_again() -> None:
    """A conflict or crash after the commit with the step's success, before the one with the
    dispatches: the redelivered report is a repeat, and the job is healed from its state."""
    whole, cut = Sim(), Sim()
    items = [f"idea {i}" for i in range(5)]
    [ideas] = dispatched(whole.send(gallery(5)))
    cut.send(gallery(5))
    report = ideas_done(ideas, items)
    full = whole.send(report)
    upto = next(i for i, e in enumerate(full) if isinstance(e, StepSucceeded)) + 1
    cut.commit(full[:upto])  # the dispatches never made it into the log
    healed = dispatched(cut.send(report))
    assert sorted(d.step for d in healed) == [f"picture_{i:03d}" for i in range(1, 6)]
    assert dispatched(cut.send(report)) == [], "healed once: nothing more to do"


def test_provider_calls_are_recorded_once_when_a_plan_is_made_again() -> None:
    from datetime import UTC, datetime

    from atelier_contracts.common import ProviderAttempt
    from atelier_contracts.events import ProviderCalled

    whole, cut = Sim(), Sim()
    [ideas] = dispatched(whole.send(gallery(150)))
    cut.send(gallery(150))
    call = ProviderAttempt(provider="offline", model="m", outcome="succeeded", started_at=datetime.now(UTC))
    report = replace(ideas_done(ideas, [f"idea {i}" for i in range(150)]), attempts=[call])
    full = whole.send(report)
    first_plan = next(i for i, e in enumerate(full) if isinstance(e, StepsPlanned)) + 1
    cut.commit(full[:first_plan])  # the call and a first part of the plan, then a crash
    again = cut.send(report)
    assert not any(isinstance(e, ProviderCalled) for e in again), "the call is in the log once"
    calls = [e for e in cut.events() if isinstance(e, ProviderCalled)]
    assert len(calls) == 1


def test_a_step_run_again_plans_anew_and_what_its_old_plan_had_more_goes() -> None:
    from atelier_contracts.commands import RetryStep

    sim = Sim()
    [ideas] = dispatched(sim.send(gallery()))
    pictures = dispatched(sim.send(ideas_done(ideas, ["a red fox", "an arctic fox", "a fennec"])))
    for p in pictures:
        events = sim.send(succeeded(p))
    [package] = dispatched(events)
    sim.send(succeeded(package))
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED
    [ideas2] = dispatched(sim.send(RetryStep(step="ideas"), "retry-1"))  # type: ignore[arg-type]
    replanned = sim.send(ideas_done(ideas2, ["an owl"]))
    [picture] = dispatched(replanned)
    assert (picture.step, picture.params["prompt"]) == ("picture_001", "an owl"), "its new spec"
    assert set(sim.state.steps) == {"ideas", "picture_001", "package"}, "the old plan's others are gone"
    assert sim.state.steps["package"].needs == ("ideas", "picture_001")
    [package2] = dispatched(sim.send(succeeded(picture)))
    sim.send(succeeded(package2))
    assert sim.state.status == JobStatus.SUCCEEDED
    assert sim.replay() == sim.state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(st.data(), st.integers(1, 40))
def test_decisions_cut_short_anywhere_and_redelivered_lose_and_double_nothing(
    data: st.DataObject, count: int
) -> None:
    """Crashes between the commits of a large decision, anywhere: a random prefix of a
    decision's events is appended and the message comes again later (as JetStream redelivers
    what was not acked). Every step still succeeds exactly once, and replay equals the state."""
    sim = Sim()
    items = [f"idea {i}" for i in range(count)]

    def reports(d: StepDispatched) -> list[object]:
        done = ideas_done(d, items) if d.step == "ideas" else succeeded(d)
        return [started(d), done]

    outbox: list[object] = [gallery(count)]  # the submit too may be cut short
    while outbox:
        message = outbox.pop(data.draw(st.integers(0, len(outbox) - 1)))
        now = sim.now()
        events = decide(sim.state, message, Context(sim.job_id, sim.tenant, now))  # type: ignore[arg-type]
        runs = split_events(events, 1024)  # as the handler appends them: commit by commit
        keep = data.draw(st.integers(0, len(runs))) if len(runs) > 1 else len(runs)
        if data.draw(st.booleans()):
            keep = len(runs)  # most decisions land whole
        landed = [e for run in runs[:keep] for e in run]
        sim.commit(landed, now)
        if keep < len(runs):
            outbox.append(message)  # cut short by a crash: not acked, delivered again
        for d in dispatched(landed):
            outbox += reports(d)
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED, sim.state.status
    wins = Counter(e.step for e in sim.events() if isinstance(e, StepSucceeded))
    assert wins == dict.fromkeys(sim.state.steps, 1)
    assert len(sim.state.steps) == count + 2
    assert sim.replay() == sim.state
