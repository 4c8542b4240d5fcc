"""Provider-router overhead and failover time, against an in-process provider (no network), so
the figures are the router's own cost: ordering, breakers, attempts, and the shared limits and
budgets kept in NATS KV.

    python -m bench.router
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from atelier_contracts.budgets import BudgetLimit, limit_key
from atelier_contracts.common import Usage
from atelier_contracts.runtime.nats import budgets, connect, rate_limits
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import start_nats
from atelier_provider_router.adapters.budgets import KvBudgets
from atelier_provider_router.adapters.ratelimit import KvLeases, KvRateLimiter
from atelier_provider_router.app.gate import Gate
from atelier_provider_router.app.matrix import parse
from atelier_provider_router.app.ports import CallOptions, ErrorClass, ProviderError, TextRequest, TextResult
from atelier_provider_router.app.router import Router

N = int(os.environ.get("BENCH_N", "2000"))
PRICE = "price = { input_token = 0.000001, output_token = 0.000002 }"
WORST = {"input_tokens": 100.0, "output_tokens": 100.0}
MATRIX = """
[providers.a]
adapter = "offline"
[providers.b]
adapter = "offline"
[[capabilities."text.generate"]]
provider = "a"
model = "m1"
{limit}
[[capabilities."text.generate"]]
provider = "b"
model = "m2"
"""


@dataclass
class Echo:
    """Answers at once, or with a 429 when ``busy`` (the primary of the failover measurement)."""

    name: str
    busy: bool = False
    capabilities: frozenset[str] = frozenset({"text.generate"})

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        if self.busy:
            raise ProviderError(ErrorClass.RATE_LIMITED, "busy", 429)
        return TextResult(text="ok", model=options.model, usage=Usage(units=WORST))


def item(i: int) -> WorkItem:
    return WorkItem(
        work_id=f"j.s.{i}", job_id="j", tenant="t", step="s", attempt=1, capability="text.generate"
    )


def figures(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {statistics.median(samples) * 1e6:7.1f} µs  p95 {q[94] * 1e6:7.1f} µs"


async def timed(call, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        out.append(time.perf_counter() - t0)
    return out


async def main() -> None:
    request = TextRequest(prompt="p", title="t")
    options = CallOptions(model="m1")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, N={N}")
    direct = Echo("a")
    base = await timed(lambda i: direct.generate_text(request, options), N)
    print(f"direct provider call:                                  {figures(base)}")

    plain = Router(parse(MATRIX.format(limit="")), {"a": Echo("a"), "b": Echo("b")})  # type: ignore[dict-item]
    routed = await timed(
        lambda i: plain.call("text.generate", item(i), lambda p, o: p.generate_text(request, o)), N
    )
    print(f"through the router:                                    {figures(routed)}")

    tmp = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    server = start_nats(tmp / "nats")
    try:
        nc = await connect(server.url, "bench-router")
        js = nc.jetstream()
        cases = {
            "shared rpm limit": ("rpm = 100000000", Gate(limiter=KvRateLimiter(lambda: rate_limits(js)))),
            "shared concurrency limit": (
                "concurrency = 1000",
                Gate(leases=KvLeases(lambda: rate_limits(js))),
            ),
            "tenant budget (reserve + settle)": (
                PRICE,
                Gate(budgets=KvBudgets(lambda: budgets(js), lambda: rate_limits(js))),
            ),
        }
        kv = await budgets(js)
        await kv.put(limit_key("t"), msgspec.json.encode(BudgetLimit(limit_usd=1e9)))
        for name, (limit, gate) in cases.items():
            limited = Router(parse(MATRIX.format(limit=limit)), {"a": Echo("a"), "b": Echo("b")}, gate=gate)  # type: ignore[dict-item]
            with_kv = await timed(
                lambda i, r=limited: r.call(
                    "text.generate", item(i), lambda p, o: p.generate_text(request, o), WORST
                ),
                N,
            )
            print(f"{'through the router, ' + name + ':':54} {figures(with_kv)}")
        await nc.close()
    finally:
        server.stop()

    # Failover: the primary answers 429 at once; time until the fallback's answer, against a
    # direct call to the fallback. The breaker is reset each round so every call fails over.
    failing = Router(parse(MATRIX.format(limit="")), {"a": Echo("a", busy=True), "b": Echo("b")})  # type: ignore[dict-item]

    async def failover(i: int) -> None:
        failing.breakers = type(failing.breakers)(failing.matrix.providers)
        await failing.call("text.generate", item(i), lambda p, o: p.generate_text(request, o))

    over = await timed(failover, N)
    print(f"failover (429 → second provider):                      {figures(over)}")
    extra = statistics.median(routed) - statistics.median(base)
    print(f"router overhead per call (p50):                        {extra * 1e6:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
