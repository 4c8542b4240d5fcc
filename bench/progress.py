"""How progress ticks are carried: as events in the job's log, or coalesced into a KV bucket.

python -m bench.progress    # or: make bench. BENCH_TICKS sets the ticks per path (default 2000).

On a real nats-server (and SQLite for the projector's share), one run measures per tick:

- the log path, the least a tick as an event would cost: the worker's report published to the
  reports stream, the orchestrator's conditional append of a commit to the job's subject, and
  the projector's transaction writing the event's row;
- the bucket path: one KV put (what ``ProgressPublisher`` does per step every 0.5 s);
- how soon a put reaches a plain subscriber (the gateway's feed): p50/p95 from put to arrival;
- for a 10-minute encode ticking at every one of its 14,400 frames: what each path writes.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from nats.aio.msg import Msg

from atelier_contracts.envelope import encode
from atelier_contracts.events import Commit, EventRecord, StepStarted
from atelier_contracts.ids import new_job_id, new_message_id
from atelier_contracts.progress import PROGRESS_EVERY_S, StepProgress, progress_key
from atelier_contracts.readmodel import job_events, make_engine
from atelier_contracts.runtime.nats import connect, ensure_streams, progress_bucket
from atelier_contracts.subjects import (
    EXPECTED_LAST_SUBJECT_SEQ_HEADER,
    MSG_ID_HEADER,
    job_subject,
    report_subject,
)
from atelier_devstack.natsserver import start_nats
from atelier_orchestrator.adapters.migrate import upgrade

TICKS = int(os.environ.get("BENCH_TICKS", "2000"))
FRAMES = 10 * 60 * 24


def tick(job_id: str, i: int) -> StepProgress:
    return StepProgress(
        job_id=job_id,
        step="composite",
        attempt=1,
        fraction=i / TICKS,
        message="shot 3 of 12",
        at=datetime.now(UTC),
    )


async def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats(Path(tmp) / "nats")
        nc = await connect(server.url, "bench-progress")
        js = nc.jetstream()
        await ensure_streams(js)
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        try:
            job_id = new_job_id()
            # -- the log path ---------------------------------------------------------------
            prev = 0
            t0 = time.perf_counter()
            size = 0
            for i in range(TICKS):
                payload = encode(tick(job_id, i))
                await js.publish(report_subject(job_id), payload, headers={MSG_ID_HEADER: new_message_id()})
                event = StepStarted(step="composite", attempt=1, work_id="w", started_at=datetime.now(UTC))
                commit = Commit(
                    commit_id=new_message_id(), job_id=job_id, tenant="t", causation_id="c",
                    correlation_id="c", prev_seq=prev, at=datetime.now(UTC),
                    events=[EventRecord(event_id=f"{i}:0", event=event)],
                )  # fmt: skip
                data = encode(commit)
                size += len(data)
                ack = await js.publish(
                    job_subject(job_id),
                    data,
                    headers={MSG_ID_HEADER: commit.commit_id, EXPECTED_LAST_SUBJECT_SEQ_HEADER: str(prev)},
                )
                prev = ack.seq
                async with engine.begin() as conn:
                    await conn.execute(
                        sa.insert(job_events).values(
                            job_id=job_id, seq=ack.seq, idx=0, event_id=f"{job_id}:{i}", type="step_progress",
                            at=datetime.now(UTC), data=payload.decode(),
                        )
                    )  # fmt: skip
            log_us = (time.perf_counter() - t0) / TICKS * 1e6
            per_event = size / TICKS

            # -- the bucket path --------------------------------------------------------------
            kv = await progress_bucket(js)
            key = progress_key(job_id, "composite")
            t0 = time.perf_counter()
            for i in range(TICKS):
                await kv.put(key, encode(tick(job_id, i)))
            kv_us = (time.perf_counter() - t0) / TICKS * 1e6

            # -- put → a plain subscriber -----------------------------------------------------
            arrived: asyncio.Queue[float] = asyncio.Queue()

            async def on_tick(_msg: Msg) -> None:
                arrived.put_nowait(time.perf_counter())

            sub = await nc.subscribe(f"$KV.ATELIER_PROGRESS.{job_id}.*", cb=on_tick)
            delays = []
            for i in range(500):
                sent = time.perf_counter()
                await kv.put(key, encode(tick(job_id, i)))
                delays.append((await asyncio.wait_for(arrived.get(), 5) - sent) * 1000)
            await sub.unsubscribe()
            delays.sort()
            p50, p95 = statistics.median(delays), delays[int(len(delays) * 0.95)]
            puts = int(FRAMES / 24 / PROGRESS_EVERY_S)
        finally:
            await engine.dispose()
            await nc.close()
            server.stop()

    print(f"log path (report + conditional append + projector row): {log_us:,.0f} µs a tick")
    print(f"bucket path (one KV put):                               {kv_us:,.0f} µs a tick")
    print(f"ratio log / bucket: {log_us / kv_us:.1f}x")
    print(f"put → subscriber: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    print(
        f"a 10-minute encode, a tick a frame ({FRAMES:,} ticks): the log path appends {FRAMES:,} events "
        f"(~{FRAMES * per_event / 1e6:.1f} MB kept for ever, replayed by every fold); the bucket path "
        f"puts {puts:,} times into one kept message, and the log grows by nothing"
    )
    print(
        f"worst delay a stream sees: the coalescing interval {PROGRESS_EVERY_S * 1000:.0f} ms"
        f" + p95 {p95:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
