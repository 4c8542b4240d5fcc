"""Rebuild the read models from the job event log, from its first commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec
import sqlalchemy as sa
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.aggregates import LogCommit
from atelier_contracts.envelope import commit_decoder
from atelier_contracts.events import Commit
from atelier_contracts.readmodel import READ_MODEL_TABLES
from atelier_contracts.runtime.pull import read_stream, stream_sequence
from atelier_contracts.subjects import JOBS_STREAM
from atelier_orchestrator.adapters.documents import DocumentProjection
from atelier_orchestrator.adapters.projection import Applied, SqlProjection

S = TypeVar("S")
E = TypeVar("E")

log = logging.getLogger(__name__)


async def read_log(nc: Client, after: int = 0) -> AsyncIterator[tuple[Commit, int]]:
    """Every commit in the log after sequence ``after`` up to its last when the read began."""
    async for msg in read_stream(nc, JOBS_STREAM, "atelier.job.>", after):
        yield commit_decoder.decode(msg.data), stream_sequence(msg)


async def rebuild(nc: Client, engine: AsyncEngine, chunk: int = 1000) -> int:
    """Empty the read models and fold the whole log into them. Returns the commits applied."""
    async with engine.begin() as conn:
        for table in reversed(READ_MODEL_TABLES):
            await conn.execute(sa.delete(table))
    applied = 0
    pending: list[tuple[Commit, int]] = []
    projection = SqlProjection(engine, sole_writer=True)
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
        async for item in read_log(nc):
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


async def rebuild_documents(
    nc: Client,
    stream: str,
    subjects: str,
    decoder: msgspec.json.Decoder[LogCommit[E]],
    projection: DocumentProjection[S, E],
    chunk: int = 500,
) -> int:
    """Fold a whole aggregate log (sessions) into its emptied read model; the commits applied."""
    applied = 0
    pending: list[tuple[LogCommit[E], int]] = []

    async def write() -> None:
        nonlocal applied, pending
        for (commit, seq), outcome in zip(pending, await projection.apply_batch(pending), strict=True):
            if outcome is not Applied.APPLIED:
                raise RuntimeError(f"replay of seq {seq} for {commit.to} was {outcome.value}")
            applied += 1
        pending = []

    async for msg in read_stream(nc, stream, subjects, 0):
        pending.append((decoder.decode(msg.data), stream_sequence(msg)))
        if len(pending) >= chunk:
            await write()
    if pending:
        await write()
    log.info("rebuilt a read model", extra={"stream": stream, "commits": applied})
    return applied
