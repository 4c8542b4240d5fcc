"""The schedule aggregate: pure ``decide`` and ``evolve``, time and ids passed in.

A ``Tick`` fires what is due since the schedule's ``next_fire_at``: fire times older than the
catch-up window are skipped as missed, the rest go through the overlap policy. A firing's job id
is derived from the schedule and the fire time, so one fire time is one job however many
replicas tick (one append wins; a second submit of the same job is no second job). The relay
submits the job; its end comes back as ``EndFiring``.
"""

from __future__ import annotations

from datetime import datetime

from msgspec.structs import replace

from atelier_contracts import ids
from atelier_contracts.aggregates import LogCommit
from atelier_contracts.schedules import (
    RECENT_FIRINGS,
    CreateSchedule,
    DeleteSchedule,
    EndFiring,
    FireBuffered,
    FiresSkipped,
    Firing,
    FiringEnded,
    NextFireMoved,
    PauseSchedule,
    ResumeSchedule,
    ScheduleCommand,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleEvent,
    ScheduleFired,
    SchedulePaused,
    ScheduleResumed,
    ScheduleSpec,
    ScheduleUpdated,
    ScheduleView,
    Tick,
    TriggerSchedule,
    UpdateSchedule,
)
from atelier_orchestrator.domain.aggregate import Ctx, fold, public, seen
from atelier_orchestrator.domain.decide import Rejected

MAX_DUE = 1000
"""Fire times within the catch-up window fired per tick (the next tick goes on from there)."""
MAX_MISSED = 100_000
"""Missed fire times counted at most, after a downtime (a per-second cron down for a day)."""


class ScheduleState(ScheduleView, frozen=True, kw_only=True):
    request_hash: str = ""
    recent_causes: list[str] = []


def firing_job_id(schedule_id: str, fire_time: datetime, manual: bool = False) -> str:
    return ids.derived_id("job", schedule_id, fire_time.isoformat(), "manual" if manual else "cron")


def _first_fire(spec: ScheduleSpec, now: datetime) -> datetime | None:
    upcoming = spec.fire_times(after=now, limit=1)
    return upcoming[0] if upcoming else None


def decide(state: ScheduleState | None, command: ScheduleCommand, ctx: Ctx) -> list[ScheduleEvent]:
    # A tick is idempotent by ``next_fire_at`` alone: one decided before finds nothing due, and
    # one whose id is that of an earlier tick (a stale read model) must still fire what is due.
    if seen(state, ctx) and not isinstance(command, Tick):
        return []
    if isinstance(command, CreateSchedule):
        if state is not None:
            if state.request_hash == command.request_hash:
                return []
            raise Rejected("idempotency_key_reused", "this schedule was created by another request")
        first = None if command.paused else _first_fire(command.spec, ctx.now)
        return [
            ScheduleCreated(
                spec=command.spec,
                paused=command.paused,
                next_fire_at=first,
                request_hash=command.request_hash,
            )
        ]
    if state is None or (state.status == "deleted" and not isinstance(command, EndFiring)):
        raise Rejected("schedule_not_found", f"no schedule {ctx.id}")
    d = _Decision(state, ctx)
    match command:
        case UpdateSchedule():
            first = _first_fire(command.spec, ctx.now) if state.status == "active" else None
            d.emit(ScheduleUpdated(spec=command.spec, next_fire_at=first))
        case PauseSchedule():
            if state.status == "active":
                d.emit(SchedulePaused(note=command.note))
        case ResumeSchedule():
            if state.status == "paused":
                d.emit(ScheduleResumed(next_fire_at=_first_fire(state.spec, ctx.now)))
        case DeleteSchedule():
            d.emit(ScheduleDeleted())
        case TriggerSchedule():
            d.fire(ctx.now, manual=True)
        case Tick():
            d.tick(command.due)
        case EndFiring():
            d.end(command)
    return d.events


class _Decision:
    """Events decided so far, each folded into ``state`` at once, so a later choice (the next due
    fire time's overlap) sees the earlier ones."""

    def __init__(self, state: ScheduleState, ctx: Ctx) -> None:
        self.state = state
        self.ctx = ctx
        self.events: list[ScheduleEvent] = []

    def emit(self, event: ScheduleEvent) -> None:
        self.events.append(event)
        self.state = evolve(self.state, event, self.ctx.id, self.ctx.tenant, self.ctx.now)

    def tick(self, due_by: datetime | None) -> None:
        s = self.state
        # The ticker found ``due_by`` due; this replica's clock may be a moment behind its own.
        now = max(self.ctx.now, due_by) if due_by is not None else self.ctx.now
        if s.status != "active" or s.next_fire_at is None or s.next_fire_at > now:
            return
        oldest_kept = now - s.spec.catchup()
        if s.next_fire_at < oldest_kept:  # after downtime: what is older than the window is missed
            missed = [
                s.next_fire_at,
                *s.spec.fire_times(after=s.next_fire_at, until=oldest_kept, limit=MAX_MISSED),
            ]
            missed = [t for t in missed if t < oldest_kept]
            self.emit(FiresSkipped(reason="missed", first=missed[0], last=missed[-1], count=len(missed)))
            due = s.spec.fire_times(after=missed[-1], until=now, limit=MAX_DUE)
            due = [t for t in due if t >= oldest_kept]
        else:
            due = [s.next_fire_at, *s.spec.fire_times(after=s.next_fire_at, until=now, limit=MAX_DUE - 1)]
        for t in due:
            self.fire(t)
        # More due in the window than one tick fires: the next tick goes on after the last fired.
        after = due[-1] if len(due) >= MAX_DUE else now
        self.emit(NextFireMoved(next_fire_at=_first_fire(s.spec, after)))

    def fire(self, fire_time: datetime, manual: bool = False) -> None:
        s = self.state
        job_id = firing_job_id(self.ctx.id, fire_time, manual)
        if any(f.job_id == job_id for f in s.recent):
            return  # fired before
        if s.running and s.spec.overlap in ("skip", "buffer_one"):
            if s.spec.overlap == "buffer_one" and s.buffered is None and not manual:
                self.emit(FireBuffered(fire_time=fire_time))
            else:
                self.emit(FiresSkipped(reason="overlap", first=fire_time, last=fire_time))
            return
        cancels = list(s.running) if s.spec.overlap == "cancel_other" else []
        self.emit(ScheduleFired(fire_time=fire_time, job_id=job_id, manual=manual, cancels=cancels))

    def end(self, command: EndFiring) -> None:
        open_ = [
            f
            for f in self.state.recent
            if f.job_id == command.job_id and f.status in ("running", "cancelling")
        ]
        if command.job_id not in self.state.running and not open_:
            return  # ended before, or not one of ours
        self.emit(FiringEnded(job_id=command.job_id, status=command.status))
        s = self.state
        if s.buffered is not None and not s.running and s.status == "active":
            self.fire(s.buffered)


def evolve_commit(
    state: ScheduleState | None, event: ScheduleEvent, commit: LogCommit[ScheduleEvent]
) -> ScheduleState:
    return evolve(state, event, commit.to, commit.tenant, commit.at)


def evolve(
    state: ScheduleState | None, event: ScheduleEvent, schedule_id: str, tenant: str, at: datetime
) -> ScheduleState:
    if isinstance(event, ScheduleCreated):
        return ScheduleState(
            id=schedule_id,
            tenant=tenant,
            spec=event.spec,
            status="paused" if event.paused else "active",
            next_fire_at=event.next_fire_at,
            created_at=at,
            updated_at=at,
            request_hash=event.request_hash,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before ScheduleCreated in schedule {schedule_id}")
    state = replace(state, updated_at=at)
    match event:
        case ScheduleUpdated():
            buffered = state.buffered if event.spec.overlap == "buffer_one" else None
            return replace(state, spec=event.spec, next_fire_at=event.next_fire_at, buffered=buffered)
        case SchedulePaused():  # what fell due before the pause does not fire after it either
            return replace(state, status="paused", note=event.note, next_fire_at=None, buffered=None)
        case ScheduleResumed():
            return replace(state, status="active", note="", next_fire_at=event.next_fire_at)
        case ScheduleDeleted():
            return replace(state, status="deleted", next_fire_at=None, buffered=None)
        case ScheduleFired():
            # The jobs it cancels are no longer counted as running; their ends still come back.
            firing = Firing(fire_time=event.fire_time, job_id=event.job_id, manual=event.manual)
            buffered = None if state.buffered == event.fire_time else state.buffered
            recent = [
                replace(f, status="cancelling") if f.job_id in event.cancels else f for f in state.recent
            ]
            return replace(
                state,
                running=[*(j for j in state.running if j not in event.cancels), event.job_id],
                recent=[*recent, firing][-RECENT_FIRINGS:],
                buffered=buffered,
                fired=state.fired + 1,
            )
        case FireBuffered():
            return replace(state, buffered=event.fire_time)
        case FiresSkipped():
            return replace(state, skipped=state.skipped + event.count)
        case NextFireMoved():
            return replace(state, next_fire_at=event.next_fire_at)
        case FiringEnded():
            recent = [
                replace(f, status=event.status) if f.job_id == event.job_id else f for f in state.recent
            ]
            return replace(state, running=[j for j in state.running if j != event.job_id], recent=recent)
    raise AssertionError(f"unhandled event {type(event).__name__}")


def apply_commit(state: ScheduleState | None, commit: LogCommit[ScheduleEvent], seq: int) -> ScheduleState:
    return fold(evolve_commit, state, commit, seq)


def view_of(state: ScheduleState) -> ScheduleView:
    return public(state, ScheduleView)
