"""Identifiers: time-ordered UUIDv7 strings and deterministic derived ids."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0


def uuid7() -> str:
    """A UUIDv7 (RFC 9562) as a string: ids from one process sort in creation order.

    Within one millisecond the previous id is incremented (RFC 9562's monotonic method), so
    ordering by id breaks ties between rows created in the same millisecond correctly.
    """
    global _last
    ms = time.time_ns() // 1_000_000
    # 48 bits of milliseconds, then 74 random bits (the top one clear, to leave room to count).
    candidate = (ms & 0xFFFF_FFFF_FFFF) << 74 | int.from_bytes(os.urandom(10), "big") >> 7
    with _lock:
        counter = max(candidate, _last + 1)
        _last = counter
    rand = counter & ((1 << 74) - 1)
    value = (counter >> 74) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def new_job_id() -> str:
    return "job_" + uuid7().replace("-", "")


def new_message_id() -> str:
    return uuid7()


def derived_id(prefix: str, *parts: str) -> str:
    """A stable id from its parts, so retries and replays produce the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def work_id(job_id: str, step: str, attempt: int) -> str:
    return f"{job_id}.{step}.{attempt}"


def asset_id(job_id: str, step: str, name: str) -> str:
    return derived_id("ast", job_id, step, name)
