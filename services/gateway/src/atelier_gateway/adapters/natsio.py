"""What the adapters that read NATS directly share: outages reported as ``Unavailable``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats.errors
from nats.aio.client import Client

from atelier_gateway.app.errors import Unavailable


@asynccontextmanager
async def reachable(nc: Client, what: str) -> AsyncIterator[None]:
    """NATS errors in the block become ``Unavailable``; while NATS is down, at once rather than
    after a request's timeout."""
    unreachable = Unavailable(f"NATS ({what}) is unreachable; try again.")
    if not nc.is_connected:
        raise unreachable
    try:
        yield
    except (TimeoutError, nats.errors.Error) as exc:
        raise unreachable from exc
