"""The schedule aggregate, pure: fire times from croniter in a time zone, each overlap policy, the
catch-up window after downtime, pause and resume, trigger now — and, as a property, ticks and job
ends in any order, some twice, make one job per fire time and replay to the live state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atelier_contracts.aggregates import LogCommit
from atelier_contracts.schedules import (
    CreateSchedule,
    DeleteSchedule,
    EndFiring,
    FireBuffered,
    FiresSkipped,
    JobTemplate,
    Overlap,
    PauseSchedule,
    ResumeSchedule,
    ScheduleCommand,
    ScheduleEvent,
    ScheduleFired,
    ScheduleSpec,
    Tick,
    TriggerSchedule,
    UpdateSchedule,
)
from atelier_orchestrator.domain.aggregate import Ctx
from atelier_orchestrator.domain.decide import Rejected
from atelier_orchestrator.domain.schedule import ScheduleState, apply_commit, decide, firing_job_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SID = "sch_test"
TEMPLATE = JobTemplate(kind="task", input={"prompt": "p", "capability": "text.generate"})


def spec(cron: str = "*/5 * * * *", overlap: Overlap = "skip", **kw: object) -> ScheduleSpec:
    return ScheduleSpec(cron=cron, template=TEMPLATE, overlap=overlap, **kw)  # type: ignore[arg-type]


class ScheduleSim:
    def __init__(self) -> None:
        self.state: ScheduleState | None = None
        self.commits: list[tuple[LogCommit[ScheduleEvent], int]] = []
        self.n = 0

    def send(self, command: ScheduleCommand, now: datetime, msg_id: str | None = None) -> list[ScheduleEvent]:
        self.n += 1
        msg_id = msg_id or f"m{self.n}"
        events = decide(self.state, command, Ctx(SID, "t1", now, msg_id))
        if events:
            prev = self.commits[-1][1] if self.commits else 0
            commit = LogCommit[ScheduleEvent](
                commit_id=f"c{prev + 1}",
                to=SID,
                tenant="t1",
                causation_id=msg_id,
                prev_seq=prev,
                at=now,
                events=events,
            )
            self.state = apply_commit(self.state, commit, prev + 1)
            self.commits.append((commit, prev + 1))
        return events

    def fired(self) -> list[ScheduleFired]:
        return [e for c, _ in self.commits for e in c.events if isinstance(e, ScheduleFired)]

    def replay(self) -> ScheduleState | None:
        state = None
        for commit, seq in self.commits:
            state = apply_commit(state, commit, seq)
        return state


def test_fire_times_follow_the_cron_in_its_time_zone_across_daylight_saving() -> None:
    berlin = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin", template=TEMPLATE)
    times = berlin.fire_times(after=datetime(2026, 3, 27, 12, tzinfo=UTC), limit=3)
    # 02:30 local: CET (+1) before 29 March, and on 29 March 02:30 does not exist (clocks jump).
    assert times[0] == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    assert times[2] == datetime(2026, 3, 30, 0, 30, tzinfo=UTC), "CEST (+2) after"
    assert ScheduleSpec(cron="every day", template=TEMPLATE).problems()[0][0] == "cron"
    assert (
        ScheduleSpec(cron="* * * * *", timezone="Mars/Olympus", template=TEMPLATE).problems()[0][0]
        == "timezone"
    )


def test_a_tick_fires_what_is_due_once_with_a_job_id_of_the_fire_time() -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec()), T0)
    assert sim.state is not None
    assert sim.state.next_fire_at == T0 + timedelta(minutes=5)
    assert sim.send(Tick(), T0 + timedelta(minutes=4)) == [], "nothing due yet"
    events = sim.send(Tick(), T0 + timedelta(minutes=5, seconds=1))
    [fired] = [e for e in events if isinstance(e, ScheduleFired)]
    assert fired.fire_time == T0 + timedelta(minutes=5)
    assert fired.job_id == firing_job_id(SID, fired.fire_time)
    assert sim.send(Tick(), T0 + timedelta(minutes=5, seconds=2)) == [], "a second tick: nothing more"
    assert sim.state.next_fire_at == T0 + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("overlap", "jobs", "buffered", "skipped", "cancels"),
    [
        ("allow_all", 3, None, 0, 0),
        ("skip", 1, None, 2, 0),
        ("buffer_one", 1, 2, 1, 0),  # the second waits, the third is skipped
        ("cancel_other", 3, None, 0, 2),  # each cancels the one before
    ],
)
def test_each_overlap_policy(
    overlap: Overlap, jobs: int, buffered: int | None, skipped: int, cancels: int
) -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec("* * * * *", overlap)), T0)
    for minute in (1, 2, 3):  # the first job runs all the while
        sim.send(Tick(), T0 + timedelta(minutes=minute, seconds=1))
    state = sim.state
    assert state is not None
    assert len(sim.fired()) == jobs
    assert state.buffered == (T0 + timedelta(minutes=buffered) if buffered else None)
    assert state.skipped == skipped
    assert sum(len(f.cancels) for f in sim.fired()) == cancels
    if overlap == "buffer_one":
        first = sim.fired()[0].job_id
        [_, refired] = sim.send(
            EndFiring(job_id=first, status="succeeded"), T0 + timedelta(minutes=3, seconds=5)
        )
        assert isinstance(refired, ScheduleFired), "the buffered fire time runs once the job ends"
        assert refired.fire_time == T0 + timedelta(minutes=2)
        assert sim.state is not None
        assert sim.state.buffered is None


def test_after_downtime_what_fell_due_within_the_catch_up_window_fires_and_older_is_skipped() -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec("* * * * *", "allow_all", catchup_window_s=150)), T0)
    events = sim.send(Tick(), T0 + timedelta(minutes=10, seconds=30))  # down for ten minutes
    [missed] = [e for e in events if isinstance(e, FiresSkipped)]
    assert (missed.reason, missed.count) == ("missed", 7), "12:01 to 12:07: more than 150 s ago"
    assert [f.fire_time for f in sim.fired()] == [T0 + timedelta(minutes=m) for m in (8, 9, 10)]
    assert sim.state is not None
    assert sim.state.next_fire_at == T0 + timedelta(minutes=11)


def test_pause_resume_trigger_update_and_delete() -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec(), paused=True), T0)
    assert sim.state is not None
    assert (sim.state.status, sim.state.next_fire_at) == ("paused", None)
    assert sim.send(Tick(), T0 + timedelta(hours=1)) == []
    sim.send(ResumeSchedule(), T0 + timedelta(hours=1, minutes=1))
    assert sim.state.next_fire_at == T0 + timedelta(hours=1, minutes=5), "from now on, nothing made up"
    [now] = sim.send(TriggerSchedule(), T0 + timedelta(hours=1, minutes=2))
    assert isinstance(now, ScheduleFired)
    assert now.manual
    sim.send(PauseSchedule(note="maintenance"), T0 + timedelta(hours=1, minutes=3))
    assert sim.state.status == "paused"
    sim.send(UpdateSchedule(spec=spec("0 * * * *")), T0 + timedelta(hours=1, minutes=4))
    assert sim.state.spec.cron == "0 * * * *"
    assert sim.state.next_fire_at is None, "still paused"
    sim.send(DeleteSchedule(), T0 + timedelta(hours=2))
    with pytest.raises(Rejected) as gone:
        sim.send(ResumeSchedule(), T0 + timedelta(hours=2))
    assert gone.value.code == "schedule_not_found"
    assert sim.send(EndFiring(job_id=now.job_id, status="succeeded"), T0 + timedelta(hours=3)) != [], (
        "its job still ends"
    )


def test_a_buffered_fire_time_waits_while_one_more_comes() -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec("* * * * *", "buffer_one")), T0)
    sim.send(Tick(), T0 + timedelta(minutes=1, seconds=1))
    events = sim.send(Tick(), T0 + timedelta(minutes=2, seconds=1))
    assert any(isinstance(e, FireBuffered) for e in events)


@settings(max_examples=120, deadline=None)
@given(st.data(), st.sampled_from(["skip", "buffer_one", "allow_all", "cancel_other"]))
def test_ticks_and_ends_in_any_order_some_twice_make_one_job_per_fire_time(
    data: st.DataObject, overlap: Overlap
) -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec("* * * * *", overlap, catchup_window_s=600)), T0)
    now = T0
    pending: list[tuple[str, ScheduleCommand]] = []
    for _ in range(data.draw(st.integers(1, 25))):
        now += timedelta(seconds=data.draw(st.integers(1, 150)))
        choice = data.draw(st.integers(0, 3))
        if choice == 0 or not pending:
            # Two replicas tick the same fire time: the same id (as their tickers derive it), or
            # one read from a stale read model, whose id differs.
            assert sim.state is not None
            ids = [f"tick.{sim.state.next_fire_at}", data.draw(st.sampled_from(["", "tick.stale"]))]
            for tick_id in filter(None, ids):
                events = sim.send(Tick(), now, tick_id)
                pending += [
                    (f"end.{e.job_id}", EndFiring(job_id=e.job_id, status="succeeded"))
                    for e in events
                    if isinstance(e, ScheduleFired)
                ]
        else:
            msg_id, command = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
            events = sim.send(command, now, msg_id)
            pending += [
                (f"end.{e.job_id}", EndFiring(job_id=e.job_id, status="succeeded"))
                for e in events
                if isinstance(e, ScheduleFired)
            ]
            if data.draw(st.booleans()):
                pending.append((msg_id, command))  # delivered again later
    fired = sim.fired()
    assert len({f.job_id for f in fired}) == len(fired), "one job per fire time"
    assert len({f.fire_time for f in fired}) == len(fired)
    assert fired == sorted(fired, key=lambda f: f.fire_time) or overlap == "buffer_one"
    assert sim.replay() == sim.state
    state = sim.state
    assert state is not None
    if overlap in ("skip", "buffer_one"):
        assert len(state.running) <= 1, "never two at once"


def test_a_tick_fires_what_the_ticker_found_due_though_this_clock_is_behind() -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec("* * * * *", "allow_all")), T0)
    due = T0 + timedelta(minutes=1)
    events = sim.send(Tick(due=due), due - timedelta(milliseconds=40), "tick.1")
    assert [f.fire_time for f in sim.fired()] == [due], events
    # A tick under an id seen before (a read model stuck behind) still fires what is due.
    later = T0 + timedelta(minutes=2, seconds=1)
    sim.send(Tick(due=later), later, "tick.1")
    assert len(sim.fired()) == 2


def test_crons_that_never_fire_and_zones_that_are_not_zones_are_problems() -> None:
    for cron in ("0 0 30 2 *", "0 12 1 3 * 0 2026-2027"):
        assert ScheduleSpec(cron=cron, template=TEMPLATE).problems()[0][0] == "cron", cron
    assert ScheduleSpec(cron="* * * * *", timezone="Europe", template=TEMPLATE).problems()[0][0] == "timezone"
    assert ScheduleSpec(cron="0 0 30 2 *", template=TEMPLATE).fire_times(after=T0) == []


def test_a_pause_or_a_policy_without_a_buffer_drops_the_buffered_fire_time() -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec("* * * * *", "buffer_one")), T0)
    sim.send(Tick(), T0 + timedelta(minutes=1, seconds=1))
    sim.send(Tick(), T0 + timedelta(minutes=2, seconds=1))
    assert sim.state is not None
    assert sim.state.buffered is not None
    sim.send(PauseSchedule(), T0 + timedelta(minutes=2, seconds=2))
    assert sim.state.buffered is None, "what fell due before a pause does not fire after it"


def test_a_downtime_with_more_due_in_the_window_than_one_tick_fires_goes_on_at_the_next() -> None:
    sim = ScheduleSim()
    sim.send(CreateSchedule(spec=spec("* * * * *", "allow_all", catchup_window_s=7 * 86400)), T0)
    now = T0 + timedelta(minutes=1100, seconds=30)
    sim.send(Tick(), now)
    assert len(sim.fired()) == 1000
    sim.send(Tick(), now)
    assert len(sim.fired()) == 1100, "the rest of the window, at the next tick"
    assert sim.state is not None
    assert sim.state.skipped == 0
