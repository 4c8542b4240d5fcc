"""Request, token and concurrency limits shared by every router replica, kept in NATS KV.

- ``rpm`` and ``tpm`` are token buckets, one KV key each (``{"tokens", "at"}``), refilled
  continuously at the limit per minute. A call takes one request token, and its worst-case
  token count from the ``tpm`` bucket; what it did not use is given back after the call.
- ``concurrency`` is a set of leases, one KV key per route (``{holder: expires_at}``): a call
  holds one while it runs; a lease of a replica that died runs out after its TTL.

Every change is a compare-and-set (:class:`KvState`), so replicas racing for the last token
or slot cannot both get it. Time is wall-clock seconds, the same on every replica of a machine
or a cluster with synchronised clocks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from nats.js.kv import KeyValue

from atelier_provider_router.adapters.kvstate import KvState, key_token


class KvRateLimiter:
    """Token buckets per route and kind (``rpm``, ``tpm``)."""

    def __init__(
        self, bucket: Callable[[], Awaitable[KeyValue]], clock: Callable[[], float] = time.time
    ) -> None:
        self.state = KvState(bucket)
        self.clock = clock

    async def take(self, name: str, per_minute: int, amount: float = 1.0, kind: str = "rpm") -> float:
        """Take ``amount`` tokens; 0.0 when taken, else the seconds until there will be enough."""
        rate = per_minute / 60.0
        amount = min(amount, float(per_minute))  # a call larger than the bucket waits for a full one

        def change(current: bytes | None) -> tuple[bytes | None, float]:
            now = self.clock()
            tokens = self._level(current, per_minute, now)
            if tokens < amount:
                return None, (amount - tokens) / rate
            return json.dumps({"tokens": tokens - amount, "at": now}).encode(), 0.0

        return await self.state.update(f"{kind}.{key_token(name)}", change)

    async def give_back(self, name: str, per_minute: int, amount: float, kind: str = "rpm") -> None:
        """Return tokens taken but not used (a call used fewer tokens than its worst case)."""
        if amount <= 0:
            return

        def change(current: bytes | None) -> tuple[bytes | None, None]:
            now = self.clock()
            tokens = min(float(per_minute), self._level(current, per_minute, now) + amount)
            return json.dumps({"tokens": tokens, "at": now}).encode(), None

        await self.state.update(f"{kind}.{key_token(name)}", change)

    @staticmethod
    def _level(current: bytes | None, per_minute: int, now: float) -> float:
        if current is None:
            return float(per_minute)
        state = json.loads(current)
        refill = (now - float(state["at"])) * per_minute / 60.0
        return min(float(per_minute), float(state["tokens"]) + refill)


class KvLeases:
    """Concurrency slots per route: at most ``limit`` unexpired leases at once."""

    def __init__(
        self, bucket: Callable[[], Awaitable[KeyValue]], clock: Callable[[], float] = time.time
    ) -> None:
        self.state = KvState(bucket)
        self.clock = clock

    async def acquire(self, name: str, limit: int, holder: str, ttl_s: float) -> float:
        """Hold a slot: 0.0 when held, else the seconds until the oldest lease runs out."""

        def change(current: bytes | None) -> tuple[bytes | None, float]:
            now = self.clock()
            leases = {h: t for h, t in json.loads(current or b"{}").items() if t > now}
            if holder not in leases and len(leases) >= limit:
                return None, min(leases.values()) - now
            leases[holder] = now + ttl_s
            return json.dumps(leases).encode(), 0.0

        return await self.state.update(f"conc.{key_token(name)}", change)

    async def release(self, name: str, holder: str) -> None:
        def change(current: bytes | None) -> tuple[bytes | None, None]:
            now = self.clock()
            leases = {h: t for h, t in json.loads(current or b"{}").items() if t > now and h != holder}
            return json.dumps(leases).encode(), None

        await self.state.update(f"conc.{key_token(name)}", change)
