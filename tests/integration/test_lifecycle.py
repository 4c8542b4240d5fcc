"""The job lifecycle against a real nats-server and SQL: retries, timeouts, cancel, priority."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import nats.errors
import pytest
from nats.js.api import ConsumerConfig
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from atelier_contracts.commands import CancelJob, DeleteJob, RequeueJob, RetryStep, SubmitJob, UpdateJob
from atelier_contracts.events import JobEvent, StepFailed, StepRetryScheduled, StepStarted
from atelier_contracts.ids import new_job_id
from atelier_contracts.readmodel import make_engine
from atelier_contracts.runtime.nats import cancelled_jobs, close_quietly, connect
from atelier_contracts.runtime.workpool import CancelledJobs, WorkHandler, WorkResult
from atelier_contracts.snapshot import StepStatus
from atelier_contracts.subjects import WORK_STREAM, pool_filter
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import NatsServer
from atelier_orchestrator.adapters.blobgc import release_blobs
from atelier_orchestrator.domain.snapshot import JobSnapshot
from tests.integration.harness import Platform, names, offline_ai_handlers, platform
from tests.support import eventually

pytestmark = pytest.mark.integration


def hanging(started: asyncio.Event, abandoned: asyncio.Event) -> dict[str, WorkHandler]:
    """An ai pool whose text step never finishes on its own."""

    async def handle(item: WorkItem) -> WorkResult:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            abandoned.set()
        raise AssertionError("unreachable")

    return {"text.generate": handle}


async def test_a_failing_step_is_retried_with_backoff_until_it_succeeds(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.workers()
        job_id = await p.submit(capability="text.generate", backoff_s=0.2, simulate={"fail": {"task": 2}})
        snap = await p.wait_status(job_id, "succeeded")
        assert snap.steps["task"].attempts == 3
        events = await p.events(job_id)
        scheduled = [e for e in events if isinstance(e, StepRetryScheduled)]
        assert [e.attempt for e in scheduled] == [2, 3]
        assert all(e.will_retry for e in events if isinstance(e, StepFailed))
        third = next(e for e in events if isinstance(e, StepStarted) and e.attempt == 3)
        assert third.started_at >= scheduled[1].due_at, "the retry waited for its backoff"


async def test_final_errors_fail_fast_without_retries(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.workers()
        job_id = await p.submit(capability="text.generate", simulate={"fail": {"task": 1}, "final": True})
        snap = await p.wait_status(job_id, "failed")
        assert snap.steps["task"].attempts == 1
        assert snap.steps["task"].last_error is not None
        assert snap.steps["task"].last_error.code == "prompt_invalid"


async def test_cancel_abandons_running_work_and_ignores_nothing_twice(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        started, abandoned = asyncio.Event(), asyncio.Event()
        p.pool("ai", hanging(started, abandoned))
        job_id = await p.submit(capability="text.generate")
        await asyncio.wait_for(started.wait(), 10)
        outcome = await p.send(job_id, CancelJob(reason="test"))
        assert outcome.accepted
        assert outcome.events == ["StepCancelled", "JobCancelled"]
        await asyncio.wait_for(abandoned.wait(), 10)
        await p.wait_status(job_id, "cancelled")
        kv = await cancelled_jobs(p.nc.jetstream())
        cancelled_at = int((await kv.get(job_id)).value or b"0")
        assert cancelled_at > 0, "the KV entry carries the cancelling commit's sequence"
        again = await p.send(job_id, CancelJob())
        assert again.accepted
        assert again.events == [], "a second cancel changes nothing"


async def test_queued_work_of_a_cancelled_job_is_skipped(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        job_id = await p.submit(capability="text.generate")
        assert (await p.send(job_id, CancelJob())).accepted
        ran: list[str] = []

        async def handle(item: WorkItem) -> WorkResult:
            ran.append(item.work_id)
            raise AssertionError("cancelled work must not run")

        p.pool("ai", {"text.generate": handle})
        js = p.nc.jetstream()

        async def drained() -> bool:
            return (await js.stream_info(WORK_STREAM)).state.messages == 0

        await eventually(drained, within=15)
        assert ran == []
        assert "ReportIgnored" not in names(await p.events(job_id))


async def test_the_cancelled_jobs_are_mirrored_so_a_check_needs_no_round_trip(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url, "test")
    kv = await cancelled_jobs(nc.jetstream())
    await kv.put("job_before", b"7")
    mirror = CancelledJobs(kv, nc)
    await mirror.start()
    try:
        await eventually(lambda: asyncio.sleep(0, mirror.known("job_before") == 7))
        await kv.put("job_after", b"9")
        await kv.put("job_unreadable", b"oops")
        await kv.put("job_gone", b"3")
        await eventually(lambda: asyncio.sleep(0, mirror.known("job_gone") == 3))
        await kv.delete("job_gone")
        await eventually(lambda: asyncio.sleep(0, mirror.known("job_gone") == 0))
        nats_server.stop()
        # With the server gone, a check still answers at once: from the mirror, not the bucket.
        assert await asyncio.wait_for(mirror.seq("job_after"), 1) == 9
        assert await asyncio.wait_for(mirror.seq("job_before"), 1) == 7
        assert await asyncio.wait_for(mirror.seq("job_never"), 1) == 0
        assert await asyncio.wait_for(mirror.seq("job_unreadable"), 1) > 10**9, "unreadable cancels all"
        # Back after a reconnect (cancels broadcast meanwhile were lost), checks ask the bucket
        # until a new watch has caught up; then the mirror follows the bucket again.
        nats_server.start()
        await eventually(lambda: asyncio.sleep(0, nc.is_connected and nc.stats["reconnects"] >= 1), within=15)
        await kv.put("job_later", b"13")
        await eventually(lambda: mirror.seq("job_later"), within=10)
        await eventually(lambda: asyncio.sleep(0, mirror.known("job_later") == 13), within=10)
        assert await mirror.seq("job_after") == 9
    finally:
        await mirror.stop()
        await close_quietly(nc)


async def test_a_step_past_its_deadline_is_timed_out_retried_then_failed(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.pool("ai", hanging(asyncio.Event(), asyncio.Event()))
        job_id = await p.submit(capability="text.generate", timeout_s=0.5, max_attempts=2, backoff_s=0.1)
        snap = await p.wait_status(job_id, "failed")
        errors = [e.error.code for e in await p.events(job_id) if isinstance(e, StepFailed)]
        assert errors == ["step_timeout", "step_timeout"]
        assert snap.steps["task"].attempts == 2
        assert snap.last_error is not None
        assert snap.last_error.code == "step_failed"


async def test_requeue_retry_update_delete_through_commands(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.workers()
        job_id = await p.submit(kind="story", simulate={"fail": {"cover": 1}, "final": True})
        snap = await p.wait_status(job_id, "failed")
        assert snap.steps["narration"].status == StepStatus.SUCCEEDED
        assert snap.steps["thumbnail"].status == StepStatus.SKIPPED
        refused = await p.send(job_id, RetryStep(step="nope"))
        assert (refused.accepted, refused.code) == (False, "step_not_found")
        assert (await p.send(job_id, RetryStep(step="cover"))).accepted
        snap = await p.wait_status(job_id, "succeeded")
        assert snap.steps["cover"].attempts == 2
        refused = await p.send(job_id, RequeueJob())
        assert (refused.accepted, refused.code) == (False, "illegal_transition")
        assert (await p.send(job_id, UpdateJob(tags=["x", "y"], priority=8))).accepted
        snap = await eventually(lambda: _with_tags(p, job_id, ["x", "y"]))
        assert snap.priority == 8
        assert (await p.send(job_id, DeleteJob())).accepted
        await eventually(lambda: _deleted(p, job_id))
        gone = await p.send(job_id, UpdateJob(title="again"))
        assert (gone.accepted, gone.code) == (False, "job_not_found")


async def _with_tags(p: Platform, job_id: str, tags: list[str]) -> JobSnapshot | None:
    snap = await p.snapshot(job_id)
    return snap if snap and snap.tags == tags else None


async def _deleted(p: Platform, job_id: str) -> bool:
    snap = await p.snapshot(job_id)
    return bool(snap and snap.deleted)


async def test_higher_priority_work_is_taken_first(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        low = [await p.submit(capability="text.generate", priority=0) for _ in range(6)]
        high = await p.submit(capability="text.generate", priority=9)
        order: list[str] = []
        real = offline_ai_handlers(p.blobs)["text.generate"]

        async def record(item: WorkItem) -> WorkResult:
            order.append(item.job_id)
            return await real(item)

        p.pool("ai", {"text.generate": record}, concurrency=1)
        for job_id in [high, *low]:
            await p.wait_status(job_id, "succeeded")
        assert order[0] == high, order


async def test_a_job_past_its_deadline_fails_and_stops_its_work(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        started, abandoned = asyncio.Event(), asyncio.Event()
        p.pool("ai", hanging(started, abandoned))
        job_id = new_job_id()
        body = SubmitJob(
            kind="task", title="t", input={"prompt": "p", "capability": "text.generate"}, deadline_s=1
        )
        assert (await p.send(job_id, body)).accepted
        snap = await p.wait_status(job_id, "failed")
        assert snap.last_error is not None
        assert snap.last_error.code == "job_deadline_exceeded"
        assert snap.steps["task"].status == StepStatus.CANCELLED
        await asyncio.wait_for(abandoned.wait(), 10)


async def test_work_that_exhausts_its_deliveries_becomes_a_failed_attempt(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    """A worker that takes the item and vanishes, again and again: the advisory turns it into a retry."""
    async with platform(nats_server.url, database_url, tmp_path) as p:
        js = p.nc.jetstream()
        band = "low"
        durable = f"workers-ai-{band}"
        config = ConsumerConfig(
            durable_name=durable, ack_wait=0.3, max_deliver=2, filter_subject=pool_filter("ai", band)
        )
        thief = await js.pull_subscribe(
            pool_filter("ai", band), durable=durable, stream=WORK_STREAM, config=config
        )
        job_id = await p.submit(capability="text.generate", backoff_s=0.1)
        for _ in range(2):  # take it twice, never ack: as if two workers died holding it
            await thief.fetch(1, timeout=10)
        # JetStream notices the exhausted item when it would deliver it again, to a pull waiting
        # (this pull may receive the retry: the thief lets that one go too).
        with contextlib.suppress(nats.errors.TimeoutError):
            await thief.fetch(1, timeout=1)
        events = await eventually(lambda: _failed_with(p, job_id, "worker_lost"), within=15)
        assert "StepRetryScheduled" in names(events)
        await thief.unsubscribe()
        await js.delete_consumer(WORK_STREAM, durable)
        p.workers()
        snap = await p.wait_status(job_id, "succeeded")
        assert snap.steps["task"].attempts >= 2


async def _failed_with(p: Platform, job_id: str, code: str) -> list[JobEvent] | None:
    events = await p.events(job_id)
    return events if any(isinstance(e, StepFailed) and e.error.code == code for e in events) else None


async def test_blobs_of_deleted_jobs_are_released_and_live_ones_kept(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.workers()
        kept = await p.submit(capability="image.generate", prompt="a red kite")
        gone = await p.submit(capability="image.generate", prompt="a blue whale")
        kept_snap = await p.wait_status(kept, "succeeded")
        await p.wait_status(gone, "succeeded")
        assert (await p.send(gone, DeleteJob())).accepted
        await eventually(lambda: _deleted(p, gone))
        engine = make_engine(database_url)
        try:
            dry = await release_blobs(engine, p.blobs, grace_s=0, dry_run=True)
            assert dry.released == 1
            assert p.blobs.exists(next(iter(p.blobs.stored()))[0])
            done = await release_blobs(engine, p.blobs, grace_s=0, dry_run=False)
            assert done.released == 1
            assert p.blobs.exists(kept_snap.steps["task"].outputs[0].blob.key)
            assert [k for k, _ in p.blobs.stored()] == [kept_snap.steps["task"].outputs[0].blob.key]
            young = await release_blobs(engine, p.blobs, grace_s=3600, dry_run=False)
            assert young.released == 0
        finally:
            await engine.dispose()


async def test_a_late_cancel_does_not_stop_the_work_of_a_later_requeue(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        job_id = await p.submit(capability="text.generate")
        assert (await p.send(job_id, CancelJob())).accepted
        await p.wait_status(job_id, "cancelled")
        kv = await cancelled_jobs(p.nc.jetstream())
        await eventually(lambda: _has_key(kv, job_id))
        assert (await p.send(job_id, RequeueJob())).accepted
        # The cancel's signal arrives again, late (a redelivered commit): it must not matter.
        entry = await kv.get(job_id)
        await kv.put(job_id, entry.value or b"")
        p.workers()
        snap = await p.wait_status(job_id, "succeeded")
        assert snap.attempts == 2


async def _has_key(kv: KeyValue, key: str) -> bool:
    try:
        await kv.get(key)
    except KeyNotFoundError:
        return False
    return True
