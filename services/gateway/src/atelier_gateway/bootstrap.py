"""Builds the gateway's dependencies from settings, and closes them again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.readmodel import make_engine
from atelier_contracts.runtime.nats import close_quietly, connect, ensure_streams, ready_check
from atelier_contracts.runtime.ops import ReadyCheck
from atelier_gateway.adapters.publisher import JetStreamCommandPublisher
from atelier_gateway.adapters.readmodel import SqlJobReader
from atelier_gateway.adapters.signer import HmacUrlSigner
from atelier_gateway.app.ports import BlobLocator, CommandPublisher, JobReader, UrlSigner
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
    signer: UrlSigner
    blobs: BlobLocator
    checks: dict[str, ReadyCheck]
    clock: Callable[[], datetime] = utc_now


@asynccontextmanager
async def build(settings: Settings) -> AsyncIterator[Deps]:
    """Connect to NATS and SQL; everything opened here is closed when the block ends."""
    async with AsyncExitStack() as stack:
        nc = await connect(settings.nats_url, "atelier-gateway", settings.startup_timeout_s)
        stack.push_async_callback(close_quietly, nc)
        js = nc.jetstream()
        async with asyncio.timeout(settings.startup_timeout_s):
            await ensure_streams(js)
        engine = make_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        reader = SqlJobReader(engine)
        yield Deps(
            settings=settings,
            publisher=JetStreamCommandPublisher(js, settings.publish_timeout_s),
            reader=reader,
            signer=HmacUrlSigner(settings.url_secret, settings.url_ttl_s),
            blobs=FileBlobStore(settings.blob_dir),
            checks={"nats": ready_check(nc), "sql": reader.ping},
        )
