"""The provider router on real NATS and SQL: analytics agree with the logs; limits hold across replicas."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.common import Usage
from atelier_contracts.events import ProviderCalled
from atelier_contracts.readmodel import make_engine
from atelier_contracts.runtime.nats import connect, rate_limits
from atelier_contracts.runtime.worker_main import WorkerSettings
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import NatsServer
from atelier_gateway.adapters.analytics import SqlAnalytics
from atelier_provider_router.adapters.offline.provider import OfflineProvider
from atelier_provider_router.adapters.ratelimit import KvRateLimiter
from atelier_provider_router.app.capabilities import handlers as ai_handlers
from atelier_provider_router.app.gate import Gate
from atelier_provider_router.app.matrix import parse
from atelier_provider_router.app.ports import CallOptions, ErrorClass, ProviderError, TextRequest, TextResult
from atelier_provider_router.app.router import Router
from atelier_provider_router.main import setup as router_setup
from tests.integration.harness import platform
from tests.integration.test_provider_limits import matrix as a_then_b

pytestmark = pytest.mark.integration

MATRIX = """
[providers.flaky]
adapter = "offline"
cooldown_s = 0.05
[providers.offline]
adapter = "offline"
[[capabilities."text.generate"]]
provider = "flaky"
model = "big-1"
price = { input_token = 0.001, output_token = 0.002 }
[[capabilities."text.generate"]]
provider = "offline"
model = "offline-storyteller-1"
price = { output_token = 0.0001 }
"""


@dataclass
class Flaky:
    """A paid provider that answers 429 to every other call."""

    name: str = "flaky"
    capabilities: frozenset[str] = frozenset({"text.generate"})
    calls: list[str] = field(default_factory=list)

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        self.calls.append(options.idempotency_key)
        if len(self.calls) % 2 == 0:
            raise ProviderError(ErrorClass.RATE_LIMITED, "slow down", 429, 0.05)
        return TextResult(
            text="# T\n\nA short tale.",
            model=options.model,
            usage=Usage(units={"input_tokens": 10, "output_tokens": 20}),
        )


async def test_usage_and_analytics_match_the_logged_calls(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        router = Router(parse(MATRIX), {"flaky": Flaky(), "offline": OfflineProvider()})  # type: ignore[dict-item]
        p.pool("ai", ai_handlers(router, p.blobs), concurrency=1)
        ids = [await p.submit(capability="text.generate") for _ in range(12)]
        for job_id in ids:
            await p.wait_status(job_id, "succeeded")
        logged = [e.call for job_id in ids for e in await p.events(job_id) if isinstance(e, ProviderCalled)]
        engine = make_engine(database_url)
        try:
            analytics = SqlAnalytics(engine, p.nc, p.nc.jetstream())
            by_provider = {g["provider"]: g for g in await analytics.usage("t1", None, None, "provider")}
            stats = {
                s["provider"]: s
                for s in await analytics.providers("t1", datetime.now(UTC) - timedelta(days=1), None)
            }
            summary = await analytics.summary("t1", datetime.now(UTC))
        finally:
            await engine.dispose()
    made = [c for c in logged if c.outcome != "skipped"]
    for provider in ("flaky", "offline"):
        mine = [c for c in made if c.provider == provider]
        assert by_provider[provider]["calls"] == len(mine)
        assert by_provider[provider]["cost_usd"] == pytest.approx(sum(c.usage.cost_usd for c in mine))
        assert stats[provider]["calls"] == len(mine)
    flaky = [c for c in made if c.provider == "flaky"]
    assert stats["flaky"]["success_rate"] == pytest.approx(  # the API rounds it to 4 decimals
        sum(c.outcome == "succeeded" for c in flaky) / len(flaky), abs=5e-5
    )
    assert stats["flaky"]["failures"] == dict(Counter(c.error_class for c in flaky if c.outcome == "failed"))
    assert stats["offline"]["fallback_ratio"] > 0, "the offline provider answered when flaky said 429"
    assert by_provider["flaky"]["cost_usd"] > 0
    assert summary["jobs_by_status"]["succeeded"] == 12
    assert set(summary["backlog"]) >= {"ai-high", "ai-normal", "ai-low"}
    assert summary["recent_failures"][0]["error_class"] == "rate_limited"


async def test_a_rate_limit_holds_across_three_router_replicas(nats_server: NatsServer) -> None:
    """30 calls at once through 3 routers sharing the KV buckets: exactly `rpm` reach provider a."""
    nc = await connect(nats_server.url, "limits-test")
    try:
        js = nc.jetstream()
        matrix = parse(LIMITED)
        routers = [
            Router(
                matrix,
                {"a": Counting(), "b": Counting()},
                gate=Gate(limiter=KvRateLimiter(lambda: rate_limits(js))),
            )  # type: ignore[dict-item]
            for _ in range(3)
        ]
        request = TextRequest(prompt="p", title="t")

        async def one(i: int) -> str:
            router = routers[i % 3]
            work = WorkItem(
                work_id=f"j.s.{i}", job_id="j", tenant="t", step="s", attempt=1, capability="text.generate"
            )
            routed = await router.call("text.generate", work, lambda p, o: p.generate_text(request, o))
            return routed.route.provider

        answered = Counter(await asyncio.gather(*(one(i) for i in range(30))))
    finally:
        await nc.close()
    assert answered == {"a": 10, "b": 20}


LIMITED = a_then_b("rpm = 10")


@dataclass
class Counting:
    name: str = "counting"
    capabilities: frozenset[str] = frozenset({"text.generate"})

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        return TextResult(text="ok", model=options.model)


async def test_the_service_closes_its_provider_http_clients_when_it_stops(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix = tmp_path / "providers.toml"
    matrix.write_text(
        '[providers.remote]\nadapter = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[[capabilities."text.generate"]]\nprovider = "remote"\nmodel = "m"\n'
    )
    monkeypatch.setenv("ATELIER_PROVIDERS_FILE", str(matrix))
    settings = WorkerSettings.from_env("provider-router", 0)
    nc = await connect(nats_server.url, "router-setup-test")
    try:
        parts = router_setup(FileBlobStore(tmp_path / "blobs"), settings, nc)
        (close,) = parts.cleanup
        remote = close.__self__.providers["remote"]  # type: ignore[attr-defined]
        assert not remote._client.is_closed
        await close()
        assert remote._client.is_closed
    finally:
        await nc.close()
