"""Idempotency-Key semantics (draft-ietf-httpapi-idempotency-key-header, as Stripe does it).

A request carrying a key first *claims* it: exactly one claim of (tenant, key) wins, because the
claim is an insert on that primary key. The winner runs the request and stores its response; a
later request with the same key and the same request hash gets that response replayed; one with
another hash is refused (422), one that arrives while the winner still runs is told so (409).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from atelier_gateway.app.errors import IdempotencyKeyInvalid

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class IdempotencyClaim:
    tenant: str
    key: str
    method: str
    path: str
    request_hash: str
    claimed_at: datetime
    """Also the claim's token: only the request that claimed at this instant may complete it."""
    expires_at: datetime
    stale_before: datetime
    """An in-progress row claimed before this is abandoned (its gateway died) and may be taken over."""


ClaimState = Literal["claimed", "in_progress", "mismatch", "completed"]


@dataclass(frozen=True)
class ClaimResult:
    state: ClaimState
    response: StoredResponse | None = None
    """The stored response when ``state`` is ``completed``."""
    used_on: str | None = None
    """For a ``mismatch`` on another route: the method and path the key was first used on."""


def check_key(raw: str) -> str:
    """The key as sent, or ``IdempotencyKeyInvalid`` when it is empty or longer than 255 characters."""
    if not 1 <= len(raw) <= MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalid()
    return raw


def request_hash(method: str, path: str, body: bytes) -> str:
    """SHA-256 over the method, the path and the body as canonical JSON (raw bytes if not JSON)."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except ValueError:  # not JSON (or empty): the bytes themselves identify the request
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def new_claim(
    *,
    tenant: str,
    key: str,
    method: str,
    path: str,
    body: bytes,
    now: datetime,
    ttl_s: float,
    lock_s: float,
) -> IdempotencyClaim:
    return IdempotencyClaim(
        tenant=tenant,
        key=check_key(key),
        method=method.upper(),
        path=path,
        request_hash=request_hash(method, path, body),
        claimed_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
        stale_before=now - timedelta(seconds=lock_s),
    )
