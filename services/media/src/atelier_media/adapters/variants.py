"""The variant cache in a JetStream KV bucket, shared by every media replica."""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from atelier_contracts.common import BlobRef
from atelier_contracts.runtime.nats import variants

_ref = msgspec.json.Decoder(BlobRef)


class KvVariantCache:
    """Opens (or creates) its bucket on first use, so it can be built before the loop runs."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await variants(self.js)
        return self._kv

    @staticmethod
    def _key(original: str, digest: str) -> str:
        return f"{original}.{digest}"

    async def get(self, original: str, digest: str) -> BlobRef | None:
        try:
            entry = await (await self._bucket()).get(self._key(original, digest))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            return _ref.decode(entry.value)
        except msgspec.DecodeError:
            return None  # not a reference: render again

    async def put(self, original: str, digest: str, ref: BlobRef) -> None:
        await (await self._bucket()).put(self._key(original, digest), msgspec.json.encode(ref))
