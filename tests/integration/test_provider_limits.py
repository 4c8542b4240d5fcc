"""Token, concurrency and budget limits hold across three router replicas sharing NATS KV."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pytest
from nats.aio.client import Client

from atelier_contracts.budgets import BudgetLimit, limit_key, spend_codec, spend_key
from atelier_contracts.common import Usage
from atelier_contracts.runtime.nats import budgets, connect, rate_limits
from atelier_contracts.runtime.workpool import WorkError
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import NatsServer
from atelier_provider_router.adapters.budgets import KvBudgets
from atelier_provider_router.adapters.ratelimit import KvLeases, KvRateLimiter
from atelier_provider_router.app.gate import Gate
from atelier_provider_router.app.matrix import parse
from atelier_provider_router.app.ports import CallOptions, ErrorClass, ProviderError, TextRequest, TextResult
from atelier_provider_router.app.router import Routed, Router
from tests.support import eventually

pytestmark = pytest.mark.integration

REQUEST = TextRequest(prompt="p", title="t")


@dataclass
class Paid:
    """A provider that bills 100 input and 100 output tokens a call; ``gate`` holds calls open."""

    name: str = "paid"
    capabilities: frozenset[str] = frozenset({"text.generate"})
    gate: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0
    calls: list[str] = field(default_factory=list)

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        self.calls.append(options.idempotency_key)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.in_flight -= 1
        return TextResult(
            text="ok", model=options.model, usage=Usage(units={"input_tokens": 100, "output_tokens": 100})
        )


def matrix(limits: str, price: str = "", fallback: bool = True) -> str:
    text = f"""
[providers.a]
adapter = "offline"
[providers.b]
adapter = "offline"
[[capabilities."text.generate"]]
provider = "a"
model = "m1"
{limits}
{price}
"""
    if fallback:
        text += """
[[capabilities."text.generate"]]
provider = "b"
model = "m2"
"""
    return text


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect(nats_server.url, "limits-test")
    yield client
    await client.close()


def replicas(
    nc: Client, config: str, a: Paid, b: Paid, n: int = 3, limits_ttl_s: float = 1.0
) -> list[Router]:
    """``n`` routers as separate processes would have them: own gates and KV handles, same buckets."""
    js = nc.jetstream()
    return [
        Router(
            parse(config),
            {"a": a, "b": b},  # type: ignore[dict-item]
            gate=Gate(
                limiter=KvRateLimiter(lambda: rate_limits(js)),
                leases=KvLeases(lambda: rate_limits(js)),
                budgets=KvBudgets(lambda: budgets(js), lambda: rate_limits(js), limits_ttl_s=limits_ttl_s),
            ),
        )
        for _ in range(n)
    ]


async def call(
    router: Router, i: int, project: str = "", worst: dict[str, float] | None = None
) -> Routed[TextResult]:
    work = WorkItem(
        work_id=f"j{i}.s.1",
        job_id=f"j{i}",
        tenant="acme",
        step="s",
        attempt=1,
        capability="text.generate",
        params={"input": {"project": project}} if project else {},
    )
    worst = worst or {"input_tokens": 100, "output_tokens": 100}
    return await router.call("text.generate", work, lambda p, o: p.generate_text(REQUEST, o), worst)


async def test_a_token_limit_holds_across_three_replicas(nc: Client) -> None:
    """tpm = 1000 and 200 tokens a call: 5 of 30 concurrent calls reach a, the rest fall over."""
    a, b = Paid(), Paid()
    routers = replicas(nc, matrix("tpm = 1000"), a, b)
    routed = await asyncio.gather(*(call(routers[i % 3], i) for i in range(30)))
    assert Counter(r.route.provider for r in routed) == {"a": 5, "b": 25}
    skipped = [t for r in routed for t in r.attempts if t.outcome == "skipped"]
    assert {t.error_class for t in skipped} == {"over_limit"}
    assert "1000 tokens a minute" in skipped[0].message


async def test_unused_tokens_are_given_back(nc: Client) -> None:
    """A call reserving 600 tokens that uses 200 leaves room for the next one (1000 - 200 ≥ 600)."""
    a, b = Paid(), Paid()
    router = replicas(nc, matrix("tpm = 1000"), a, b, n=1)[0]
    worst = {"input_tokens": 100, "output_tokens": 500}
    first = await call(router, 1, worst=worst)
    second = await call(router, 2, worst=worst)
    assert (first.route.provider, second.route.provider) == ("a", "a")


async def test_a_concurrency_limit_holds_across_three_replicas(nc: Client) -> None:
    """concurrency = 2: while two calls hang at a, the other seven go to b; a never sees three."""
    release = asyncio.Event()
    a, b = Paid(gate=release), Paid()
    routers = replicas(nc, matrix("concurrency = 2"), a, b)
    calls = [asyncio.create_task(call(routers[i % 3], i)) for i in range(9)]

    async def parked() -> bool:
        return len(a.calls) == 2 and len(b.calls) == 7

    await eventually(parked, within=10)
    release.set()
    routed = await asyncio.gather(*calls)
    assert a.most_in_flight == 2
    assert Counter(r.route.provider for r in routed) == {"a": 2, "b": 7}
    # The slots were given back: the next call goes to a again.
    assert (await call(routers[0], 99)).route.provider == "a"


PRICED = "price = { input_token = 0.001, output_token = 0.002 }"  # 100 in + 100 out = $0.30 a call


async def put_limit(nc: Client, tenant: str, project: str, usd: float) -> None:
    kv = await budgets(nc.jetstream())
    await kv.put(limit_key(tenant, project), msgspec.json.encode(BudgetLimit(limit_usd=usd)))


async def spend_of(nc: Client, tenant: str, project: str = "") -> tuple[float, float, bool]:
    """This month's spend of a scope, what calls in flight hold, and whether it alerted."""
    kv = await budgets(nc.jetstream())
    spend = spend_codec.decode((await kv.get(spend_key(tenant, project))).value or b"{}")
    return spend.spent(spend.month), spend.reserved_usd, spend.month in spend.alerted


async def test_a_budget_holds_across_three_replicas_and_alerts_once(nc: Client) -> None:
    """$1.00 at $0.30 a call: three of twelve concurrent calls fit; the others fall to the free b."""
    await put_limit(nc, "acme", "", 1.0)
    a, b = Paid(), Paid()
    routers = replicas(nc, matrix("", PRICED), a, b)
    routed = await asyncio.gather(*(call(routers[i % 3], i) for i in range(12)))
    assert Counter(r.route.provider for r in routed) == {"a": 3, "b": 9}
    assert await spend_of(nc, "acme") == (pytest.approx(0.9), 0.0, True)
    alerts = [alert for r in routed for alert in r.alerts]
    assert len(alerts) == 1
    assert alerts[0].limit_usd == 1.0
    assert alerts[0].spent_usd >= 0.8
    over = [t for r in routed for t in r.attempts if t.error_class == "over_budget"]
    assert len(over) == 9
    assert "tenant 'acme' budget would be exceeded" in over[0].message
    assert all("fell back to b/m2" in r.fallbacks[0] for r in routed if r.route.provider == "b")


async def test_the_reservation_is_the_worst_case_and_settles_at_the_real_cost(nc: Client) -> None:
    """Worst case $0.90 a call but each costs $0.30: with $1.00, calls go one after another."""
    await put_limit(nc, "acme", "", 1.0)
    a, b = Paid(), Paid()
    router = replicas(nc, matrix("", PRICED), a, b, n=1)[0]
    worst = {"input_tokens": 100, "output_tokens": 400}
    first = await call(router, 1, worst=worst)
    assert first.route.provider == "a"
    assert await spend_of(nc, "acme") == (pytest.approx(0.3), 0.0, False)
    second = await call(router, 2, worst=worst)  # 0.3 spent + 0.9 worst > 1.0
    assert second.route.provider == "b"


async def test_a_project_budget_refuses_while_the_tenant_has_room(nc: Client) -> None:
    await put_limit(nc, "acme", "", 100.0)
    await put_limit(nc, "acme", "spring", 0.5)
    a, b = Paid(), Paid()
    router = replicas(nc, matrix("", PRICED, fallback=False), a, b, n=1)[0]
    assert (await call(router, 1, project="spring")).route.provider == "a"
    with pytest.raises(WorkError) as refused:
        await call(router, 2, project="spring")
    assert refused.value.code == "budget_exceeded"
    assert not refused.value.retryable
    assert "project 'spring' budget would be exceeded" in refused.value.message
    # The tenant's hold taken before the project refused was given back; another project still runs.
    assert await spend_of(nc, "acme") == (pytest.approx(0.3), 0.0, False)
    assert (await call(router, 3, project="autumn")).route.provider == "a"
    assert await spend_of(nc, "acme", "spring") == (pytest.approx(0.3), 0.0, False)


async def test_spend_is_kept_without_a_limit_so_a_later_limit_counts_it(nc: Client) -> None:
    a, b = Paid(), Paid()
    router = replicas(nc, matrix("", PRICED, fallback=False), a, b, n=1, limits_ttl_s=0)[0]
    for i in range(3):
        await call(router, i)
    assert await spend_of(nc, "acme") == (pytest.approx(0.9), 0.0, False)
    await put_limit(nc, "acme", "", 1.0)
    with pytest.raises(WorkError) as refused:
        await call(router, 9)
    assert refused.value.code == "budget_exceeded"


async def test_a_call_larger_than_the_token_limit_takes_the_whole_bucket(nc: Client) -> None:
    """tpm = 1000, a worst case of 1300: the call waits for a full bucket and holds all of it."""
    a, b = Paid(), Paid()
    router = replicas(nc, matrix("tpm = 1000"), a, b, n=1)[0]
    worst = {"input_tokens": 100, "output_tokens": 1200}
    first, second = await call(router, 1, worst=worst), await call(router, 2, worst=worst)
    assert (first.route.provider, second.route.provider) == ("a", "b"), "200 used, 800 back: not full"


async def test_a_call_cut_off_mid_flight_is_billed_once_when_it_runs_again(nc: Client) -> None:
    """The hold of a cancelled call stays (the provider may bill it); its redelivery settles once."""
    await put_limit(nc, "acme", "", 1.0)
    release = asyncio.Event()
    a, b = Paid(gate=release), Paid()
    router = replicas(nc, matrix("", PRICED, fallback=False), a, b, n=1)[0]
    first = asyncio.create_task(call(router, 1))

    async def in_flight() -> bool:
        return a.in_flight == 1

    await eventually(in_flight, within=10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await spend_of(nc, "acme") == (0.0, pytest.approx(0.3), False), "held until it runs out"
    release.set()
    again = await call(router, 1)  # the same work item, redelivered
    assert again.route.provider == "a"
    assert await spend_of(nc, "acme") == (pytest.approx(0.3), 0.0, False)
    assert [t.usage.cost_usd for t in again.attempts] == [pytest.approx(0.3)]


async def test_a_failed_call_lets_its_hold_go_and_its_retry_is_billed(nc: Client) -> None:
    await put_limit(nc, "acme", "", 1.0)

    class FailsOnce(Paid):
        async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
            if not self.calls:
                self.calls.append(options.idempotency_key)
                raise ProviderError(ErrorClass.SERVER_ERROR, "boom", 500)
            return await super().generate_text(request, options)

    router = replicas(nc, matrix("", PRICED, fallback=False), FailsOnce(), Paid(), n=1)[0]
    with pytest.raises(WorkError):
        await call(router, 1)
    assert await spend_of(nc, "acme") == (0.0, 0.0, False)
    router.breakers["a"].succeeded()
    await call(router, 1)
    assert await spend_of(nc, "acme") == (pytest.approx(0.3), 0.0, False)


async def test_a_budget_full_only_of_calls_in_flight_makes_the_step_wait_not_fail(nc: Client) -> None:
    """$1.00, worst case $0.60 a call: the second call in flight does not fit yet, but will."""
    await put_limit(nc, "acme", "", 1.0)
    release = asyncio.Event()
    a, b = Paid(gate=release), Paid()
    router = replicas(nc, matrix("", PRICED, fallback=False), a, b, n=1)[0]
    worst = {"input_tokens": 200, "output_tokens": 200}
    first = asyncio.create_task(call(router, 1, worst=worst))

    async def in_flight() -> bool:
        return a.in_flight == 1

    await eventually(in_flight, within=10)
    with pytest.raises(WorkError) as waiting:
        await call(router, 2, worst=worst)
    release.set()
    await first
    assert waiting.value.code == "providers_unavailable"
    assert waiting.value.retryable
    assert waiting.value.retry_after_s == pytest.approx(2.0)
