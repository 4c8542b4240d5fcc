"""Schedules: a job template started on a cron, in a time zone, with an overlap policy.

A schedule is the third aggregate: its log is ``atelier.schedule.<id>``, its commands ride
``atelier.schedulecmd.<id>``. Each fire time makes at most one job, whose id is derived from the
schedule and the fire time: however many orchestrator replicas tick, one append wins and a job
submitted twice is one job. The overlap policies are Temporal's: ``skip``, ``buffer_one``,
``allow_all``, ``cancel_other``. Cron expressions are read by croniter (five fields, or six with
seconds last).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import CroniterBadDateError, croniter

Overlap = Literal["skip", "buffer_one", "allow_all", "cancel_other"]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Tag = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]

MAX_CATCHUP_WINDOW_S = 7 * 86400.0
RECENT_FIRINGS = 20
"""How many firings a schedule's view lists."""


class JobTemplate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The job each firing submits (its input is checked against the kind when the schedule is
    made or changed, as a submit's would be)."""

    kind: str
    title: Title | None = None
    input: dict[str, Any]
    priority: Annotated[int, msgspec.Meta(ge=0, le=9)] = 0
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] = []


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cron: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    template: JobTemplate
    overlap: Overlap = "skip"
    catchup_window_s: Annotated[float, msgspec.Meta(ge=10, le=MAX_CATCHUP_WINDOW_S)] = 300.0
    """After downtime, fire times missed by at most this long still fire; older ones are skipped
    (at least 10 s, as in Temporal: a tick comes a moment after its fire time)."""

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong with the expression or the zone, as (field, message)."""
        out = []
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a directory
            out.append(("timezone", f"not an IANA time zone: {self.timezone!r}"))
        if len(self.cron.split()) not in (5, 6) or not croniter.is_valid(self.cron):
            out.append(("cron", f"not a cron expression of 5 or 6 fields croniter reads: {self.cron!r}"))
        elif not out and not self.fire_times(after=datetime.now(UTC), limit=1):
            out.append(("cron", f"{self.cron!r} never fires (e.g. 30 February)"))
        return out

    def fire_times(self, after: datetime, until: datetime | None = None, limit: int = 5) -> list[datetime]:
        """The fire times after ``after`` (up to ``until``, at most ``limit``), in UTC."""
        zone = ZoneInfo(self.timezone)
        it = croniter(self.cron, after.astimezone(zone))
        out: list[datetime] = []
        while len(out) < limit:
            try:
                t: datetime = it.get_next(datetime).astimezone(UTC)
            except CroniterBadDateError:  # no more fire times (croniter looks some years ahead)
                break
            if until is not None and t > until:
                break
            out.append(t)
        return out

    def catchup(self) -> timedelta:
        return timedelta(seconds=self.catchup_window_s)


# --- commands -------------------------------------------------------------------------------


class CreateSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="create_schedule"):
    spec: ScheduleSpec
    paused: bool = False
    request_hash: str = ""


class UpdateSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="update_schedule"):
    spec: ScheduleSpec


class PauseSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="pause_schedule"):
    note: str = ""


class ResumeSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="resume_schedule"):
    pass


class TriggerSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="trigger_schedule"):
    """Fire now, outside the cron (the overlap policy still applies)."""


class DeleteSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="delete_schedule"):
    pass


class Tick(msgspec.Struct, frozen=True, kw_only=True, tag="tick"):
    """Sent by the orchestrators' tickers: fire what is due by ``due`` (the fire time the ticker
    found due; the deciding replica's clock may be a moment behind the ticker's)."""

    due: datetime | None = None


class EndFiring(msgspec.Struct, frozen=True, kw_only=True, tag="end_firing"):
    """Relayed from a scheduled job's log when it ends."""

    job_id: str
    status: str


ScheduleCommand = (
    CreateSchedule
    | UpdateSchedule
    | PauseSchedule
    | ResumeSchedule
    | TriggerSchedule
    | DeleteSchedule
    | Tick
    | EndFiring
)


# --- events ---------------------------------------------------------------------------------


class ScheduleCreated(msgspec.Struct, frozen=True, kw_only=True, tag="schedule_created"):
    spec: ScheduleSpec
    paused: bool
    next_fire_at: datetime | None
    request_hash: str = ""


class ScheduleUpdated(msgspec.Struct, frozen=True, kw_only=True, tag="schedule_updated"):
    spec: ScheduleSpec
    next_fire_at: datetime | None


class SchedulePaused(msgspec.Struct, frozen=True, kw_only=True, tag="schedule_paused"):
    note: str = ""


class ScheduleResumed(msgspec.Struct, frozen=True, kw_only=True, tag="schedule_resumed"):
    next_fire_at: datetime | None
    """Resuming does not fire what fell due while paused: the cron goes on from now."""


class ScheduleFired(msgspec.Struct, frozen=True, kw_only=True, tag="schedule_fired"):
    fire_time: datetime
    job_id: str
    manual: bool = False
    cancels: list[str] = []
    """``cancel_other``: the running jobs this firing cancels."""


class FireBuffered(msgspec.Struct, frozen=True, kw_only=True, tag="fire_buffered"):
    """``buffer_one``: a fire time waits for the running job to end."""

    fire_time: datetime


class FiresSkipped(msgspec.Struct, frozen=True, kw_only=True, tag="fires_skipped"):
    """Fire times that made no job: ``overlap`` (a job was running), ``missed`` (older than the
    catch-up window after downtime)."""

    reason: Literal["overlap", "missed"]
    first: datetime
    last: datetime
    count: int = 1


class NextFireMoved(msgspec.Struct, frozen=True, kw_only=True, tag="next_fire_moved"):
    """The cron's next fire time after the due ones were handled."""

    next_fire_at: datetime | None


class FiringEnded(msgspec.Struct, frozen=True, kw_only=True, tag="firing_ended"):
    job_id: str
    status: str


class ScheduleDeleted(msgspec.Struct, frozen=True, kw_only=True, tag="schedule_deleted"):
    pass


ScheduleEvent = (
    ScheduleCreated
    | ScheduleUpdated
    | SchedulePaused
    | ScheduleResumed
    | ScheduleFired
    | FireBuffered
    | FiresSkipped
    | NextFireMoved
    | FiringEnded
    | ScheduleDeleted
)


# --- the public view ------------------------------------------------------------------------


class Firing(msgspec.Struct, frozen=True, kw_only=True):
    fire_time: datetime
    job_id: str
    manual: bool = False
    status: str = "running"


class ScheduleView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant: str
    spec: ScheduleSpec
    status: Literal["active", "paused", "deleted"]
    note: str = ""
    """Why it is paused: the pause's note (empty while active)."""
    next_fire_at: datetime | None = None
    running: list[str] = []
    """Jobs of this schedule not ended yet."""
    buffered: datetime | None = None
    recent: list[Firing] = []
    """The latest firings, newest last."""
    fired: int = 0
    skipped: int = 0
    created_at: datetime
    updated_at: datetime
    version: int = 0
    upcoming: list[datetime] = []
    """The next fire times (up to five), computed when the schedule is read."""

    def with_upcoming(self, count: int = 5) -> ScheduleView:
        if self.next_fire_at is None:
            return self
        later = self.spec.fire_times(after=self.next_fire_at, limit=count - 1)
        return msgspec.structs.replace(self, upcoming=[self.next_fire_at, *later])


class ScheduleList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ScheduleView]
