"""Release blobs no live job refers to: what deleted jobs (and abandoned attempts) leave behind.

Blobs are content-addressed and shared, so a blob goes only when neither an asset of a job that
is not deleted nor an upload names it. A grace period spares blobs written by steps still running
(their assets are not recorded yet) and inputs of work in flight; temporary and staged files
older than it are what a writer that died mid-write left behind, and go too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.blobstore import BlobNotFound, Blobs
from atelier_contracts.readmodel import assets, jobs, uploads


@dataclass(frozen=True)
class BlobReport:
    stored: int
    referenced: int
    released: int
    released_bytes: int
    dry_run: bool


async def referenced_keys(engine: AsyncEngine) -> set[str]:
    """Blobs an asset of a live job names, and the files of every upload."""
    query = (
        sa.select(assets.c.blob_key).join(jobs, jobs.c.id == assets.c.job_id).where(jobs.c.deleted.is_(False))
    )
    uploaded = sa.select(uploads.c.blob_key, uploads.c.thumbnail_key)
    async with engine.connect() as conn:
        keys = {row.blob_key for row in await conn.execute(query)}
        for row in await conn.execute(uploaded):
            keys.add(row.blob_key)
            if row.thumbnail_key:
                keys.add(row.thumbnail_key)
    return keys


async def release_blobs(engine: AsyncEngine, blobs: Blobs, grace_s: float, dry_run: bool) -> BlobReport:
    keep = await referenced_keys(engine)
    # The walk of the store is file system work: off the event loop the consumers share.
    return await asyncio.to_thread(_sweep, blobs, keep, time.time() - grace_s, dry_run)


def _sweep(blobs: Blobs, keep: set[str], cutoff: float, dry_run: bool) -> BlobReport:
    """Every replica may sweep at once: a file another one took first is skipped, not an error."""
    stored = released = released_bytes = 0
    for key, written in list(blobs.stored()):
        stored += 1
        if key in keep or written > cutoff:
            continue
        try:
            size = blobs.size_of(key)
        except (FileNotFoundError, BlobNotFound):
            continue
        if dry_run or blobs.delete(key):
            released += 1
            released_bytes += size
    for leftover in list(blobs.leftovers(cutoff)):  # writes and uploads a crash cut short
        stored += 1
        try:
            size = leftover.stat().st_size
            if not dry_run:
                leftover.unlink()
        except FileNotFoundError:
            continue
        released += 1
        released_bytes += size
    return BlobReport(stored, len(keep), released, released_bytes, dry_run)
