"""Answers the gateway's questions that only the log can answer: a job as it stood at a commit."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from atelier_contracts.envelope import encode
from atelier_contracts.queries import JOB_AT_SUBJECT, JobAt, JobAtAnswer, job_at_decoder
from atelier_contracts.snapshot import JobSnapshot
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.domain.state import apply_commit

log = logging.getLogger(__name__)


async def job_at(store: JetStreamEventStore, query: JobAt) -> JobAtAnswer:
    """Fold the job's commits up to ``query.at`` (the same fold as the live state's)."""
    state: JobSnapshot | None = None
    head = 0
    async for commit, seq in store.read(query.job_id):
        head = seq
        if seq <= query.at:
            state = apply_commit(state, commit, seq)
    if state is not None and state.tenant != query.tenant:
        return JobAtAnswer(job=None, head=0)
    return JobAtAnswer(job=state, head=head)


class JobQueries:
    def __init__(self, nc: Client, store: JetStreamEventStore) -> None:
        self.nc = nc
        self.store = store

    async def on_query(self, msg: Msg) -> None:
        try:
            query = job_at_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return  # the asker times out; nothing to answer
        try:
            answer = await job_at(self.store, query)
        except Exception:
            log.exception("answering a job-at query failed", extra={"job_id": query.job_id})
            return
        await msg.respond(encode(answer))

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self.nc.subscribe(JOB_AT_SUBJECT, queue="orchestrator", cb=self.on_query)
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()
