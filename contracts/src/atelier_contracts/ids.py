"""Identifiers: time-ordered UUIDv7 strings and deterministic derived ids."""

from __future__ import annotations

import hashlib
import os
import threading
import time

_lock = threading.Lock()
_last = 0
_POOL_BYTES = 4000
"""Random bytes taken from the OS at once, 400 ids' worth: one ``getrandom`` call per id cost a
system call and a release of the GIL, which another thread then holds for up to 5 ms."""
_pool = b""
_taken = 0


def _forked() -> None:
    # A forked child must not repeat its parent's bytes, nor count on from its parent's last id
    # (both would hand out the same next one); the lock may have been held by another thread.
    global _lock, _last, _pool, _taken
    _lock, _last, _pool, _taken = threading.Lock(), 0, b"", 0


os.register_at_fork(after_in_child=_forked)


def uuid7() -> str:
    """A UUIDv7 (RFC 9562) as a string: ids from one process sort in creation order.

    Within one millisecond the previous id is incremented (RFC 9562's monotonic method), so
    ordering by id breaks ties between rows created in the same millisecond correctly.
    """
    global _last, _pool, _taken
    ms = time.time_ns() // 1_000_000
    with _lock:
        if _taken + 10 > len(_pool):
            _pool, _taken = os.urandom(_POOL_BYTES), 0
        random = int.from_bytes(_pool[_taken : _taken + 10], "big")
        _taken += 10
        # 48 bits of milliseconds, then 74 random bits (the top one clear, to leave room to count).
        counter = max((ms & 0xFFFF_FFFF_FFFF) << 74 | random >> 7, _last + 1)
        _last = counter
    rand = counter & ((1 << 74) - 1)
    value = (counter >> 74) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
