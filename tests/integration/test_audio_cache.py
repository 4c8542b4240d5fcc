"""The narration cache, over a real nats-server: a repeated narration is a hit and costs no
provider call; a missing blob is repaired, not an error; entries are listed, evicted, pruned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.faults import FaultInjection
from atelier_contracts.runtime.audiocache import KvAudioCache
from atelier_contracts.runtime.nats import audio_cache
from atelier_contracts.runtime.workpool import WorkHandler
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import NatsServer
from atelier_provider_router.adapters.registry import build_providers
from atelier_provider_router.app.capabilities import handlers
from atelier_provider_router.app.matrix import load
from atelier_provider_router.app.router import Router
from tests.integration.test_gateway_api import Gateway, assert_problem

pytestmark = pytest.mark.integration

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


class Counted:
    """The offline providers, counting the speech calls that reach them."""

    def __init__(self, router: Router) -> None:
        self.calls = 0
        for name, provider in list(router.providers.items()):
            original = provider.synthesize_speech

            async def counted(request, options, original=original):  # type: ignore[no-untyped-def]
                self.calls += 1
                return await original(request, options)

            provider.synthesize_speech = counted  # type: ignore[method-assign]
            router.providers[name] = provider


@pytest.fixture
async def cache(nats_server: NatsServer) -> AsyncIterator[KvAudioCache]:
    nc = await nats.connect(nats_server.url)
    try:
        yield KvAudioCache(lambda: audio_cache(nc.jetstream()))
    finally:
        await nc.close()


def tts_item(text: str, n: int, seed: int = 0, tenant: str = "t1") -> WorkItem:
    return WorkItem(
        work_id=f"job_1.narration.{n}",
        job_id="job_1",
        tenant=tenant,
        step="narration",
        attempt=n,
        capability="tts",
        params={"text": text, "seed": seed},
    )


def speech(blobs: FileBlobStore, cache: KvAudioCache) -> tuple[WorkHandler, Counted]:
    matrix = load(None)
    router = Router(matrix, build_providers(matrix))
    counted = Counted(router)
    return handlers(router, blobs, FaultInjection(), audio_cache=cache, clock=lambda: NOW)["tts"], counted


async def test_a_repeated_narration_is_a_hit_and_costs_no_call(cache: KvAudioCache, tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    tts, counted = speech(blobs, cache)
    first = await tts(tts_item("Once upon a time, a fox found a lantern.", 1))
    assert counted.calls == 1
    assert first.attempts, "the call is recorded"
    again = await tts(tts_item("Once upon a time, a fox found a lantern.", 2))
    assert counted.calls == 1, "no provider call for a repeated narration"
    assert again.outputs[0].blob == first.outputs[0].blob
    assert again.outputs[0].meta["cached"] is True
    assert (again.provider, again.model) == (first.provider, first.model)
    assert again.attempts == [], "nothing to bill"

    other_voice = await tts(tts_item("Once upon a time, a fox found a lantern.", 3, seed=7))
    assert counted.calls == 2, "another voice is another narration"
    assert other_voice.outputs[0].blob != first.outputs[0].blob

    [entry, *_] = [e for e in await cache.entries("t1", 10) if e.blob == first.outputs[0].blob]
    assert (entry.hits, entry.repairs, entry.voice) == (1, 0, "default")
    assert entry.text_preview.startswith("Once upon a time")
    assert entry.blob.size == first.outputs[0].blob.size


async def test_a_missing_blob_is_made_again_and_the_entry_repaired(
    cache: KvAudioCache, tmp_path: Path
) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    tts, counted = speech(blobs, cache)
    first = await tts(tts_item("The moon garden bloomed at night.", 1))
    await tts(tts_item("The moon garden bloomed at night.", 2))
    blobs.delete(first.outputs[0].blob.key)  # released by the blob clean-up, say
    repaired = await tts(tts_item("The moon garden bloomed at night.", 3))
    assert counted.calls == 2, "made again, not an error"
    assert repaired.outputs[0].meta["cached"] is False
    assert blobs.exists(repaired.outputs[0].blob.key)
    [entry] = [e for e in await cache.entries("t1", 10) if e.text_preview.startswith("The moon garden")]
    assert (entry.hits, entry.repairs) == (1, 1), "the entry is kept, its hits too"
    await tts(tts_item("The moon garden bloomed at night.", 4))
    assert counted.calls == 2


async def test_entries_are_evicted_and_pruned_by_age(cache: KvAudioCache, tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    tts, counted = speech(blobs, cache)
    for n, text in enumerate(["one fox", "two foxes", "three foxes"], start=1):
        await tts(tts_item(text, n))
    entries = await cache.entries("t1", 10)
    assert len(entries) == 3
    assert await cache.evict("t1", entries[0].key)
    assert not await cache.evict("t1", entries[0].key)
    assert not await cache.evict("someone-else", entries[1].key), (
        "another tenant's entry is not yours to evict"
    )
    assert await cache.prune(NOW - timedelta(seconds=1)) == 0, "used just now"
    assert await cache.prune(NOW + timedelta(seconds=1)) == 2
    assert await cache.entries("t1", 10) == []
    await tts(tts_item("one fox", 9))
    assert counted.calls == 4, "a pruned narration is made again"


async def test_the_api_lists_shows_and_evicts_entries(
    gateway: Gateway, cache: KvAudioCache, tmp_path: Path
) -> None:
    tts, _ = speech(FileBlobStore(tmp_path / "blobs"), cache)
    await tts(tts_item("A lighthouse cat keeps watch.", 1, tenant="default"))
    await tts(tts_item("A lighthouse cat keeps watch.", 2, tenant="default"))
    await tts(tts_item("Another tenant's secret text.", 3, tenant="someone-else"))
    [listed] = (await gateway.client.get("/v1/audio-cache")).json()["entries"]  # only this tenant's
    assert listed["hits"] == 1
    assert listed["size"] > 1000
    assert listed["content_type"] == "audio/wav"
    assert listed["updated_at"] == "2030-01-02T03:04:05Z"
    key = listed["key"]
    assert (await gateway.client.get(f"/v1/audio-cache/{key}")).json() == listed
    assert (await gateway.client.delete(f"/v1/audio-cache/{key}")).status_code == 204
    assert_problem(await gateway.client.delete(f"/v1/audio-cache/{key}"), 404, "cache_entry_not_found")
    assert_problem(await gateway.client.get(f"/v1/audio-cache/{key}"), 404, "cache_entry_not_found")
    assert_problem(await gateway.client.get("/v1/audio-cache/../x"), 404, "not_found")
    assert (await gateway.client.get("/v1/audio-cache")).json() == {"entries": []}
