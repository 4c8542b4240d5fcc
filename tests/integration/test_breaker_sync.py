"""Breaker trips shared by router replicas over a real nats-server (KV bucket ``ATELIER_PROVIDERS``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue

from atelier_contracts.runtime.nats import connect, provider_states
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import NatsServer
from atelier_provider_router.adapters.breaker_sync import BreakerSync
from atelier_provider_router.app.breaker import CLOSED, OPEN
from atelier_provider_router.app.matrix import parse
from atelier_provider_router.app.ports import CallOptions, ErrorClass, ProviderError, TextRequest, TextResult
from atelier_provider_router.app.router import Routed, Router
from tests.support import Clock, eventually

pytestmark = pytest.mark.integration

MATRIX = """
[providers.paid]
adapter = "offline"
[providers.offline]
adapter = "offline"
[[capabilities."text.generate"]]
provider = "paid"
model = "big-1"
[[capabilities."text.generate"]]
provider = "offline"
model = "offline-storyteller-1"
"""


@dataclass
class Scripted:
    """Answers 429 (Retry-After 30 s) while ``limited``, else a text; counts its calls."""

    name: str
    limited: bool = False
    calls: list[str] = field(default_factory=list)
    capabilities: frozenset[str] = frozenset({"text.generate"})

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        self.calls.append(options.idempotency_key)
        if self.limited:
            raise ProviderError(ErrorClass.RATE_LIMITED, "slow down", 429, 30.0)
        return TextResult(text=f"a tale by {self.name}", model=options.model)


@dataclass
class Replica:
    name: str
    nc: Client
    router: Router
    paid: Scripted
    sync: BreakerSync

    async def call(self, n: int) -> Routed[TextResult]:
        work = WorkItem(
            work_id=f"j.s.{self.name}.{n}", job_id="j", tenant="t", step="s", attempt=n,
            capability="text.generate",
        )  # fmt: skip
        request = TextRequest(prompt="p", title="t")
        return await self.router.call("text.generate", work, lambda p, o: p.generate_text(request, o))

    def state(self, provider: str = "paid") -> str:
        return self.router.breakers[provider].state


def bucket(nc: Client) -> Callable[[], Awaitable[KeyValue]]:
    return lambda: provider_states(nc.jetstream())


def reconnects(nc: Client) -> Callable[[], int]:
    return lambda: nc.stats["reconnects"]


@asynccontextmanager
async def replicas(
    url: str, *names: str, clocks: dict[str, Callable[[], float]] | None = None
) -> AsyncIterator[list[Replica]]:
    """Router replicas, each on its own connection, with the breaker sync running beside them."""
    stop = asyncio.Event()
    made: list[Replica] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for name in names:
            nc = await connect(url, f"router-{name}")
            paid = Scripted(f"paid@{name}")
            clock = (clocks or {}).get(name, time.monotonic)
            router = Router(parse(MATRIX), {"paid": paid, "offline": Scripted("offline")}, clock=clock)  # type: ignore[dict-item]
            sync = BreakerSync(router, bucket(nc), name, retry_s=0.2, reconnects=reconnects(nc))
            made.append(Replica(name, nc, router, paid, sync))
            tasks += [asyncio.create_task(part(stop)) for part in sync.parts]
        yield made
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for r in made:
            await r.nc.close()


async def _entry(nc: Client, provider: str) -> dict[str, object]:
    kv = await provider_states(nc.jetstream())
    try:
        return dict(json.loads((await kv.get(provider)).value or b"{}"))
    except Exception:
        return {}


async def test_a_429_on_one_replica_makes_the_other_skip_the_provider(nats_server: NatsServer) -> None:
    async with replicas(nats_server.url, "replica-a", "replica-b") as (a, b):
        a.paid.limited = True
        routed = await a.call(1)
        assert routed.route.provider == "offline"
        first = routed.attempts[0]
        assert (first.provider, first.outcome, first.error_class) == ("paid", "failed", "rate_limited")

        async def adopted() -> bool:
            return b.state() == OPEN

        await eventually(adopted, within=10)
        routed = await b.call(1)
        assert b.paid.calls == [], "replica B never called the provider replica A saw rate-limited"
        assert routed.route.provider == "offline"
        skip = routed.attempts[0]
        assert (skip.provider, skip.outcome, skip.error_class) == ("paid", "skipped", "cooling_down")
        assert "tripped by replica-a: 429" in skip.message
        assert b.router.breakers["paid"].remaining(b.router.clock()) == pytest.approx(30, abs=2)
        assert "paid cooling down" in routed.fallbacks[0]

        # The bucket still says replica A's trip: B did not publish the trip it adopted.
        entry = await _entry(a.nc, "paid")
        assert (entry["state"], entry["by"]) == ("open", "replica-a")


async def test_a_replica_that_starts_during_a_trip_keeps_it_and_follows_it(nats_server: NatsServer) -> None:
    async with replicas(nats_server.url, "replica-a") as (a,):
        a.paid.limited = True
        await a.call(1)

        async def tripped() -> bool:
            return (await _entry(a.nc, "paid")).get("state") == OPEN

        await eventually(tripped, within=10)
        async with replicas(nats_server.url, "replica-c") as (c,):

            async def adopted() -> bool:
                return c.state() == OPEN

            await eventually(adopted, within=10)
            assert (await c.call(1)).route.provider == "offline"
            assert c.paid.calls == []

            async def wrote_where_no_trip_was() -> bool:
                return (await _entry(c.nc, "offline")).get("by") == "replica-c"

            await eventually(wrote_where_no_trip_was, within=10)
        entry = await _entry(a.nc, "paid")
        assert (entry["state"], entry["by"]) == (OPEN, "replica-a"), "C's closed state did not hide A's trip"


async def test_a_recovery_on_one_replica_reopens_the_provider_on_the_other(nats_server: NatsServer) -> None:
    """Replica A's trip ends (its clock jumps 31 s), its probe succeeds, and B follows."""
    clock = Clock(1000.0)
    async with replicas(nats_server.url, "replica-a", "replica-b", clocks={"replica-a": clock}) as (a, b):
        a.paid.limited = True
        await a.call(1)

        async def b_open() -> bool:
            return b.state() == OPEN

        await eventually(b_open, within=10)
        a.paid.limited, clock.now = False, clock.now + 31
        assert (await a.call(2)).route.provider == "paid", "A's one probe"

        async def b_closed() -> bool:
            return b.state() == CLOSED

        await eventually(b_closed, within=10)
        assert (await b.call(2)).route.provider == "paid"
        assert len(b.paid.calls) == 1


async def test_the_sync_survives_a_nats_restart(nats_server: NatsServer) -> None:
    async with replicas(nats_server.url, "replica-a", "replica-b") as (a, b):

        async def published() -> bool:
            return bool(await _entry(a.nc, "offline"))

        await eventually(published, within=10)
        nats_server.stop()
        nats_server.start()

        async def reconnected() -> bool:
            return a.nc.is_connected and b.nc.is_connected

        await eventually(reconnected, within=20)
        a.paid.limited = True
        await a.call(1)

        async def adopted() -> bool:
            return b.state() == OPEN

        await eventually(adopted, within=30)
        assert (await b.call(1)).attempts[0].error_class == "cooling_down"
        assert b.paid.calls == []
