"""The job event log on JetStream: one subject per job, appends guarded by the expected sequence."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator

from msgspec.structs import replace
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from atelier_contracts.envelope import commit_decoder, encode
from atelier_contracts.events import Commit
from atelier_contracts.runtime.publish import publish
from atelier_contracts.subjects import (
    JOBS_STREAM,
    job_subject,
)
from atelier_orchestrator.adapters import job_metrics
from atelier_orchestrator.domain.snapshot import JobSnapshot
from atelier_orchestrator.domain.state import apply_commit

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071


class ConcurrencyConflict(Exception):
    """Another writer appended to the job since we read it: reload and decide again."""


async def read_subject(
    js: JetStreamContext, stream: str, subject: str, after: int = 0
) -> AsyncIterator[tuple[bytes, int]]:
    """Every message of one log subject after stream sequence ``after`` (direct gets, in order)."""
    next_seq = after + 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=next_seq, subject=subject, next=True, direct=True)
        except NotFoundError:
            return
        assert msg.data is not None
        assert msg.seq is not None
        yield msg.data, msg.seq
        next_seq = msg.seq + 1


async def append_expected(
    js: JetStreamContext, subject: str, payload: bytes, msg_id: str, prev_seq: int, wait_s: float
) -> int:
    """Append ``payload`` to a log subject if its last sequence is still ``prev_seq``; its
    sequence, or ``ConcurrencyConflict`` (another writer got in first, or it is a duplicate)."""
    try:
        ack = await publish(
            js, subject, payload, msg_id=msg_id, expected_last_subject_seq=prev_seq, wait_s=wait_s
        )
    except APIError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            raise ConcurrencyConflict(subject) from exc
        raise
    if ack.duplicate:
        raise ConcurrencyConflict(subject)
    return ack.seq


class JetStreamEventStore:
    """Loads a job by folding its commits; keeps recent snapshots so a hot job is not re-read.

    The cache is only an optimisation: a stale entry makes the append fail with
    :class:`ConcurrencyConflict`, and the caller reloads from the log.
    """

    def __init__(self, js: JetStreamContext, cache_size: int = 10_000, timeout: float = 5.0) -> None:
        self.js = js
        self.timeout = timeout
        self._cache: OrderedDict[str, tuple[JobSnapshot, int]] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, job_id: str, assume_new: bool = False) -> tuple[JobSnapshot | None, int]:
        """The job's snapshot and the stream sequence of its last commit (0: no such job).

        ``assume_new`` skips the read of a job not in the cache and takes it as empty: right for a
        new job, and a wrong guess only costs the conflict its append then gets.
        """
        if job_id in self._cache:
            self._cache.move_to_end(job_id)
            return self._cache[job_id]
        if assume_new:
            return None, 0
        state: JobSnapshot | None = None
        seq = 0
        async for commit, commit_seq in self.read(job_id):
            state = apply_commit(state, commit, commit_seq)
            seq = commit_seq
        if state is not None:
            self._remember(job_id, state, seq)
        return state, seq

    async def read(self, job_id: str, after: int = 0) -> AsyncIterator[tuple[Commit, int]]:
        """Yield ``(commit, seq)`` for the job's commits after stream sequence ``after``."""
        async for data, seq in read_subject(self.js, JOBS_STREAM, job_subject(job_id), after):
            yield commit_decoder.decode(data), seq

    async def append(self, commit: Commit, new_state: JobSnapshot) -> int:
        """Append the commit if the job's last sequence is still ``commit.prev_seq``."""
        try:
            seq = await append_expected(
                self.js,
                job_subject(commit.job_id),
                encode(commit),
                commit.commit_id,
                commit.prev_seq,
                self.timeout,
            )
        except ConcurrencyConflict:
            self.forget(commit.job_id)
            raise
        self._remember(commit.job_id, replace(new_state, version=seq), seq)
        job_metrics.observe(commit, new_state)
        return seq

    async def last_seq(self, job_id: str) -> int:
        """The stream sequence of the job's last commit, read from the server (0: none)."""
        try:
            msg = await self.js.get_last_msg(JOBS_STREAM, job_subject(job_id), direct=True)
        except NotFoundError:
            return 0
        return msg.seq or 0

    def forget(self, job_id: str) -> None:
        self._cache.pop(job_id, None)

    def _remember(self, job_id: str, state: JobSnapshot, seq: int) -> None:
        self._cache[job_id] = (state, seq)
        self._cache.move_to_end(job_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
