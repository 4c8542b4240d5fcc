"""Identifiers: time-ordered UUIDv7 strings and deterministic derived ids."""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562) as a string; sorts by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
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
