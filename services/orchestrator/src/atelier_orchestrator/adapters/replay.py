"""Rebuild the read models from the job event log, from its first commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
import sqlalchemy as sa
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.envelope import commit_decoder
from atelier_contracts.events import Commit
from atelier_contracts.readmodel import READ_MODEL_TABLES
from atelier_contracts.runtime.pull import PullRequests, stream_sequence
from atelier_contracts.subjects import JOBS_STREAM
from atelier_orchestrator.adapters.projection import Applied, SqlProjection

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0


async def read_log(nc: Client, after: int = 0, batch: int = 1000) -> AsyncIterator[tuple[Commit, int]]:
    """Every commit in the stream after sequence ``after`` up to its last sequence when the read
    began, in order.

    No-wait pull requests of ``batch`` messages on an ephemeral consumer, one at a time: nats-py's
    ``fetch`` spends ~100 µs a message on its own bookkeeping (``docs/benchmarks.md``)."""
    js = nc.jetstream()
    info = await js.stream_info(JOBS_STREAM)
    last = info.state.last_seq
    if info.state.messages == 0 or last <= after:
        return
    name = f"replay-{nc.new_inbox().rsplit('.', 1)[-1]}"
    await js.add_consumer(
        JOBS_STREAM,
        ConsumerConfig(
            name=name,
            filter_subject="atelier.job.>",
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            inactive_threshold=30,
        ),
    )
    arrived: list[Msg] = []
    pulls = PullRequests(nc, JOBS_STREAM, name, arrived.append)
    await pulls.start()
    try:
        while True:
            done = await pulls.request(batch, wait_s=None)
            try:
                await asyncio.wait_for(done, timeout=REQUEST_TIMEOUT_S)
            except TimeoutError:
                continue  # a lost connection: ask again (what was delivered is in ``arrived``)
            if not arrived:
                return  # nothing after the last one (the stream's last sequences may have been purged)
            msgs, arrived[:] = arrived[:], []
            for msg in msgs:
                seq = stream_sequence(msg)
                if seq > last:
                    return
                yield commit_decoder.decode(msg.data), seq
                if seq == last:
                    return
    finally:
        await pulls.stop()
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            await js.delete_consumer(JOBS_STREAM, name)


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
