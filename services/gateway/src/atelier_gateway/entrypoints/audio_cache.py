"""/v1/audio-cache: the narration cache the provider router fills, to look at and evict from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import nats.errors
from fastapi import APIRouter, Query, Response

from atelier_contracts.audio import AudioCacheEntry
from atelier_gateway.app.errors import CacheEntryNotFound, Unavailable
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import AudioCacheEntries, AudioCacheEntryOut

router = APIRouter(prefix="/v1/audio-cache", tags=["audio"], route_class=IdempotentRoute)


def _out(entry: AudioCacheEntry) -> AudioCacheEntryOut:
    return AudioCacheEntryOut(
        key=entry.key,
        voice=entry.voice,
        provider=entry.provider,
        model=entry.model,
        text_preview=entry.text_preview,
        text_sha256=entry.text_sha256,
        content_type=entry.blob.content_type,
        size=entry.blob.size,
        hits=entry.hits,
        repairs=entry.repairs,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
    )


@router.get(
    "",
    summary="Narration cache entries",
    description="Speech already made, by (text, voice, provider, model): a repeated narration is "
    "served from here and costs no provider call. Most recently used first.",
    responses=problem_responses(422, 503),
)
async def entries(deps: DepsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AudioCacheEntries:
    async with _nats():
        found = await deps.audio_cache.entries(deps.settings.tenant, limit)
    return AudioCacheEntries(entries=[_out(e) for e in found])


@router.get("/{key}", summary="One narration cache entry", responses=problem_responses(404, 422, 503))
async def entry(key: str, deps: DepsDep) -> AudioCacheEntryOut:
    async with _nats():
        found = await deps.audio_cache.get(key) if _plausible(key) else None
    if found is None or found.tenant != deps.settings.tenant:
        raise CacheEntryNotFound(f"No narration cache entry {key!r}.")
    return _out(found)


@router.delete(
    "/{key}",
    status_code=204,
    summary="Evict a narration cache entry",
    description="The next narration of that text is made by a provider again.",
    responses=problem_responses(404, 503),
)
async def evict(key: str, deps: DepsDep) -> Response:
    async with _nats():
        evicted = _plausible(key) and await deps.audio_cache.evict(deps.settings.tenant, key)
    if not evicted:
        raise CacheEntryNotFound(f"No narration cache entry {key!r}.")
    return Response(status_code=204)


@asynccontextmanager
async def _nats() -> AsyncIterator[None]:
    try:
        yield
    except (nats.errors.Error, TimeoutError) as exc:
        raise Unavailable(f"NATS did not answer ({type(exc).__name__}); try again.") from None


def _plausible(key: str) -> bool:
    return len(key) == 40 and all(c in "0123456789abcdef" for c in key)
