"""Shared state in NATS KV, changed atomically: read, decide, compare-and-set, again on a race.

Rate limits, concurrency leases and budget spend are each one key that every router replica
updates. ``update`` reads the key, lets a pure function decide the new value, and writes it
only if nobody wrote in between (the key's revision is unchanged); on a lost race it reads
again. No locks, and a replica that dies mid-update leaves nothing half-written.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.js.errors
from nats.js.kv import KeyValue

T = TypeVar("T")
MAX_TRIES = 50
_INVALID = re.compile(r"[^-/_=.a-zA-Z0-9]")
_ABSENT = (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError)


class Contended(RuntimeError):
    """Too many replicas raced for one key: the update was not made."""


def key_token(name: str) -> str:
    """A route key like ``openai/gpt-4o`` as a KV key token."""
    return _INVALID.sub("_", name)


class KvState:
    """A KV bucket, opened on first use, whose keys are changed with :meth:`update`."""

    def __init__(self, bucket: Callable[[], Awaitable[KeyValue]]) -> None:
        self._bucket = bucket
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._bucket()
        return self._kv

    async def get(self, key: str) -> bytes | None:
        try:
            return (await (await self.kv()).get(key)).value
        except _ABSENT:
            return None

    async def update(self, key: str, change: Callable[[bytes | None], tuple[bytes | None, T]]) -> T:
        """Apply ``change(current) -> (new value or None to leave it, result)`` atomically."""
        kv = await self.kv()
        for _ in range(MAX_TRIES):
            try:
                entry = await kv.get(key)
                current, revision = entry.value, entry.revision
            except _ABSENT:
                current, revision = None, None
            new, result = change(current)
            if new is None:
                return result
            try:
                if revision is None:
                    await kv.create(key, new)
                else:
                    await kv.update(key, new, last=revision)
                return result
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
                continue  # another replica wrote first: read again
        raise Contended(f"{key}: {MAX_TRIES} lost compare-and-set races in a row")
