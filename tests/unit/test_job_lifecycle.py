"""Lifecycle rules of the job aggregate: cancel, requeue, retry one step, update, delete, deadlines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atelier_contracts.commands import (
    CancelJob,
    DeleteJob,
    ExpireDeadlines,
    RequeueJob,
    RetryStep,
    UpdateJob,
)
from atelier_contracts.events import (
    JobEvent,
    JobFailed,
    ReportIgnored,
    StepDispatched,
    StepRedelivered,
    StepRetryScheduled,
    StepSucceeded,
)
from atelier_contracts.snapshot import JobStatus, StepStatus
from atelier_orchestrator.domain.decide import Rejected
from tests.unit.story_sim import Sim, failed, started, submit, succeeded


def dispatched(events: list[JobEvent]) -> list[StepDispatched]:
    return [e for e in events if isinstance(e, StepDispatched)]


def names(events: list[JobEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def finish(sim: Sim, queue: list[StepDispatched], fail: frozenset[str] = frozenset()) -> None:
    while queue:
        d = queue.pop(0)
        sim.send(started(d))
        if d.step in fail:
            sim.send(failed(d, retryable=False))
        else:
            queue += dispatched(sim.send(succeeded(d)))


def test_cancel_stops_every_unsettled_step_and_records_late_results_as_ignored() -> None:
    sim = Sim()
    story = dispatched(sim.send(submit()))[0]
    sim.send(started(story))
    events = sim.send(CancelJob(reason="changed my mind"))
    assert names(events) == ["StepCancelled"] * 6 + ["JobCancelled"]
    assert sim.state is not None
    assert sim.state.status == JobStatus.CANCELLED
    late = sim.send(succeeded(story))
    assert isinstance(late[0], ReportIgnored)
    assert late[0].reason == "job cancelled"
    assert sim.send(succeeded(story)) == [], "recorded once"
    assert sim.send(CancelJob()) == [], "a second cancel is a no-op"


def test_a_finished_job_cannot_be_cancelled_or_requeued_while_running() -> None:
    sim = Sim()
    finish(sim, dispatched(sim.send(submit())))
    with pytest.raises(Rejected) as err:
        sim.send(CancelJob())
    assert err.value.code == "illegal_transition"
    sim2 = Sim()
    sim2.send(submit())
    with pytest.raises(Rejected) as err:
        sim2.send(RequeueJob())
    assert err.value.code == "illegal_transition"


def test_commands_for_an_unknown_job_are_rejected_as_not_found() -> None:
    for command in (CancelJob(), RequeueJob(), RetryStep(step="cover"), UpdateJob(title="x"), DeleteJob()):
        with pytest.raises(Rejected) as err:
            Sim().send(command)
        assert err.value.code == "job_not_found"


def test_requeue_keeps_succeeded_steps_and_runs_the_rest_with_new_attempt_numbers() -> None:
    sim = Sim()
    finish(sim, dispatched(sim.send(submit())), fail=frozenset({"cover"}))
    assert sim.state is not None
    assert sim.state.status == JobStatus.FAILED
    assert sim.state.steps["narration"].status == StepStatus.SUCCEEDED
    events = sim.send(RequeueJob())
    assert names(events)[0] == "JobRequeued"
    again = dispatched(events)
    assert [(d.step, d.attempt) for d in again] == [("cover", 2)], "only the failed step; a fresh work id"
    assert sim.state.attempts == 2
    finish(sim, again)
    assert sim.state.status == JobStatus.SUCCEEDED
    assert sim.replay() == sim.state


def test_retry_one_step_redoes_it_and_what_depends_on_it_only() -> None:
    sim = Sim()
    finish(sim, dispatched(sim.send(submit())), fail=frozenset({"cover"}))
    events = sim.send(RetryStep(step="cover"))
    assert names(events)[0] == "StepRetryRequested"
    assert events[0].reset == ["cover", "thumbnail", "package"]  # type: ignore[union-attr]
    assert [d.step for d in dispatched(events)] == ["cover"]
    assert sim.state is not None
    assert sim.state.status == JobStatus.PARTIAL_READY, "the story text is still there to read"
    with pytest.raises(Rejected) as err:
        sim.send(RetryStep(step="cover"))
    assert err.value.code == "asset_already_running"
    with pytest.raises(Rejected) as err:
        sim.send(RetryStep(step="poster"))
    assert err.value.code == "step_not_found"
    finish(sim, dispatched(events))
    assert sim.state.status == JobStatus.SUCCEEDED
    wins = [e.step for e in sim.events() if isinstance(e, StepSucceeded)]
    assert wins.count("story") == 1, "the text was not regenerated"


def test_retries_back_off_exponentially_with_deterministic_jitter() -> None:
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    delays = []
    for _ in range(2):
        events = sim.send(failed(d))
        scheduled = next(e for e in events if isinstance(e, StepRetryScheduled))
        delays.append(scheduled.delay_s)
        d = dispatched(events)[0]
        assert d.not_before == scheduled.due_at
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0
    assert sim.replay() == sim.state


def test_final_error_classes_fail_fast() -> None:
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    bad = failed(d)
    from msgspec.structs import replace

    events = sim.send(replace(bad, code="prompt_invalid"))
    assert "StepRetryScheduled" not in names(events)
    assert sim.state is not None
    assert sim.state.status == JobStatus.FAILED


def test_a_step_past_its_deadline_times_out_and_is_retried() -> None:
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    sim.send(started(d))
    assert sim.send(ExpireDeadlines()) == [], "nothing is due yet"
    assert d.deadline_at is not None
    sim.clock += 200  # past the 120 s step deadline, within the job's hour
    events = sim.send(ExpireDeadlines())
    assert names(events)[:2] == ["StepFailed", "StepRetryScheduled"]
    assert events[0].error.code == "step_timeout"  # type: ignore[union-attr]


def test_a_job_past_its_deadline_fails_and_its_steps_are_cancelled() -> None:
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    sim.send(started(d))
    sim.clock += 4000
    events = sim.send(ExpireDeadlines())
    assert names(events)[-1] == "JobFailed"
    assert events[-1].error.code == "job_deadline_exceeded"  # type: ignore[union-attr]
    assert sim.state is not None
    assert sim.state.next_deadline is None


def test_a_worker_that_vanished_mid_step_is_recorded_when_another_takes_over() -> None:
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    sim.send(started(d))
    from msgspec.structs import replace

    events = sim.send(replace(started(d), delivery=2, worker="ai@other:2"))
    assert [type(e) for e in events] == [StepRedelivered]
    assert sim.send(replace(started(d), delivery=2, worker="ai@other:2")) == [], "a repeat of the same"


def test_update_records_only_changes_and_delete_is_a_tombstone() -> None:
    sim = Sim()
    sim.send(submit())
    assert sim.send(UpdateJob(title="The Lighthouse Cat")) == [], "same title: nothing changed"
    events = sim.send(UpdateJob(title="New", priority=5, tags=["a"]))
    assert names(events) == ["JobUpdated"]
    assert sim.state is not None
    assert (sim.state.title, sim.state.priority, sim.state.tags) == ("New", 5, ["a"])
    events = sim.send(DeleteJob())
    assert names(events)[-1] == "JobDeleted"
    assert "JobCancelled" in names(events), "deleting a live job stops its work"
    assert sim.state.deleted
    with pytest.raises(Rejected):
        sim.send(UpdateJob(title="again"))


def test_deadlines_move_with_the_work() -> None:
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    assert sim.state is not None
    assert sim.state.next_deadline == d.deadline_at
    assert d.deadline_at is not None
    assert d.deadline_at - sim.state.created_at <= timedelta(seconds=121)


COMMANDS = st.sampled_from(["cancel", "requeue", "retry_cover", "expire", "work", "fail", "dup", "update"])


@settings(max_examples=200, deadline=None)
@given(st.lists(COMMANDS, max_size=40), st.data())
def test_any_sequence_of_commands_and_reports_folds_to_the_same_state_on_replay(
    actions: list[str], data: st.DataObject
) -> None:
    """Random interleavings: decide never crashes (only Rejected), replay equals the live fold."""
    sim = Sim()
    outbox = [m for d in dispatched(sim.send(submit())) for m in (started(d), succeeded(d))]
    sent: list[object] = []
    for action in actions:
        try:
            if action in ("work", "fail", "dup") and outbox:
                msg = outbox.pop(data.draw(st.integers(0, len(outbox) - 1)))
                if action == "fail" and hasattr(msg, "outputs"):
                    d = next(
                        e for e in sim.events() if isinstance(e, StepDispatched) and e.work_id == msg.work_id
                    )
                    msg = failed(d, retryable=data.draw(st.booleans()))
                if action == "dup" and sent:
                    msg = data.draw(st.sampled_from(sent))
                sent.append(msg)
                events = sim.send(msg)  # type: ignore[arg-type]
            elif action == "cancel":
                events = sim.send(CancelJob())
            elif action == "requeue":
                events = sim.send(RequeueJob())
            elif action == "retry_cover":
                events = sim.send(RetryStep(step="cover"))
            elif action == "expire":
                sim.clock += data.draw(st.integers(0, 400))
                events = sim.send(ExpireDeadlines())
            else:
                events = sim.send(UpdateJob(priority=data.draw(st.integers(0, 9))))
        except Rejected:
            continue
        outbox += [m for d in dispatched(events) for m in (started(d), succeeded(d))]
    state = sim.state
    assert state is not None
    assert sim.replay() == state
    if state.status in JobStatus.TERMINAL:
        assert not any(s.status in ("dispatched", "running") for s in state.steps.values())
    wins = [(e.step, e.attempt) for e in sim.events() if isinstance(e, StepSucceeded)]
    assert len(wins) == len(set(wins)), "no attempt succeeded twice"


def test_provider_calls_are_recorded_and_a_cooling_hint_delays_the_retry() -> None:
    from atelier_contracts.common import ProviderAttempt
    from atelier_contracts.events import ProviderCalled
    from tests.unit.story_sim import T0

    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    calls = [
        ProviderAttempt(
            provider="a", model="m1", outcome="failed", started_at=T0, error_class="rate_limited"
        ),
        ProviderAttempt(
            provider="b", model="m2", outcome="skipped", started_at=T0, error_class="cooling_down"
        ),
    ]
    from msgspec.structs import replace

    events = sim.send(replace(failed(d), code="providers_unavailable", attempts=calls, retry_after_s=30.0))
    assert names(events)[:3] == ["JobStarted", "ProviderCalled", "ProviderCalled"]
    assert [e.call.provider for e in events if isinstance(e, ProviderCalled)] == ["a", "b"]
    scheduled = next(e for e in events if isinstance(e, StepRetryScheduled))
    assert scheduled.delay_s == 30.0, "no sooner than the first provider comes back"
    win = replace(succeeded(dispatched(events)[0]), fallbacks=["fell back to b/m2: a/m1 answered 429"])
    sim.send(win)
    assert sim.state is not None
    assert sim.state.steps["story"].fallbacks == ["fell back to b/m2: a/m1 answered 429"]


def test_a_redelivered_command_is_not_decided_twice() -> None:
    sim = Sim()
    finish(sim, dispatched(sim.send(submit())), fail=frozenset({"cover"}))
    first = sim.send(RetryStep(step="cover"), msg_id="cmd-1")  # type: ignore[arg-type]
    assert first
    finish(sim, dispatched(first))
    assert sim.send(RetryStep(step="cover"), msg_id="cmd-1") == [], "the same message again"  # type: ignore[arg-type]
    assert sim.send(RetryStep(step="cover"), msg_id="cmd-2"), "a new request regenerates again"  # type: ignore[arg-type]


def test_regenerating_an_asset_long_after_submission_gets_a_fresh_deadline() -> None:
    sim = Sim()
    finish(sim, dispatched(sim.send(submit())))
    sim.clock += 7200
    again = sim.send(RetryStep(step="cover"))
    assert sim.send(ExpireDeadlines()) == [], "the old deadline no longer applies"
    finish(sim, dispatched(again))
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED


def test_a_step_whose_prerequisite_failed_cannot_be_retried_alone() -> None:
    sim = Sim()
    finish(sim, dispatched(sim.send(submit())), fail=frozenset({"cover"}))
    with pytest.raises(Rejected) as err:
        sim.send(RetryStep(step="thumbnail"))
    assert (err.value.code, "cover" in err.value.message) == ("illegal_transition", True)


def test_waiting_for_cooling_providers_uses_no_attempts_until_the_deadline() -> None:
    """Attempts that called nobody (every provider cooling) do not count; the job deadline ends it."""
    from msgspec.structs import replace

    from atelier_contracts.common import ProviderAttempt
    from tests.unit.story_sim import T0

    skipped = [
        ProviderAttempt(
            provider="a", model="m1", outcome="skipped", started_at=T0, error_class="cooling_down"
        )
    ]
    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    delays = []
    for _ in range(10):  # far more than max_attempts (3)
        events = sim.send(
            replace(failed(d), code="providers_unavailable", attempts=skipped, retry_after_s=1.5)
        )
        scheduled = next(e for e in events if isinstance(e, StepRetryScheduled))
        assert scheduled.waiting
        delays.append(scheduled.delay_s)
        d = dispatched(events)[0]
        sim.clock += scheduled.delay_s
    # No sooner than the providers can answer; backing off while the wait goes on, up to 30 s.
    assert delays == [1.5, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert sim.state is not None
    assert sim.state.steps[d.step].run_attempts == 1, "ten waits, still the first try"
    # A real failure still counts: three of them end the step as before.
    for _ in range(2):
        d = dispatched(sim.send(failed(d)))[0]
    assert not dispatched(sim.send(failed(d))), "the third failure is the last"
    assert sim.state.steps[d.step].status == StepStatus.FAILED
    # And a wait past the job's deadline is not scheduled.
    sim2 = Sim()
    d2 = dispatched(sim2.send(submit()))[0]
    events = sim2.send(
        replace(failed(d2), code="providers_unavailable", attempts=skipped, retry_after_s=10 * 3600)
    )
    assert not any(isinstance(e, StepRetryScheduled) for e in events)
    assert isinstance(events[-1], JobFailed), "the step fails, and with it the job"


def test_a_budget_alert_from_a_worker_is_an_event_in_the_job_log() -> None:
    from msgspec.structs import replace

    from atelier_contracts.common import BudgetAlert
    from atelier_contracts.events import BudgetAlerted

    sim = Sim()
    d = dispatched(sim.send(submit()))[0]
    alert = BudgetAlert(tenant="t", project="spring", period="2026-11", spent_usd=8.1, limit_usd=10.0)
    events = sim.send(replace(succeeded(d), alerts=[alert]))
    assert [e.alert for e in events if isinstance(e, BudgetAlerted)] == [alert]


def test_the_provider_calls_and_alerts_of_an_ignored_report_are_still_recorded_once() -> None:
    """A late result is not used, but its calls were made (and billed): usage must count them."""
    from msgspec.structs import replace

    from atelier_contracts.common import BudgetAlert, ProviderAttempt
    from atelier_contracts.events import BudgetAlerted, ProviderCalled
    from tests.unit.story_sim import T0

    sim = Sim()
    story = dispatched(sim.send(submit()))[0]
    sim.send(CancelJob())
    call = ProviderAttempt(provider="a", model="m1", outcome="succeeded", started_at=T0)
    alert = BudgetAlert(tenant="t", period="2026-11", spent_usd=8.5, limit_usd=10.0)
    late = replace(succeeded(story), attempts=[call], alerts=[alert])
    events = sim.send(late)
    assert names(events) == ["ProviderCalled", "BudgetAlerted", "ReportIgnored"]
    assert [e.call for e in events if isinstance(e, ProviderCalled)] == [call]
    assert [e.alert for e in events if isinstance(e, BudgetAlerted)] == [alert]
    assert sim.send(late) == [], "a redelivered late report records nothing more"
