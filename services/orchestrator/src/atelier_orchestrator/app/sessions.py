"""What a session's commits ask for outside the session: each started round's job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from atelier_contracts.aggregates import LogCommit
from atelier_contracts.commands import Command, SubmitJob
from atelier_contracts.common import Origin
from atelier_contracts.envelope import Envelope
from atelier_contracts.sessions import RoundStarted, SessionEvent, round_input
from atelier_orchestrator.domain.session import SessionState

SubmitCommand = Callable[[Envelope[Command]], Awaitable[None]]


class SessionRelay:
    def __init__(self, send: SubmitCommand, clock: Callable[[], datetime]) -> None:
        self.send = send
        self.clock = clock

    async def on_commit(self, commit: LogCommit[SessionEvent], seq: int, session: SessionState) -> None:
        for i, event in enumerate(commit.events):
            if isinstance(event, RoundStarted):
                await self.send(round_job(commit, i, event, session, self.clock()))


def round_job(
    commit: LogCommit[SessionEvent], index: int, event: RoundStarted, session: SessionState, now: datetime
) -> Envelope[Command]:
    """The submit of a round's job: its own input, the session's context and base beside it.
    The job id is derived from the session and round and the message id from the event, so a
    relay made again submits nothing new."""
    return Envelope[Command](
        msg_id=f"{commit.commit_id}:{index}",
        job_id=event.job_id,
        tenant=commit.tenant,
        correlation_id=commit.causation_id,
        causation_id=f"{commit.commit_id}:{index}",
        sent_at=now,
        body=SubmitJob(
            kind=session.kind,
            title=event.title,
            input={**event.input, "session": round_input(event.context, event.base)},
            priority=event.priority,
            tags=["session"],
            origin=Origin(session=commit.to, round=event.round),
        ),
    )
