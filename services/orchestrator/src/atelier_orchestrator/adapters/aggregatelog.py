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

from atelier_contracts.aggregates import LogCommit
from atelier_contracts.envelope import encode
from atelier_orchestrator.adapters.eventstore import ConcurrencyConflict, append_expected, read_subject

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
        async for data, seq in read_subject(self.js, self.stream, self.subject(key), after):
            yield self.decoder.decode(data), seq

    async def append(self, commit: LogCommit[E], before: S | None) -> tuple[S, int]:
        """Append if the aggregate's last sequence is still ``commit.prev_seq``; the state after
        it (``before`` with the commit folded in) and its sequence."""
        subject = self.subject(commit.to)
        try:
            seq = await append_expected(
                self.js, subject, encode(commit), commit.commit_id, commit.prev_seq, self.timeout
            )
        except ConcurrencyConflict:
            self.forget(commit.to)
            raise
        after = self.apply(before, commit, seq)
        self._remember(commit.to, after, seq)
        return after, seq

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)

    def _remember(self, key: str, state: S, seq: int) -> None:
        self._cache[key] = (state, seq)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
