"""Use cases: turn a command or a work report into appended events; turn events into work.

Each handler is idempotent: a redelivered message decides no new events, and a dispatch is
published with the work id as its message id.

The log is the outbox, relayed by the handler that appended to it: after the append and before
the message is acked, the commit's work items and cancellations are published. A crash in between
redelivers the message; it then decides nothing new, and the commits it caused are read back
from the log and relayed again (``docs/benchmarks.md``: a separate consumer on the log cost two
deliveries and two acks a commit).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from msgspec.structs import replace

from atelier_contracts import ids
from atelier_contracts.aggregates import Addressed
from atelier_contracts.commands import Command, SubmitJob
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.events import (
    Commit,
    EventRecord,
    JobCancelled,
    JobDeleted,
    JobEvent,
    JobFailed,
    JobSucceeded,
    StepCancelled,
    StepDispatched,
    StepFailed,
    StepsPlanned,
)
from atelier_contracts.ids import new_message_id
from atelier_contracts.schedules import EndFiring, ScheduleCommand
from atelier_contracts.sessions import Candidate, EndRound, RoundStatus, SessionCommand
from atelier_contracts.snapshot import StepStatus
from atelier_contracts.subjects import schedule_command_subject, session_command_subject
from atelier_contracts.work import WorkItem, WorkReport
from atelier_orchestrator.adapters.eventstore import ConcurrencyConflict
from atelier_orchestrator.domain.decide import DEFAULT_MAX_FAN_OUT, Context, Rejected, decide
from atelier_orchestrator.domain.snapshot import JobSnapshot
from atelier_orchestrator.domain.state import apply_commit

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventStore(Protocol):
    """The job event log: load a job's snapshot, append a commit with an expected sequence."""

    async def load(self, job_id: str, assume_new: bool = False) -> tuple[JobSnapshot | None, int]: ...

    async def append(self, commit: Commit, new_state: JobSnapshot) -> int: ...

    async def last_seq(self, job_id: str) -> int: ...

    def forget(self, job_id: str) -> None: ...

    def read(self, job_id: str, after: int = 0) -> AsyncIterator[tuple[Commit, int]]: ...


class WorkQueue(Protocol):
    """Where work items go; a repeated ``work_id`` must not create a second item."""

    async def put(self, envelope: Envelope[WorkItem], capability: str, priority: int) -> None: ...

    async def cancel(self, job_id: str, seq: int) -> None:
        """Tell workers to skip the job's work dispatched before commit ``seq`` and abandon what runs.

        Work dispatched by a later commit (a requeue, a retried step) is not affected, however
        late this cancellation arrives.
        """

    async def abandon(self, job_id: str, work_id: str) -> None:
        """Tell the worker running ``work_id`` to stop: the attempt timed out."""


class TooManyConflicts(Exception):
    pass


@dataclass(frozen=True)
class Decision:
    """What handling a message decided: its events (none for a redelivery) and the job after them."""

    events: list[JobEvent]
    job: JobSnapshot | None


Relay = Callable[[Commit, int, JobSnapshot | None], Awaitable[object]]
"""Sends on what a commit asks for; the job as it stands after it (None: not known here)."""
"""Publishes what an appended commit asks of the world (work items, cancellations); idempotent."""


async def _no_relay(commit: Commit, seq: int, job: JobSnapshot | None) -> None:
    return None


MAX_COMMIT_BYTES = 256 * 1024
"""A decision larger than this (a big plan) is appended as several commits, in order, each well
under NATS's largest message (1 MiB by default)."""


def split_events(events: list[JobEvent], budget: int = MAX_COMMIT_BYTES) -> list[list[JobEvent]]:
    """The events in order, cut into runs whose JSON stays within ``budget`` bytes; a plan too
    large for one commit is cut into smaller plans that say the same."""
    if len(encode(events)) + 64 * len(events) <= budget:
        return [events]  # nearly every decision: one measure, one commit
    runs: list[list[JobEvent]] = [[]]
    size = 0
    for event, cost in _sized(events, budget):
        if runs[-1] and size + cost > budget:
            runs.append([])
            size = 0
        runs[-1].append(event)
        size += cost
    return runs


def _sized(events: Iterable[JobEvent], budget: int) -> Iterator[tuple[JobEvent, int]]:
    for event in events:
        cost = len(encode(event)) + 64  # the record around it
        if cost > budget and isinstance(event, StepsPlanned) and len(event.steps) > 1:
            yield from _sized(event.halves(), budget)
        else:
            yield event, cost


class JobService:
    def __init__(
        self,
        store: EventStore,
        relay: Relay = _no_relay,
        clock: Clock = utc_now,
        max_conflicts: int = 25,
        max_fan_out: int = DEFAULT_MAX_FAN_OUT,
        commit_budget: int = MAX_COMMIT_BYTES,
    ) -> None:
        self.store = store
        self.relay = relay
        self.clock = clock
        self.max_conflicts = max_conflicts
        self.max_fan_out = max_fan_out
        self.commit_budget = commit_budget

    async def handle(
        self, envelope: Envelope[Command] | Envelope[WorkReport], redelivered: bool = False
    ) -> Decision:
        """Decide, append and relay the commits. A message that was handled before (it is
        ``redelivered``, or the job's log already holds commits it caused: a dead letter sent
        again) may have been appended before a crash kept it from being relayed: every commit it
        caused is relayed again (idempotent: the work ids are message ids)."""
        decision = await self._decide_and_append(envelope)
        caused = decision.job is not None and envelope.msg_id in decision.job.recent_causes
        if redelivered or (caused and not decision.events):
            async for commit, seq in self.store.read(envelope.job_id):
                if commit.causation_id == envelope.msg_id:
                    await self.relay(commit, seq, decision.job)
        return decision

    async def _decide_and_append(self, envelope: Envelope[Command] | Envelope[WorkReport]) -> Decision:
        """Decide and append, retrying from a fresh read while other writers get in first. A
        decision too large for one commit is appended as several; if another writer gets in
        between, the rest is decided again on the new state (a plan then plans what is missing)."""
        appended: list[JobEvent] = []
        for attempt in range(self.max_conflicts):
            # A submit is almost always of a new job: append to an empty log without reading it.
            new = attempt == 0 and isinstance(envelope.body, SubmitJob)
            state, seq = await self.store.load(envelope.job_id, assume_new=new)
            now = self.clock()
            ctx = Context(
                job_id=envelope.job_id,
                tenant=envelope.tenant,
                now=now,
                msg_id=envelope.msg_id,
                max_fan_out=self.max_fan_out,
            )
            try:
                events = decide(state, envelope.body, ctx)
            except Rejected:
                # A refusal, too, is only true of the current state: confirm before answering it.
                if await self.store.last_seq(envelope.job_id) == seq:
                    raise
                self.store.forget(envelope.job_id)
                continue
            if not events:
                # "Nothing to do" is only true of the current state: a snapshot from the cache may
                # lag behind another replica's appends, so confirm before dropping the message.
                if await self.store.last_seq(envelope.job_id) == seq:
                    return Decision(events=appended, job=state)
                self.store.forget(envelope.job_id)
                continue
            for run in split_events(events, self.commit_budget):
                commit_id = new_message_id()
                commit = Commit(
                    commit_id=commit_id,
                    job_id=envelope.job_id,
                    tenant=envelope.tenant,
                    causation_id=envelope.msg_id,
                    correlation_id=envelope.correlation_id,
                    prev_seq=seq,
                    at=now,
                    events=[EventRecord(event_id=f"{commit_id}:{i}", event=e) for i, e in enumerate(run)],
                )
                new_state = apply_commit(state, commit, seq)
                try:
                    seq = await self.store.append(commit, new_state)
                except ConcurrencyConflict:
                    break  # decide the rest again on the new state
                state = replace(new_state, version=seq)
                appended.extend(run)
                await self.relay(commit, seq, state)
                log.debug("appended %d event(s)", len(run), extra={"job_id": envelope.job_id})
            else:
                return Decision(events=appended, job=state)
        raise TooManyConflicts(envelope.job_id)


SendAddressed = Callable[[str, Addressed[Any]], Awaitable[None]]
"""Sends a command to another aggregate: its subject, the command."""


async def _nowhere(subject: str, command: Addressed[Any]) -> None:
    return None


class Dispatcher:
    """Publishes the work items that ``StepDispatched`` events ask for, cancellations, and the
    end of a job that a session's round or a schedule's firing started, to that aggregate."""

    def __init__(self, queue: WorkQueue, clock: Clock = utc_now, to_origin: SendAddressed = _nowhere) -> None:
        self.queue = queue
        self.clock = clock
        self.to_origin = to_origin

    async def on_commit(self, commit: Commit, seq: int, job: JobSnapshot | None = None) -> int:
        sent = 0
        cancelled = False
        if job is not None and job.origin is not None and _ends(commit):
            for subject, notice in origin_notices(commit, seq, job, self.clock()):
                await self.to_origin(subject, notice)
        for record in commit.events:
            event = record.event
            if isinstance(event, StepCancelled | JobCancelled | JobDeleted) and not cancelled:
                await self.queue.cancel(commit.job_id, seq)
                cancelled = True
            if isinstance(event, StepFailed) and event.error.code == "step_timeout":
                await self.queue.abandon(commit.job_id, event.work_id)
            if not isinstance(event, StepDispatched):
                continue
            item = WorkItem(
                work_id=event.work_id,
                job_id=commit.job_id,
                tenant=commit.tenant,
                step=event.step,
                attempt=event.attempt,
                capability=event.capability,
                params=event.params,
                inputs=event.inputs,
                deadline=event.deadline_at,
                not_before=event.not_before,
                priority=event.priority,
                dispatch_seq=seq,
            )
            envelope = Envelope[WorkItem](
                msg_id=event.work_id,
                job_id=commit.job_id,
                tenant=commit.tenant,
                correlation_id=commit.correlation_id,
                causation_id=record.event_id,
                sent_at=self.clock(),
                body=item,
            )
            await self.queue.put(envelope, event.capability, event.priority)
            sent += 1
        return sent


_ROUND_STATUS: dict[str, RoundStatus] = {
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


def _ends(commit: Commit) -> bool:
    return any(isinstance(r.event, JobSucceeded | JobFailed | JobCancelled) for r in commit.events)


def origin_notices(
    commit: Commit, seq: int, job: JobSnapshot, now: datetime
) -> list[tuple[str, Addressed[Any]]]:
    """What a job that ended in ``commit`` tells what started it (the message ids are the
    commit's, so relaying the commit again sends nothing new)."""
    assert job.origin is not None
    out: list[tuple[str, Addressed[Any]]] = []
    if job.origin.session:
        out.append((session_command_subject(job.origin.session), round_ended(commit, seq, job, now)))
    if job.origin.schedule:
        ended = Addressed[ScheduleCommand](
            msg_id=f"{commit.commit_id}:firing",
            to=job.origin.schedule,
            tenant=job.tenant,
            sent_at=now,
            correlation_id=commit.correlation_id,
            body=EndFiring(job_id=job.id, status=job.status),
        )
        out.append((schedule_command_subject(job.origin.schedule), ended))
    return out


def round_ended(commit: Commit, seq: int, job: JobSnapshot, now: datetime) -> Addressed[SessionCommand]:
    """A session round's job ended: its status and outputs, for the session (the message id is
    the commit's, so relaying the commit again sends nothing new)."""
    assert job.origin is not None
    candidates = [
        Candidate(
            asset_id=ids.asset_id(job.id, step.name, out.name),
            step=step.name,
            name=out.name,
            kind=out.kind,
            blob=out.blob,
            meta=out.meta,
            provider=step.provider or "",
            model=step.model or "",
            fallbacks=step.fallbacks,
        )
        for step in job.steps.values()
        if step.status == StepStatus.SUCCEEDED and not step.given  # a given file is an input
        for out in step.outputs
    ]
    status = _ROUND_STATUS.get(job.status, "failed")
    return Addressed[SessionCommand](
        msg_id=f"{commit.commit_id}:round",
        to=job.origin.session,
        tenant=job.tenant,
        sent_at=now,
        correlation_id=commit.correlation_id,
        body=EndRound(
            round=job.origin.round,
            job_id=job.id,
            status=status,
            candidates=candidates,
            error=job.last_error.message if job.last_error and status != "succeeded" else "",
            error_code=job.last_error.code if job.last_error and status != "succeeded" else "",
            seq=seq,
        ),
    )
