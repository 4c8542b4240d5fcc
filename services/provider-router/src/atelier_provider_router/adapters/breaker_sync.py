"""Circuit-breaker trips shared by every router replica, through the NATS KV bucket ``ATELIER_PROVIDERS``.

One key per provider; its value is the JSON state the replica that last changed that provider's
breaker wrote: ``{"state", "reason", "until", "by", "recovered"}``, with ``until`` the
wall-clock end of a trip and ``by`` the writing replica. The API shows these entries, with the
time left of a trip worked out from ``until`` when it is read (``GET /v1/providers``).

Two background tasks per replica:

- ``publish`` writes this replica's *own* breaker changes — its trips, its half-open probes, and
  its recoveries (``"closed"`` with ``"recovered": true``) — at once when the router signals a
  change, and otherwise when a look every ``refresh_s`` finds one (a trip's cooldown ending:
  half-open). Only changes are written, never a countdown. A state adopted from
  another replica is never written back: the origin's entry already says it. So adopting cannot
  feed a loop in which replicas re-publish each other's trips, and a trip ends when its origin
  said it would. At start-up a replica writes its (closed) states only where no other replica's
  trip is in force, so a new replica does not hide a live trip.
- ``watch`` follows the bucket (a KV watch: the latest entry of every key, then each change) and
  adopts entries written by *other* replicas: an open trip opens the local breaker until the
  same moment (wall clock converted to this process's monotonic clock), a recovery closes a
  breaker that is open only because of an adopted trip. Own entries, half-open states, plain
  closed states (a replica starting up), expired trips and providers this replica does not know
  are ignored. When the watch fails or ends — NATS gone, a consumer lost — it is logged and
  started again; it is also started again at once after the client reconnected, and every
  ``resync_s`` anyway. A new watch first delivers the current entries, and adopting them again
  changes nothing.

Wall-clock time, as for the shared rate limits: replicas need synchronised clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js.kv import KeyValue

from atelier_contracts.runtime.service import Part
from atelier_provider_router.adapters.kvstate import KvState
from atelier_provider_router.app.breaker import CLOSED, OPEN
from atelier_provider_router.app.router import Router

log = logging.getLogger(__name__)

Bucket = Callable[[], Awaitable[KeyValue]]
_STOPPED, _ENDED, _IDLE, _RECONNECTED = "stopped", "ended", "idle", "reconnected"


class BreakerSync:
    def __init__(
        self,
        router: Router,
        bucket: Bucket,
        replica: str,
        *,
        wall: Callable[[], float] = time.time,
        refresh_s: float = 1.0,
        retry_s: float = 1.0,
        resync_s: float = 300.0,
        reconnects: Callable[[], int] = lambda: 0,
    ) -> None:
        """``reconnects`` counts the NATS client's reconnections (``lambda: nc.stats["reconnects"]``):
        after one the watch is started again at once rather than when nats-py notices (up to 20 s)."""
        self.router = router
        self.replica = replica
        self.wall = wall
        self.refresh_s, self.retry_s, self.resync_s = refresh_s, retry_s, resync_s
        self.reconnects = reconnects
        self.state = KvState(bucket)

    @property
    def parts(self) -> list[Part]:
        """The background tasks: publishing this replica's changes, adopting the others'."""
        return [self.publish, self.watch]

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, stop: asyncio.Event) -> None:
        """Keep the bucket current with this replica's own breaker changes until ``stop``."""
        seen: dict[str, dict[str, object]] = {}
        while not stop.is_set():
            try:
                await self.publish_changes(seen)
            except Exception as exc:  # NATS down or slow: the next round tries again
                log.warning("publishing breaker states failed: %s: %s", type(exc).__name__, exc)
            await _first(stop, self.router.changed, self.refresh_s)
            self.router.changed.clear()

    async def publish_changes(self, seen: dict[str, dict[str, object]]) -> None:
        """Write each breaker whose state or reason differs from ``seen`` (updated as written)."""
        now, wall = self.router.clock(), self.wall()
        snapshot = self.router.breakers.snapshot(now)
        for name, breaker in self.router.breakers.items():
            state, previous = {k: snapshot[name][k] for k in ("state", "reason")}, seen.get(name)
            if state == previous:
                continue
            if breaker.adopted_from:
                seen[name] = state  # the origin's entry says it already
                continue
            entry: dict[str, object] = {
                **state,
                "until": wall + breaker.remaining(now),
                "by": self.replica,
                "recovered": state["state"] == CLOSED
                and previous is not None
                and previous["state"] != CLOSED,
            }
            value = json.dumps(entry).encode()
            if previous is None and state["state"] == CLOSED:
                await self._publish_initial(name, value, wall)
            else:
                await (await self.state.kv()).put(name, value)
            seen[name] = state

    async def _publish_initial(self, name: str, value: bytes, wall: float) -> None:
        """A replica's first word on a provider: written unless another replica's trip is in force."""

        def change(current: bytes | None) -> tuple[bytes | None, None]:
            other = _decode(current or b"")
            if other and _live_trip(other, wall) and other.get("by") != self.replica:
                return None, None
            return value, None

        await self.state.update(name, change)

    # -- adopting -----------------------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> None:
        """Adopt the other replicas' entries until ``stop``; a failed watch is started again."""
        while not stop.is_set():
            try:
                ended = await self._watch_once(stop)
            except Exception as exc:
                log.warning("watching breaker states failed, starting again: %s: %s", type(exc).__name__, exc)
            else:
                if ended == _STOPPED:
                    return
                if ended == _IDLE:
                    continue  # the periodic resync: start again at once
                if ended == _RECONNECTED:
                    log.info("reconnected to nats: starting the breaker-state watch again")
                    continue
                log.warning("the breaker-state watch ended, starting again")
            await _first(stop, None, self.retry_s)

    async def _watch_once(self, stop: asyncio.Event) -> str:
        kv = await self.state.kv()
        # A watch left behind (a failed or resynced one) is dropped by the server after a minute.
        watcher = await kv.watchall(inactive_threshold=60.0)
        deadline = asyncio.get_running_loop().time() + self.resync_s
        reconnects = self.reconnects()
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return _IDLE
                got = await _next(watcher, stop, min(left, 1.0))
                if got == _IDLE and self.reconnects() != reconnects:
                    return _RECONNECTED
                if got == _IDLE:
                    continue
                if isinstance(got, str):
                    return got
                if got is None or got.operation is not None or not got.value:
                    continue  # the end-of-initial-values marker, a delete or a purge
                self.apply(got.key, got.value)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def apply(self, provider: str, value: bytes) -> bool:
        """Adopt one entry if another replica wrote it; returns whether a breaker changed."""
        entry = _decode(value)
        if entry is None:
            log.warning("ignoring an unreadable breaker state for %s: %r", provider, value[:200])
            return False
        by = str(entry.get("by") or "")
        if not by or by == self.replica or provider not in self.router.breakers:
            return False
        breaker = self.router.breakers[provider]
        now = self.router.clock()
        before = (breaker.state, breaker.adopted_from)
        try:
            if entry.get("state") == OPEN:
                end = float(entry["until"])
                if not math.isfinite(end):
                    raise ValueError(end)
                until = now + (end - self.wall())
                changed = breaker.adopt(until, str(entry.get("reason") or ""), now, by=by)
            elif entry.get("state") == CLOSED and entry.get("recovered") is True:
                changed = breaker.adopt_closed(now, by=by)
            else:
                return False
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed breaker state for %s: %r", provider, entry)
            return False
        if changed:
            self.router.changed.set()
            if (breaker.state, breaker.adopted_from) != before:
                log.info(
                    "breaker of %s follows %s: %s",
                    provider,
                    by,
                    breaker.state,
                    extra={"provider": provider, "reason": breaker.reason},
                )
        return changed


def _decode(value: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(value)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _live_trip(entry: dict[str, Any], wall: float) -> bool:
    try:
        return entry.get("state") == OPEN and float(entry["until"]) > wall
    except (KeyError, TypeError, ValueError):
        return False


async def _first(stop: asyncio.Event, other: asyncio.Event | None, within: float) -> None:
    """Wait until ``stop`` (or ``other``) is set, or ``within`` seconds have passed."""
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, other) if e is not None]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _next(
    watcher: KeyValue.KeyWatcher, stop: asyncio.Event, within: float
) -> KeyValue.Entry | str | None:
    """The watcher's next update (an entry, or None for the end of the initial values), or why none came."""
    update: asyncio.Future[KeyValue.Entry | None] = asyncio.ensure_future(anext(watcher))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        either: set[asyncio.Future[Any]] = {update, stopped}
        done, _ = await asyncio.wait(either, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in (update, stopped):
            if not w.done():
                w.cancel()
    if update in done:
        try:
            return update.result()
        except StopAsyncIteration:
            return _ENDED
    return _STOPPED if stopped in done else _IDLE
