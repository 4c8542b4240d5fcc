"""What the adapters that read NATS directly share: outages reported as ``Unavailable``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from atelier_gateway.app.errors import Unavailable

# Connection trouble, not misuse: a missing stream or a bad request should surface as a 500 with
# its traceback. nats-py's TimeoutError is also a builtin TimeoutError.
_UNAVAILABLE = (
    TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
)


@asynccontextmanager
async def reachable(nc: Client, what: str, timeout_s: float = 5.0) -> AsyncIterator[None]:
    """Run the block within ``timeout_s``; an outage becomes ``Unavailable`` (HTTP 503), and while
    NATS is known to be down, at once."""
    unreachable = Unavailable(f"NATS ({what}) is unreachable; try again.")
    if not nc.is_connected:
        raise unreachable
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except _UNAVAILABLE as exc:
        raise unreachable from exc
