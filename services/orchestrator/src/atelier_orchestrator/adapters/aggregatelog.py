"""An aggregate's log on JetStream (sessions, schedules): one subject per aggregate, appends
guarded by the expected last subject sequence, recent states kept so a busy one is not re-read.

The job log (``eventstore.py``) is the same idea with the job's own commit; a stale cached state
only costs the conflict its append then gets, after which the caller reloads from the log.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from atelier_contracts.aggregates import LogCommit
from atelier_contracts.envelope import encode
from atelier_contracts.subjects import EXPECTED_LAST_SUBJECT_SEQ_HEADER, MSG_ID_HEADER
from atelier_orchestrator.adapters.eventstore import WRONG_LAST_SEQUENCE, ConcurrencyConflict

S = TypeVar("S")
E = TypeVar("E")


class AggregateLog(Generic[S, E]):
    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: Callable[[str], str],
        decoder: msgspec.json.Decoder[LogCommit[E]],
        apply: Callable[[S | None, LogCommit[E], int], S],
        cache_size: int = 1000,
        timeout: float = 5.0,
    ) -> None:
        self.js = js
        self.stream = stream
        self.subject = subject
        self.decoder = decoder
        self.apply = apply
        self.timeout = timeout
        self._cache: OrderedDict[str, tuple[S, int]] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, key: str) -> tuple[S | None, int]:
        """The state and the stream sequence of its last commit (``None, 0``: no such aggregate)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        state: S | None = None
        seq = 0
        async for commit, seq in self.read(key):
            state = self.apply(state, commit, seq)
        if state is not None:
            self._remember(key, state, seq)
        return state, seq

    async def read(self, key: str, after: int = 0) -> AsyncIterator[tuple[LogCommit[E], int]]:
        next_seq = after + 1
        while True:
            try:
                msg = await self.js.get_msg(
                    self.stream, seq=next_seq, subject=self.subject(key), next=True, direct=True
                )
            except NotFoundError:
                return
            assert msg.data is not None
            assert msg.seq is not None
            yield self.decoder.decode(msg.data), msg.seq
            next_seq = msg.seq + 1

    async def append(self, commit: LogCommit[E], before: S | None) -> tuple[S, int]:
        """Append if the aggregate's last sequence is still ``commit.prev_seq``; the state after
        it (``before`` with the commit folded in) and its sequence."""
        try:
            ack = await self.js.publish(
                self.subject(commit.to),
                encode(commit),
                timeout=self.timeout,
                headers={
                    MSG_ID_HEADER: commit.commit_id,
                    EXPECTED_LAST_SUBJECT_SEQ_HEADER: str(commit.prev_seq),
                },
            )
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                self.forget(commit.to)
                raise ConcurrencyConflict(commit.to) from exc
            raise
        if ack.duplicate:
            self.forget(commit.to)
            raise ConcurrencyConflict(commit.to)
        after = self.apply(before, commit, ack.seq)
        self._remember(commit.to, after, ack.seq)
        return after, ack.seq

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)

    def _remember(self, key: str, state: S, seq: int) -> None:
        self._cache[key] = (state, seq)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
