"""Rebuild the read models from the job event log, from its first commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import nats.errors
import sqlalchemy as sa
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.envelope import commit_decoder
from atelier_contracts.events import Commit
from atelier_contracts.readmodel import READ_MODEL_TABLES
from atelier_contracts.subjects import JOBS_STREAM
from atelier_orchestrator.adapters.projection import Applied, SqlProjection

log = logging.getLogger(__name__)


async def read_log(js: JetStreamContext, batch: int = 500) -> AsyncIterator[tuple[Commit, int]]:
    """Every commit in the stream up to its last sequence when the read began, in order."""
    info = await js.stream_info(JOBS_STREAM)
    last = info.state.last_seq
    if info.state.messages == 0:
        return
    sub = await js.pull_subscribe(
        "atelier.job.>",
        stream=JOBS_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=30,
        ),
    )
    try:
        seq = 0
        while seq < last:
            try:
                msgs = await asyncio.wait_for(sub.fetch(batch, timeout=2), timeout=10)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                if seq > last:
                    return
                yield commit_decoder.decode(msg.data), seq
                if msg.metadata.num_pending == 0:
                    return  # nothing after it (the stream's last sequences may have been purged)
    finally:
        await sub.unsubscribe()


async def rebuild(js: JetStreamContext, engine: AsyncEngine, chunk: int = 1000) -> int:
    """Empty the read models and fold the whole log into them. Returns the commits applied."""
    async with engine.begin() as conn:
        for table in reversed(READ_MODEL_TABLES):
            await conn.execute(sa.delete(table))
    applied = 0
    pending: list[tuple[Commit, int]] = []
    projection = SqlProjection(engine)
    writing: asyncio.Task[None] | None = None

    async def write(commits: list[tuple[Commit, int]]) -> None:
        nonlocal applied
        for (commit, seq), outcome in zip(commits, await projection.apply_batch(commits), strict=True):
            if outcome is not Applied.APPLIED:
                raise RuntimeError(f"replay of seq {seq} for {commit.job_id} was {outcome.value}")
            applied += 1

    async def flush() -> None:
        # The next chunk is read from the log while this one is written.
        nonlocal writing, pending
        if writing is not None:
            await writing
        writing = asyncio.create_task(write(pending))
        pending = []

    try:
        async for item in read_log(js):
            pending.append(item)
            if len(pending) >= chunk:
                await flush()
        if pending:
            await flush()
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
        projection.close()
    log.info("rebuilt read models", extra={"commits": applied})
    return applied
