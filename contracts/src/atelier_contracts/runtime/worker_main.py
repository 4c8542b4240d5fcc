"""The process around a worker pool: settings, NATS, the blob store, ops endpoints, signals."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext

from atelier_contracts.blobstore import Blobs, open_blobs
from atelier_contracts.progress import PROGRESS_EVERY_S
from atelier_contracts.runtime import logs, telemetry
from atelier_contracts.runtime.nats import close_quietly, connect, ensure_streams, ready_check
from atelier_contracts.runtime.ops import ReadyCheck, serve_ops
from atelier_contracts.runtime.service import Part, install_stop_signals, run, run_until_stopped
from atelier_contracts.runtime.workpool import WorkHandler, WorkPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    nats_url: str
    blob_dir: Path
    ops_host: str
    ops_port: int
    concurrency: int
    ack_wait_s: float
    log_level: str
    progress_every_s: float = PROGRESS_EVERY_S
    """How often a running step's newest progress tick is put (``ATELIER_PROGRESS_EVERY_S``)."""

    @classmethod
    def from_env(cls, service: str, default_ops_port: int) -> WorkerSettings:
        env = os.environ
        prefix = f"ATELIER_{service.upper().replace('-', '_')}_"
        return cls(
            nats_url=env.get("ATELIER_NATS_URL", "nats://127.0.0.1:4222"),
            blob_dir=Path(env.get("ATELIER_BLOB_DIR", ".state/blobs")),
            ops_host=env.get("ATELIER_OPS_HOST", "127.0.0.1"),
            ops_port=int(env.get(prefix + "OPS_PORT", str(default_ops_port))),
            concurrency=int(env.get(prefix + "CONCURRENCY", "4")),
            ack_wait_s=float(env.get("ATELIER_WORK_ACK_WAIT_S", "30")),
            log_level=env.get("ATELIER_LOG_LEVEL", "INFO"),
            progress_every_s=float(env.get("ATELIER_PROGRESS_EVERY_S", str(PROGRESS_EVERY_S))),
        )


@dataclass
class WorkerSetup:
    """A worker service's handlers, any tasks that run beside them (e.g. config reloads), and
    what to close when it stops (e.g. HTTP clients), after the work pool has drained."""

    handlers: dict[str, WorkHandler]
    background: list[Part] = field(default_factory=list)
    checks: dict[str, ReadyCheck] = field(default_factory=dict)
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


SetupFactory = Callable[[Blobs, WorkerSettings, Client], WorkerSetup]


async def serve_worker(
    service: str, dist: str, pool: str, settings: WorkerSettings, setup: SetupFactory
) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    nc = await connect(settings.nats_url, name=f"atelier-{service}")
    js: JetStreamContext = nc.jetstream()
    await ensure_streams(js)
    blobs = open_blobs(settings.blob_dir)
    parts = setup(blobs, settings, nc)
    work = WorkPool(
        nc,
        pool,
        parts.handlers,
        concurrency=settings.concurrency,
        ack_wait_s=settings.ack_wait_s,
        progress_every_s=settings.progress_every_s,
    )

    async def check_blobs() -> None:
        if not settings.blob_dir.is_dir():
            raise FileNotFoundError(settings.blob_dir)

    async def ops(stop: asyncio.Event) -> None:
        checks = {"nats": ready_check(nc), "blobs": check_blobs, **parts.checks}
        await serve_ops(service, version(dist), settings.ops_host, settings.ops_port, checks, stop)

    log.info("%s started", service, extra={"pool": pool, "ops_port": settings.ops_port})
    try:
        await run_until_stopped(stop, ops, work.run, *parts.background)
    finally:
        for close in parts.cleanup:
            try:
                await close()
            except Exception:
                log.exception("cleanup failed", extra={"service": service})
        await close_quietly(nc)
    log.info("%s stopped", service)


def main_for(service: str, dist: str, pool: str, default_ops_port: int, setup: SetupFactory) -> None:
    settings = WorkerSettings.from_env(service, default_ops_port)
    logs.setup(service, settings.log_level)
    telemetry.setup(service)
    run(serve_worker(service, dist, pool, settings, setup))
