"""What a schedule's commits ask for outside it (each firing's job, the jobs ``cancel_other``
cancels), and the ticker that asks schedules to fire what is due.

The ticker runs in every orchestrator replica, like the deadline sweeper: the ``Tick``'s message
id is derived from the schedule and its due fire time, so JetStream keeps one of the replicas'
identical ticks, and the schedule's log decides each fire time once whatever arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from atelier_contracts.aggregates import Addressed, LogCommit
from atelier_contracts.commands import CancelJob, Command, SubmitJob
from atelier_contracts.common import Origin
from atelier_contracts.envelope import Envelope
from atelier_contracts.runtime.service import every
from atelier_contracts.schedules import ScheduleCommand, ScheduleEvent, ScheduleFired, Tick
from atelier_contracts.subjects import schedule_command_subject
from atelier_orchestrator.domain.schedule import ScheduleState

log = logging.getLogger(__name__)

SubmitCommand = Callable[[Envelope[Command]], Awaitable[None]]


class ScheduleRelay:
    def __init__(self, send: SubmitCommand, clock: Callable[[], datetime]) -> None:
        self.send = send
        self.clock = clock

    async def on_commit(self, commit: LogCommit[ScheduleEvent], seq: int, schedule: ScheduleState) -> None:
        for i, event in enumerate(commit.events):
            if not isinstance(event, ScheduleFired):
                continue
            for job_id in event.cancels:
                reason = f"schedule {commit.to}: cancel_other, fired at {event.fire_time.isoformat()}"
                await self.send(
                    self._envelope(commit, f"{i}:cancel:{job_id}", job_id, CancelJob(reason=reason))
                )
            await self.send(
                self._envelope(commit, str(i), event.job_id, firing_job(commit.to, event, schedule))
            )

    def _envelope(
        self, commit: LogCommit[ScheduleEvent], suffix: str, job_id: str, body: Command
    ) -> Envelope[Command]:
        msg_id = f"{commit.commit_id}:{suffix}"
        return Envelope[Command](
            msg_id=msg_id,
            job_id=job_id,
            tenant=commit.tenant,
            correlation_id=commit.causation_id,
            causation_id=msg_id,
            sent_at=self.clock(),
            body=body,
        )


def firing_job(schedule_id: str, event: ScheduleFired, schedule: ScheduleState) -> SubmitJob:
    template = schedule.spec.template
    return SubmitJob(
        kind=template.kind,
        title=template.title or f"{template.kind} at {event.fire_time.isoformat()}",
        input=template.input,
        priority=template.priority,
        tags=list(template.tags),
        origin=Origin(schedule=schedule_id, fire_time=event.fire_time),
    )


class DueSchedules(Protocol):
    async def due(self, now: datetime, limit: int) -> list[tuple[str, str, datetime]]: ...


class ScheduleTicker:
    def __init__(
        self,
        schedules: DueSchedules,
        send: Callable[[str, Addressed[Any]], Awaitable[None]],
        clock: Callable[[], datetime],
        interval_s: float = 1.0,
        batch: int = 500,
    ) -> None:
        self.schedules = schedules
        self.send = send
        self.clock = clock
        self.interval_s = interval_s
        self.batch = batch

    async def tick_once(self) -> int:
        now = self.clock()
        due = await self.schedules.due(now, self.batch)
        for schedule_id, tenant, fire_at in due:
            tick = Addressed[ScheduleCommand](
                msg_id=f"tick.{schedule_id}.{fire_at.isoformat()}",
                to=schedule_id,
                tenant=tenant,
                sent_at=now,
                body=Tick(due=fire_at),
            )
            await self.send(schedule_command_subject(schedule_id), tick)
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval_s, self.tick_once, stop, "schedule tick")
