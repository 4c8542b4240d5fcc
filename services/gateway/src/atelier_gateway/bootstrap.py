"""Builds the gateway's dependencies from settings, and closes them again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.client import Client

from atelier_contracts.blobstore import open_blobs
from atelier_contracts.presets import PresetRegistry
from atelier_contracts.readmodel import make_engine
from atelier_contracts.readmodel import schedules as schedules_table
from atelier_contracts.readmodel import sessions as sessions_table
from atelier_contracts.runtime.audiocache import KvAudioCache
from atelier_contracts.runtime.nats import audio_cache, close_quietly, connect, ensure_streams, ready_check
from atelier_contracts.runtime.ops import ReadyCheck
from atelier_contracts.schedules import ScheduleView
from atelier_contracts.sessions import SessionView
from atelier_contracts.studio_catalog import StudioCatalog
from atelier_gateway.adapters.analytics import SqlAnalytics
from atelier_gateway.adapters.budgets import KvBudgetStore
from atelier_gateway.adapters.documents import SqlDocuments
from atelier_gateway.adapters.feeds import NatsLogFeeds
from atelier_gateway.adapters.gallery import SqlGallery
from atelier_gateway.adapters.idempotency import SqlIdempotencyStore
from atelier_gateway.adapters.job_search import SqlJobSearch
from atelier_gateway.adapters.joblog import JetStreamJobLog
from atelier_gateway.adapters.projects import SqlComposites, SqlProjects
from atelier_gateway.adapters.publisher import JetStreamCommandPublisher
from atelier_gateway.adapters.readmodel import SqlJobReader
from atelier_gateway.adapters.signer import HmacUrlSigner
from atelier_gateway.adapters.studio_templates import SqlStudioTemplates
from atelier_gateway.adapters.tags import SqlTagRegistry
from atelier_gateway.adapters.uploads import NatsIngest, SqlUploads
from atelier_gateway.adapters.webhook_http import HttpPoster
from atelier_gateway.adapters.webhook_store import SqlWebhooks
from atelier_gateway.app.composites import Composites
from atelier_gateway.app.gallery import Gallery
from atelier_gateway.app.housekeeping import prune_idempotency_keys
from atelier_gateway.app.live import LogFeeds
from atelier_gateway.app.ports import (
    Analytics,
    BlobLocator,
    BudgetStore,
    CommandPublisher,
    IdempotencyStore,
    Ingest,
    JobLog,
    JobReader,
    JobSearch,
    TagRegistry,
    UploadStore,
    UrlSigner,
)
from atelier_gateway.app.projects import Projects
from atelier_gateway.app.studio import Templates
from atelier_gateway.app.webhook_dispatch import WebhookDispatch
from atelier_gateway.app.webhooks import Destinations, RetryPolicy
from atelier_gateway.config import Settings

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    """Everything the HTTP layer hands to the use cases."""

    settings: Settings
    publisher: CommandPublisher
    reader: JobReader
    joblog: JobLog
    search: JobSearch
    gallery: Gallery
    tags: TagRegistry
    idempotency: IdempotencyStore
    signer: UrlSigner
    blobs: BlobLocator
    checks: dict[str, ReadyCheck]
    analytics: Analytics
    budgets: BudgetStore
    sessions: SqlDocuments[SessionView]
    schedules: SqlDocuments[ScheduleView]
    uploads: UploadStore
    ingest: Ingest
    presets: PresetRegistry
    studio: StudioCatalog
    studio_templates: Templates
    projects: Projects
    composites: Composites
    audio_cache: KvAudioCache
    feeds: LogFeeds
    webhooks: SqlWebhooks
    destinations: Destinations
    dispatch: WebhookDispatch
    clock: Callable[[], datetime] = utc_now


@asynccontextmanager
async def build(settings: Settings) -> AsyncIterator[Deps]:
    """Connect to NATS and SQL; everything opened or started here is closed when the block ends."""
    async with AsyncExitStack() as stack:
        nc = await connect(settings.nats_url, "atelier-gateway", settings.startup_timeout_s)
        stack.push_async_callback(close_quietly, nc)
        js = nc.jetstream()
        async with asyncio.timeout(settings.startup_timeout_s):
            await ensure_streams(js)
        publisher = JetStreamCommandPublisher(nc, js, settings.publish_timeout_s)
        await publisher.start()
        joblog = JetStreamJobLog(nc, js)
        await joblog.start()
        engine = make_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        reader = SqlJobReader(engine)
        stack.callback(reader.close)
        idempotency = SqlIdempotencyStore(engine)
        pruner = asyncio.create_task(
            prune_idempotency_keys(idempotency, utc_now, settings.idempotency_prune_every_s),
            name="idempotency-pruner",
        )
        stack.push_async_callback(_stop, pruner)
        feeds = NatsLogFeeds(nc, poll_s=settings.stream_poll_s, queue_max=settings.stream_queue_max)
        stack.push_async_callback(feeds.close)
        webhooks = SqlWebhooks(engine)
        destinations = Destinations(settings.webhook_allow_hosts)
        poster = HttpPoster(destinations, settings.webhook_timeout_s)
        stack.push_async_callback(poster.close)
        dispatch = WebhookDispatch(
            webhooks,
            poster,
            utc_now,
            policy=RetryPolicy(
                settings.webhook_retry_base_s, settings.webhook_retry_cap_s, settings.webhook_give_up_s
            ),
            timeout_s=settings.webhook_timeout_s,
            per_endpoint=settings.webhook_per_endpoint,
        )
        if settings.webhooks:
            await stack.enter_async_context(_running(nc, dispatch))
        yield Deps(
            settings=settings,
            publisher=publisher,
            reader=reader,
            joblog=joblog,
            search=SqlJobSearch(engine),
            gallery=SqlGallery(engine),
            tags=SqlTagRegistry(engine),
            idempotency=idempotency,
            signer=HmacUrlSigner(settings.url_secret, settings.url_ttl_s),
            blobs=open_blobs(settings.blob_dir),
            checks={"nats": ready_check(nc), "sql": reader.ping},
            analytics=SqlAnalytics(engine, nc, js),
            budgets=KvBudgetStore(nc, js),
            sessions=SqlDocuments(engine, sessions_table, SessionView),
            schedules=SqlDocuments(engine, schedules_table, ScheduleView, gone="deleted"),
            uploads=SqlUploads(engine),
            ingest=NatsIngest(nc, settings.upload_timeout_s),
            presets=PresetRegistry.from_env(),
            studio=StudioCatalog.from_env(),
            studio_templates=SqlStudioTemplates(engine),
            projects=SqlProjects(engine),
            composites=SqlComposites(engine),
            audio_cache=KvAudioCache(lambda: audio_cache(js)),
            feeds=feeds,
            webhooks=webhooks,
            destinations=destinations,
            dispatch=dispatch,
        )


@asynccontextmanager
async def _running(nc: Client, dispatch: WebhookDispatch) -> AsyncIterator[None]:
    """The webhook fan-out and the sender, until the block ends."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(dispatch.fan_out(nc, stop), name="webhook-fanout"),
        asyncio.create_task(dispatch.run(stop), name="webhook-sender"),
    ]
    try:
        yield
    finally:
        stop.set()
        dispatch.wake()  # the sender waits on its bell: ring it, so it sees the stop at once
        await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
