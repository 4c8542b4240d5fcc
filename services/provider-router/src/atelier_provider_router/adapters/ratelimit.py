"""Request-rate limits shared by every router replica: token buckets in a NATS KV bucket.

Each bucket is one KV key holding ``{"tokens", "at"}``. Taking a token is a compare-and-set
on the key's revision, so replicas racing for the last token cannot both get it; the loser
re-reads and decides again. Time is wall-clock seconds, the same on every replica of a machine
or a cluster with synchronised clocks.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable

import nats.js.errors
from nats.js.kv import KeyValue

_INVALID = re.compile(r"[^-/_=.a-zA-Z0-9]")
MAX_TRIES = 50


class KvRateLimiter:
    def __init__(
        self, bucket: Callable[[], Awaitable[KeyValue]], clock: Callable[[], float] = time.time
    ) -> None:
        self._bucket = bucket
        self._kv: KeyValue | None = None
        self.clock = clock

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._bucket()
        return self._kv

    async def take(self, name: str, per_minute: int) -> float:
        """Take one token; 0.0 when taken, else the seconds until one will be there."""
        kv = await self.kv()
        key = "rpm." + _INVALID.sub("_", name)
        rate = per_minute / 60.0
        for _ in range(MAX_TRIES):
            now = self.clock()
            try:
                entry = await kv.get(key)
                state = json.loads(entry.value or b"{}")
                revision = entry.revision
            except nats.js.errors.KeyNotFoundError:
                state, revision = {"tokens": float(per_minute), "at": now}, None
            tokens = min(float(per_minute), float(state["tokens"]) + (now - float(state["at"])) * rate)
            if tokens < 1.0:
                return (1.0 - tokens) / rate
            value = json.dumps({"tokens": tokens - 1.0, "at": now}).encode()
            try:
                if revision is None:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=revision)
                return 0.0
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
                continue  # another replica took a token first: read again
        return 1.0 / rate  # heavy contention: behave as if the bucket were empty
