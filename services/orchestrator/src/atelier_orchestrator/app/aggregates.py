"""The loop that serves an aggregate other than the job: load, decide, append with the expected
sequence, relay; again from a fresh read when another writer got in first.

A message handled before (redelivered, or already among the aggregate's recent causes) decides
nothing, but what it caused is relayed again: a crash may have come between the append and the
relay, and relaying is idempotent (the messages it sends have ids derived from the commit).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from atelier_contracts.aggregates import Addressed, LogCommit
from atelier_contracts.ids import new_message_id
from atelier_orchestrator.adapters.aggregatelog import AggregateLog
from atelier_orchestrator.adapters.eventstore import ConcurrencyConflict
from atelier_orchestrator.domain.aggregate import Ctx, Versioned
from atelier_orchestrator.domain.decide import Rejected

log = logging.getLogger(__name__)

S = TypeVar("S", bound=Versioned)
C = TypeVar("C")
E = TypeVar("E")


@dataclass(frozen=True)
class Decided(Generic[S, E]):
    events: list[E]
    state: S | None


class TooManyConflicts(Exception):
    pass


class AggregateService(Generic[S, C, E]):
    def __init__(
        self,
        log: AggregateLog[S, E],
        decide: Callable[[S | None, C, Ctx], list[E]],
        relay: Callable[[LogCommit[E], int, S], Awaitable[object]],
        clock: Callable[[], datetime],
        max_conflicts: int = 25,
    ) -> None:
        self.log = log
        self.decide = decide
        self.relay = relay
        self.clock = clock
        self.max_conflicts = max_conflicts

    async def handle(self, message: Addressed[C], redelivered: bool = False) -> Decided[S, E]:
        fresh = False  # a cached state may lag another replica's appends: confirm before refusing
        for _ in range(self.max_conflicts):
            state, seq = await self.log.load(message.to)
            ctx = Ctx(id=message.to, tenant=message.tenant, now=self.clock(), msg_id=message.msg_id)
            try:
                events = self.decide(state, message.body, ctx)
            except Rejected:
                if fresh:
                    raise
                self.log.forget(message.to)
                fresh = True
                continue
            if not events:
                # "Nothing to do" is only true of the current state: a cached one may lag another
                # replica's appends (the end of a job it fired), so confirm it on a fresh read.
                if not fresh:
                    self.log.forget(message.to)
                    fresh = True
                    continue
                if state is not None and (redelivered or message.msg_id in state.recent_causes):
                    await self._relay_again(message, state)
                return Decided([], state)
            commit = LogCommit[E](
                commit_id=new_message_id(),
                to=message.to,
                tenant=message.tenant,
                causation_id=message.msg_id,
                prev_seq=seq,
                at=ctx.now,
                events=events,
            )
            try:
                after, seq = await self.log.append(commit, state)
            except ConcurrencyConflict:
                fresh = True
                continue
            await self.relay(commit, seq, after)
            return Decided(events, after)
        raise TooManyConflicts(message.to)

    async def _relay_again(self, message: Addressed[C], state: S) -> None:
        async for commit, seq in self.log.read(message.to):
            if commit.causation_id == message.msg_id:
                await self.relay(commit, seq, state)
