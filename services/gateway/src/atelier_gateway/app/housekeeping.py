"""Background chores of the gateway: forgetting expired idempotency keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from atelier_gateway.app.errors import Unavailable
from atelier_gateway.app.ports import IdempotencyStore

log = logging.getLogger(__name__)


async def prune_idempotency_keys(
    store: IdempotencyStore, clock: Callable[[], datetime], every_s: float
) -> None:
    """Delete expired idempotency records every ``every_s`` seconds, until cancelled.

    Expired rows are already ignored by claims; pruning only keeps the table small, so a failed
    round is logged and tried again next time.
    """
    while True:
        try:
            pruned = await store.prune(clock())
        except Unavailable as exc:
            log.warning("pruning idempotency keys failed: %s", exc.detail)
        except Exception:
            log.exception("pruning idempotency keys failed")
        else:
            if pruned:
                log.info("pruned %d expired idempotency keys", pruned)
        await asyncio.sleep(every_s)
