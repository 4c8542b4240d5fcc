"""The narration cache in its JetStream KV bucket (``atelier_contracts.audio``): written by the
provider router, read and evicted from by the gateway."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from atelier_contracts.audio import AudioCacheEntry, entry_decoder

log = logging.getLogger(__name__)


class KvAudioCache:
    def __init__(self, bucket: Callable[[], Awaitable[KeyValue]]) -> None:
        self._open = bucket
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._open()
        return self._kv

    async def get(self, key: str) -> AudioCacheEntry | None:
        found = await self._read(key)
        return found[0] if found else None

    async def _read(self, key: str) -> tuple[AudioCacheEntry, int] | None:
        try:
            entry = await (await self._bucket()).get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            return entry_decoder.decode(entry.value), entry.revision or 0
        except msgspec.DecodeError:
            return None

    async def put(self, entry: AudioCacheEntry) -> None:
        await (await self._bucket()).put(entry.key, msgspec.json.encode(entry))

    async def served(self, key: str, now: datetime) -> None:
        """Count a hit (compare-and-set; two replicas' hits at once: one retries)."""
        for _ in range(5):
            found = await self._read(key)
            if found is None:
                return
            entry, revision = found
            bumped = msgspec.structs.replace(entry, hits=entry.hits + 1, updated_at=now)
            try:
                await (await self._bucket()).update(key, msgspec.json.encode(bumped), last=revision)
                return
            except KeyWrongLastSequenceError:
                continue
        log.warning("a narration cache hit was not counted (kept changing)", extra={"key": key})

    async def prune(self, older_than: datetime) -> int:
        """Delete entries not made or served since ``older_than``; how many went."""
        kv = await self._bucket()
        try:
            keys = await kv.keys()
        except NoKeysError:  # an empty bucket
            return 0
        pruned = 0
        for key in keys:
            entry = await self.get(key)
            if entry is not None and entry.updated_at < older_than:
                await kv.delete(key)
                pruned += 1
        return pruned

    async def entries(self, tenant: str, limit: int) -> list[AudioCacheEntry]:
        """Up to ``limit`` of the tenant's entries, the most recently used first."""
        try:
            keys = await (await self._bucket()).keys()
        except NoKeysError:
            return []
        found = [e for e in [await self.get(k) for k in keys] if e is not None and e.tenant == tenant]
        found.sort(key=lambda e: (e.updated_at, e.key), reverse=True)
        return found[:limit]

    async def evict(self, tenant: str, key: str) -> bool:
        """Remove one of the tenant's entries; False when it has none of that key."""
        entry = await self.get(key)
        if entry is None or entry.tenant != tenant:
            return False
        await (await self._bucket()).delete(key)
        return True
