"""Answers the gateway's questions that only the log can answer: a job as it stood at a commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from atelier_contracts.envelope import encode
from atelier_contracts.queries import JOB_AT_SUBJECT, JobAt, JobAtAnswer, job_at_decoder
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.domain.snapshot import JobSnapshot, view_of
from atelier_orchestrator.domain.state import apply_commit

log = logging.getLogger(__name__)


async def job_at(store: JetStreamEventStore, query: JobAt) -> JobAtAnswer:
    """Fold the job's commits up to ``query.at`` (the same fold as the live state's)."""
    state: JobSnapshot | None = None
    async for commit, seq in store.read(query.job_id):
        if seq > query.at:
            break
        state = apply_commit(state, commit, seq)
    if state is not None and state.tenant != query.tenant:
        return JobAtAnswer(job=None)
    return JobAtAnswer(job=view_of(state) if state is not None else None)


MAX_AT_ONCE = 8
"""Queries folded at once per replica (one long log does not hold up the others)."""


class JobQueries:
    def __init__(self, nc: Client, store: JetStreamEventStore) -> None:
        self.nc = nc
        self.store = store
        self._room = asyncio.Semaphore(MAX_AT_ONCE)
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_query(self, msg: Msg) -> None:
        # nats-py runs one subscription's callbacks one after another: fold in a task of its own.
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        async with self._room:
            try:
                query = job_at_decoder.decode(msg.data)
                answer = await job_at(self.store, query)
            except msgspec.DecodeError as exc:
                answer = JobAtAnswer(job=None, error=f"undecodable query: {exc}")
            except Exception as exc:
                log.exception("answering a job-at query failed")
                answer = JobAtAnswer(job=None, error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await msg.respond(encode(answer))

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self.nc.subscribe(JOB_AT_SUBJECT, queue="orchestrator", cb=self.on_query)
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()
            for task in list(self._tasks):
                task.cancel()
