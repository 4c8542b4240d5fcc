"""The orchestrator against a real nats-server and real SQL, with in-process worker pools."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from nats.aio.client import Client
from nats.js import JetStreamContext

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.commands import SubmitJob
from atelier_contracts.common import Artifact
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.events import StepSucceeded
from atelier_contracts.ids import new_job_id, new_message_id
from atelier_contracts.readmodel import dump, jobs, make_engine
from atelier_contracts.runtime.nats import connect, ensure_streams
from atelier_contracts.runtime.workpool import WorkError, WorkHandler, WorkPool, WorkResult
from atelier_contracts.subjects import MSG_ID_HEADER, command_subject
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import NatsServer
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.adapters.replay import rebuild
from atelier_orchestrator.bootstrap import bootstrap
from atelier_orchestrator.config import Settings
from tests.conftest import Databases
from tests.support import eventually

pytestmark = pytest.mark.integration


def settings(nats_url: str, database_url: str) -> Settings:
    return Settings(
        nats_url=nats_url,
        database_url=database_url,
        ops_host="127.0.0.1",
        ops_port=0,
        command_concurrency=8,
        report_concurrency=8,
        log_level="INFO",
    )


@contextlib.asynccontextmanager
async def running(*parts: object) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p(stop)) for p in parts]  # type: ignore[operator]
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def simple_handlers(blobs: FileBlobStore, fail_first: set[str] | None = None) -> dict[str, WorkHandler]:
    """Stand-in capabilities that store a small blob per step (the real ones have their own tests)."""
    failed_once: set[str] = set()

    async def handle(item: WorkItem) -> WorkResult:
        if fail_first and item.step in fail_first and item.step + item.job_id not in failed_once:
            failed_once.add(item.step + item.job_id)
            raise WorkError("provider_error", "injected failure", retryable=True)
        ref = blobs.put_bytes(f"{item.job_id}/{item.step}".encode(), "text/plain")
        return WorkResult(outputs=[Artifact(name="out", kind="text", blob=ref)], provider="test", model="t1")

    caps = ["text.generate", "image.generate", "tts", "audio.deliver", "image.thumbnail", "bundle.zip"]
    return dict.fromkeys(caps, handle)


async def submit(js: JetStreamContext, title: str) -> str:
    job_id = new_job_id()
    msg_id = new_message_id()
    env = Envelope(
        msg_id=msg_id,
        job_id=job_id,
        tenant="t1",
        correlation_id=msg_id,
        causation_id=None,
        sent_at=datetime.now(UTC),
        body=SubmitJob(kind="story", title=title, input={"prompt": title}),
    )
    await js.publish(command_subject(job_id), encode(env), headers={MSG_ID_HEADER: msg_id})
    return job_id


async def statuses(database_url: str, ids: list[str]) -> dict[str, str]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(ids)))
            return dict(rows.all())
    finally:
        await engine.dispose()


async def all_succeeded(database_url: str, ids: list[str]) -> bool:
    found = await statuses(database_url, ids)
    done = len(found) == len(ids) and set(found.values()) == {"succeeded"}
    if not done:
        print("statuses:", Counter(found.values()), "of", len(ids))
    return done


async def assert_each_step_succeeded_once(js: JetStreamContext, ids: list[str]) -> None:
    store = JetStreamEventStore(js)
    for job_id in ids:
        wins = Counter(
            [
                r.event.step
                async for commit, _ in store.read(job_id)
                for r in commit.events
                if isinstance(r.event, StepSucceeded)
            ]
        )
        assert wins == dict.fromkeys(["story", "cover", "narration", "audio", "thumbnail", "package"], 1), (
            job_id
        )


async def assert_rebuild_equals_live(nc: Client, live_url: str, rebuilt_url: str) -> None:
    live, rebuilt = make_engine(live_url), make_engine(rebuilt_url)
    try:
        await rebuild(nc, rebuilt)
        async with live.connect() as a, rebuilt.connect() as b:
            left, right = await dump(a), await dump(b)
        assert left == right
        assert left["jobs"], "the comparison must not be vacuous"
    finally:
        await live.dispose()
        await rebuilt.dispose()


async def test_story_jobs_run_to_success_and_rebuild_equals_live(
    nats_server: NatsServer, database_url: str, new_database: Databases, tmp_path: Path
) -> None:
    orch = await bootstrap(settings(nats_server.url, database_url))
    nc = await connect(nats_server.url, "test")
    js = nc.jetstream()
    pools = [
        WorkPool(nc, p, simple_handlers(FileBlobStore(tmp_path / "blobs"))) for p in ("ai", "media", "export")
    ]
    try:
        async with running(*orch.parts(), *(p.run for p in pools)):
            ids = [await submit(js, f"story {i}") for i in range(10)]
            await eventually(lambda: all_succeeded(database_url, ids), within=60)
        await assert_each_step_succeeded_once(js, ids)
        await assert_rebuild_equals_live(nc, database_url, await new_database())
    finally:
        await orch.close()
        await nc.close()


async def test_two_orchestrators_share_the_work_without_doubling_it(
    nats_server: NatsServer, database_url: str, new_database: Databases, tmp_path: Path
) -> None:
    replicas = [await bootstrap(settings(nats_server.url, database_url)) for _ in range(2)]
    nc = await connect(nats_server.url, "test")
    js = nc.jetstream()
    blobs = FileBlobStore(tmp_path / "blobs")
    pools = [WorkPool(nc, p, simple_handlers(blobs, fail_first={"cover"})) for p in ("ai", "media", "export")]
    parts = [part for r in replicas for part in r.parts()] + [p.run for p in pools]
    try:
        async with running(*parts):
            ids = [await submit(js, f"story {i}") for i in range(20)]
            await eventually(lambda: all_succeeded(database_url, ids), within=90)
        await assert_each_step_succeeded_once(js, ids)
        store = JetStreamEventStore(js)
        snapshot, _ = await store.load(ids[0])
        assert snapshot is not None
        assert snapshot.steps["cover"].attempts == 2, "the injected failure was retried"
        await assert_rebuild_equals_live(nc, database_url, await new_database())
    finally:
        for r in replicas:
            await r.close()
        await nc.close()


async def test_streams_are_created_idempotently(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, "test")
    try:
        js = nc.jetstream()
        await asyncio.gather(ensure_streams(js), ensure_streams(js))
        await ensure_streams(js)
        names = {s.config.name for s in await js.streams_info()}
        assert {"ATELIER_COMMANDS", "ATELIER_JOBS", "ATELIER_WORK", "ATELIER_REPORTS"} <= names
    finally:
        await nc.close()


async def test_an_earlier_versions_dispatcher_is_drained_then_retired(
    nats_server: NatsServer, database_url: str
) -> None:
    """Commits the old dispatcher consumer had not acked are relayed by the new start, once."""
    from nats.js.api import AckPolicy, ConsumerConfig

    from atelier_contracts.subjects import JOBS_STREAM, WORK_STREAM
    from atelier_orchestrator.app.handlers import JobService

    nc = await connect(nats_server.url, "test")
    js = nc.jetstream()
    await ensure_streams(js)
    old = ConsumerConfig(durable_name="orchestrator-dispatcher", filter_subject="atelier.job.>")
    old.ack_policy = AckPolicy.EXPLICIT
    await js.add_consumer(JOBS_STREAM, old)
    # Appended by the old version; its dispatcher never got to the commit.
    job_id = new_job_id()
    msg_id = new_message_id()
    body = SubmitJob(kind="story", title="t", input={"prompt": "t"})
    env = Envelope(
        msg_id=msg_id, job_id=job_id, tenant="t1", correlation_id=msg_id, causation_id=None,
        sent_at=datetime.now(UTC), body=body,
    )  # fmt: skip
    await JobService(JetStreamEventStore(js)).handle(env)  # type: ignore[arg-type]
    assert (await js.stream_info(WORK_STREAM)).state.messages == 0
    orch = await bootstrap(settings(nats_server.url, database_url))
    try:
        assert (await js.stream_info(WORK_STREAM)).state.messages == 1, "the story step's work item"
        names = [c.name for c in await js.consumers_info(JOBS_STREAM)]
        assert "orchestrator-dispatcher" not in names
        again = await bootstrap(settings(nats_server.url, database_url))  # nothing left to retire
        await again.close()
        assert (await js.stream_info(WORK_STREAM)).state.messages == 1
    finally:
        await orch.close()
        await nc.close()
