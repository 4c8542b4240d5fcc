"""Webhook delivery: the job log fanned out into deliveries, and the deliveries sent.

The fan-out is a durable consumer on the job log (``gateway-webhooks``, shared by the gateway
replicas): each commit's events become one delivery per matching endpoint, stored before the
commit is acked. It exists only while some endpoint is enabled, so a deployment without
webhooks pays nothing per commit; made again, it starts at the earliest endpoint's creation.

The sender claims due deliveries endpoint by endpoint, at most ``per_endpoint`` in flight each,
so a slow or dead receiver holds only its own slots; every attempt is bounded by the poster's
timeout and recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import Counter, Histogram

from atelier_contracts import ids
from atelier_contracts.envelope import commit_decoder
from atelier_contracts.runtime.consumer import ACK, Consumer, ConsumerSpec, Outcome
from atelier_contracts.runtime.pull import stream_sequence
from atelier_contracts.subjects import JOBS_STREAM, job_subject
from atelier_gateway.app.webhooks import Attempt, Delivery, Endpoint, RetryPolicy, events_of, matches

log = logging.getLogger(__name__)

FANOUT = "gateway-webhooks"

DELIVERY_ATTEMPTS = Counter(
    "atelier_webhook_attempts", "Webhook delivery attempts", ["outcome"]
)  # outcome: delivered, retry, failed
DELIVERY_SECONDS = Histogram("atelier_webhook_attempt_seconds", "Time a webhook receiver took to answer")


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str = ""


class Poster(Protocol):
    """Sends one signed delivery and says how it went (never raises; bounded by a timeout)."""

    async def post(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> Answer: ...


class Store(Protocol):
    async def endpoints(self, tenant: str | None = None) -> list[Endpoint]: ...

    async def add_deliveries(self, deliveries: list[Delivery]) -> int: ...

    async def due_endpoints(self, now: datetime) -> set[str]: ...

    async def claim_due(
        self, endpoint_id: str, now: datetime, lease_s: float, limit: int
    ) -> list[Delivery]: ...

    async def finish_attempt(
        self, delivery: Delivery, attempt: Attempt, *, status: str, next_attempt_at: datetime | None
    ) -> None: ...


class EndpointCache:
    """The endpoints, read again at most every ``ttl_s`` (another replica's change shows then;
    this one's at once, by ``invalidate``)."""

    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._endpoints: list[Endpoint] = []
        self._read_at = float("-inf")
        self._generation = 0

    async def current(self) -> list[Endpoint]:
        if time.monotonic() - self._read_at > self.ttl_s:
            generation = self._generation
            endpoints = await self.store.endpoints()
            self._endpoints = endpoints
            # A change made while this read ran may be missing from it: then read again next time.
            self._read_at = time.monotonic() if generation == self._generation else float("-inf")
        return self._endpoints

    def invalidate(self) -> None:
        self._generation += 1
        self._read_at = float("-inf")


class WebhookDispatch:
    def __init__(
        self,
        store: Store,
        poster: Poster,
        clock: Callable[[], datetime],
        *,
        policy: RetryPolicy,
        timeout_s: float,
        per_endpoint: int = 4,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock
        self.policy = policy
        self.lease_s = timeout_s + 10.0
        self.per_endpoint = per_endpoint
        self.poll_s = poll_s
        self.endpoints = EndpointCache(store)
        self._wake = asyncio.Event()
        self._endpoints_changed = asyncio.Event()
        self._flying: dict[str, set[asyncio.Task[None]]] = {}

    def wake(self) -> None:
        self._wake.set()

    def endpoints_changed(self) -> None:
        """An endpoint was made, changed or removed here: read them again now."""
        self.endpoints.invalidate()
        self._endpoints_changed.set()
        self._wake.set()

    # -- whether to fan out at all --------------------------------------------------------
    async def fan_out(self, nc: Client, stop: asyncio.Event, check_every_s: float = 2.0) -> None:
        """Run the fan-out consumer while some endpoint is enabled, and remove it when none is."""
        running: tuple[asyncio.Event, asyncio.Task[None]] | None = None
        try:
            while not stop.is_set():
                self._endpoints_changed.clear()
                try:
                    enabled: list[Endpoint] | None = [e for e in await self.endpoints.current() if e.enabled]
                except Exception:  # SQL away: keep things as they are
                    enabled = None
                if running is not None and running[1].done():  # it died (NATS away at its start)
                    if not running[1].cancelled() and running[1].exception() is not None:
                        log.warning(
                            "webhook fan-out stopped; starting it again", exc_info=running[1].exception()
                        )
                    running = None
                if enabled and running is None:
                    spec = ConsumerSpec(
                        stream=JOBS_STREAM,
                        durable=FANOUT,
                        filter_subject=job_subject("*"),
                        start_at=min(e.created_at for e in enabled),
                    )
                    halt = asyncio.Event()
                    running = (halt, asyncio.create_task(Consumer(nc, spec, self.on_commit).run(halt)))
                elif enabled == [] and running is not None:
                    await _halt(*running)
                    running = None
                    with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                        await nc.jetstream().delete_consumer(JOBS_STREAM, FANOUT)
                waits = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._endpoints_changed.wait()),
                }
                await asyncio.wait(waits, timeout=check_every_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
        finally:
            if running is not None:
                await _halt(*running)

    # -- the fan-out -----------------------------------------------------------------------
    async def on_commit(self, msg: Msg) -> Outcome:
        commit = commit_decoder.decode(msg.data)
        targets = [e for e in await self.endpoints.current() if e.enabled and e.tenant == commit.tenant]
        if not targets:
            return ACK
        now = self.clock()
        deliveries = [
            Delivery(
                id=ids.derived_id("dlv", endpoint.id, event_id),
                endpoint_id=endpoint.id,
                tenant=commit.tenant,
                event_id=event_id,
                event_type=event_type,
                job_id=commit.job_id,
                payload=json.dumps(body, separators=(",", ":")),
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            for event_id, event_type, body in events_of(stream_sequence(msg), commit)
            for endpoint in targets
            if matches(endpoint.events, event_type) and commit.at >= endpoint.created_at
        ]
        if await self.store.add_deliveries(deliveries):
            self.wake()
        return ACK

    # -- the sender --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self._claim_and_send()
                except Exception:  # SQL away: try again at the next poll
                    log.warning("webhook sender could not claim deliveries", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
        finally:
            flying = [t for tasks in self._flying.values() for t in tasks]
            for task in flying:
                task.cancel()
            await asyncio.gather(*flying, return_exceptions=True)

    async def _claim_and_send(self) -> None:
        endpoints = [e for e in await self.endpoints.current() if e.enabled]
        if not endpoints:
            return
        due = await self.store.due_endpoints(self.clock())
        for endpoint in endpoints:
            flying = self._flying.setdefault(endpoint.id, set())
            free = self.per_endpoint - len(flying)
            if endpoint.id not in due or free <= 0:
                continue
            for delivery in await self.store.claim_due(endpoint.id, self.clock(), self.lease_s, free):
                task = asyncio.create_task(self._send(endpoint, delivery))
                flying.add(task)
                task.add_done_callback(flying.discard)

    async def _send(self, endpoint: Endpoint, delivery: Delivery) -> None:
        n = delivery.attempts + 1
        at = self.clock()
        t0 = time.perf_counter()
        try:
            answer = await self.poster.post(endpoint, delivery, n)
        except Exception as exc:  # a bug in sending: recorded like any failure, retried with backoff
            log.exception("webhook post failed", extra={"delivery": delivery.id})
            answer = Answer(None, f"{type(exc).__name__}: {exc}")
        took = time.perf_counter() - t0
        DELIVERY_SECONDS.observe(took)
        attempt = Attempt(
            n=n, at=at, status_code=answer.status_code, latency_ms=took * 1000, error=answer.error
        )
        code = answer.status_code
        if code is not None and 200 <= code < 300:
            status, due, outcome = "delivered", None, "delivered"
        else:
            due = self.policy.next_at(n, delivery.created_at, self.clock())
            status, outcome = ("pending", "retry") if due is not None else ("failed", "failed")
        DELIVERY_ATTEMPTS.labels(outcome).inc()
        try:
            await self.store.finish_attempt(
                replace(delivery, attempts=n), attempt, status=status, next_attempt_at=due
            )
        except Exception:  # its lease runs out and it is tried again: a repeat the id makes harmless
            log.warning("could not record a webhook attempt", exc_info=True, extra={"delivery": delivery.id})
        self.wake()  # a slot is free: more of this endpoint's may be due


async def _halt(halt: asyncio.Event, task: asyncio.Task[None]) -> None:
    halt.set()
    try:
        await asyncio.wait_for(task, 10)
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
    except Exception:
        log.warning("webhook fan-out ended with an error", exc_info=True)
