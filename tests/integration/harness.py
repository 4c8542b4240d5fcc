"""An in-process platform for integration tests: the orchestrator and worker pools on a real
nats-server and real SQL, with helpers to send commands and read jobs back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import sqlalchemy as sa
from nats.aio.client import Client
from starlette.types import ASGIApp

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.commands import Command, CommandOutcome, SubmitJob
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.events import JobEvent
from atelier_contracts.faults import FaultInjection
from atelier_contracts.ids import new_job_id, new_message_id
from atelier_contracts.readmodel import assemble, jobs, make_engine, steps_of
from atelier_contracts.runtime import ops
from atelier_contracts.runtime.nats import connect
from atelier_contracts.runtime.workpool import WorkHandler, WorkPool
from atelier_contracts.subjects import MSG_ID_HEADER, REPLY_HEADER, command_subject
from atelier_devstack.natsserver import free_port
from atelier_export.app.handlers import handlers as export_handlers
from atelier_media.app.handlers import handlers as media_handlers
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.app.handlers import Clock, utc_now
from atelier_orchestrator.bootstrap import Orchestrator, bootstrap
from atelier_orchestrator.config import Settings
from atelier_orchestrator.domain.snapshot import JobSnapshot, snapshot_decoder, step_decoder
from atelier_provider_router.adapters.registry import build_providers
from atelier_provider_router.app.capabilities import handlers as ai_handlers
from atelier_provider_router.app.matrix import load
from atelier_provider_router.app.router import Router
from tests.support import eventually


def offline_ai_handlers(blobs: FileBlobStore) -> dict[str, WorkHandler]:
    """The provider router's real handlers over the built-in offline matrix."""
    matrix = load(None)
    return ai_handlers(Router(matrix, build_providers(matrix)), blobs, FaultInjection(enabled=True))


def orchestrator_settings(nats_url: str, database_url: str, **changes: Any) -> Settings:
    base = Settings(
        nats_url=nats_url,
        database_url=database_url,
        ops_host="127.0.0.1",
        ops_port=0,
        command_concurrency=8,
        report_concurrency=8,
        log_level="INFO",
        ack_wait_s=2.0,
        sweep_interval_s=0.2,
    )
    return Settings(**{**base.__dict__, **changes})


@dataclass
class Platform:
    nc: Client
    database_url: str
    blobs: FileBlobStore
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def run(self, *parts: Callable[[asyncio.Event], Any]) -> None:
        self.tasks += [asyncio.create_task(p(self.stop)) for p in parts]

    def pool(self, pool: str, handlers: dict[str, WorkHandler] | None = None, **kwargs: Any) -> WorkPool:
        if handlers is None:
            handlers = {
                "ai": lambda: offline_ai_handlers(self.blobs),
                "media": lambda: media_handlers(self.blobs),
                "export": lambda: export_handlers(self.blobs),
            }[pool]()
        work = WorkPool(self.nc, pool, handlers, **{"ack_wait_s": 2.0, **kwargs})
        self.run(work.run)
        return work

    def workers(self) -> None:
        for pool in ("ai", "media", "export"):
            self.pool(pool)

    async def send(self, job_id: str, body: Command, wait_s: float = 10.0) -> CommandOutcome:
        """Publish a command the way the gateway does and wait for the orchestrator's answer."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, max_msgs=1)
        msg_id = new_message_id()
        env = Envelope[Command](
            msg_id=msg_id, job_id=job_id, tenant="t1", correlation_id=msg_id, causation_id=None,
            sent_at=datetime.now(UTC), body=body,
        )  # fmt: skip
        await self.nc.jetstream().publish(
            command_subject(job_id), encode(env), headers={MSG_ID_HEADER: msg_id, REPLY_HEADER: inbox}
        )
        reply = await sub.next_msg(timeout=wait_s)
        return msgspec.json.decode(reply.data, type=CommandOutcome)

    async def submit(self, kind: str = "task", title: str = "t", priority: int = 0, **inp: Any) -> str:
        job_id = new_job_id()
        body = SubmitJob(kind=kind, title=title, input={"prompt": "a small test", **inp}, priority=priority)
        outcome = await self.send(job_id, body)
        assert outcome.accepted, outcome
        return job_id

    async def snapshot(self, job_id: str) -> JobSnapshot | None:
        engine = make_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(sa.select(jobs.c.snapshot).where(jobs.c.id == job_id))).first()
                steps = (await conn.execute(steps_of([job_id]))).all()
        finally:
            await engine.dispose()
        return (
            assemble([(job_id, row.snapshot)], steps, snapshot_decoder, step_decoder)[job_id] if row else None
        )

    async def wait_status(self, job_id: str, *statuses: str, within: float = 30) -> JobSnapshot:
        async def probe() -> JobSnapshot | None:
            snap = await self.snapshot(job_id)
            return snap if snap is not None and snap.status in statuses else None

        return await eventually(probe, within=within)

    async def events(self, job_id: str) -> list[JobEvent]:
        store = JetStreamEventStore(self.nc.jetstream(), cache_size=0)
        return [r.event async for commit, _ in store.read(job_id) for r in commit.events]


@contextlib.asynccontextmanager
async def platform(
    nats_url: str, database_url: str, tmp_path: Path, clock: Clock = utc_now, **settings: Any
) -> AsyncIterator[Platform]:
    settings = {"blob_dir": str(tmp_path / "blobs"), **settings}
    orch: Orchestrator = await bootstrap(orchestrator_settings(nats_url, database_url, **settings), clock)
    nc = await connect(nats_url, "test-platform")
    p = Platform(nc=nc, database_url=database_url, blobs=FileBlobStore(tmp_path / "blobs"))
    p.run(*orch.parts())
    try:
        yield p
    finally:
        p.stop.set()
        await asyncio.wait_for(asyncio.gather(*p.tasks, return_exceptions=True), 30)
        await orch.close()
        await nc.close()


def names(events: list[JobEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


@contextlib.asynccontextmanager
async def served(app: ASGIApp, probe: str = "/health", grace_s: float = 10.0) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free port, as the services serve theirs (streams need a real
    server: httpx's ASGI transport holds a response until it ends); its base URL once it answers."""
    port = free_port()
    stop = asyncio.Event()
    serving = asyncio.create_task(ops.serve(app, "127.0.0.1", port, stop, grace_s=grace_s))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as client:

        async def answers() -> bool:
            try:
                await client.get(probe)
            except httpx.TransportError:
                return False
            return True

        await eventually(answers, within=30, every=0.02)
    try:
        yield base
    finally:
        stop.set()
        await asyncio.wait_for(serving, grace_s + 20)
