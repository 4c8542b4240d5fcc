"""The provider router over real HTTP: against a direct request to the same local server, and the
time a failover takes when the primary answers 429.

Two fake OpenAI-compatible servers (``atelier_devstack.fake_openai``) run on loopback, each in a
process of its own so they do not share this process's GIL: B answers, A answers 429 to every
request (``atelier-fake-openai --rate-429 1``, Retry-After one hour). Each of N rounds times one call of
every kind, in a rotating order, so drift and warm-up affect them alike and the ratios compare.

    python -m bench.router_http
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from atelier_contracts.work import WorkItem
from atelier_devstack.fake_openai_cli import child_process
from atelier_provider_router.adapters.openai_compat import KEEPALIVE_EXPIRY_S, OpenAICompatibleProvider
from atelier_provider_router.app.matrix import parse
from atelier_provider_router.app.ports import CallOptions, Provider, TextRequest, TextResult
from atelier_provider_router.app.router import Routed, Router

N = int(os.environ.get("BENCH_N", "1000"))
WARMUP = 50
RETRY_AFTER_S = 3600.0
MATRIX = """
[providers.a]
adapter = "openai"
base_url = "{a}"
[providers.b]
adapter = "openai"
base_url = "{b}"
[[capabilities."text.generate"]]
provider = "{first}"
model = "m1"
timeout_s = 10
[[capabilities."text.generate"]]
provider = "{second}"
model = "m2"
timeout_s = 10
"""
Call = Callable[[int], Awaitable[object]]


def item(i: int) -> WorkItem:
    return WorkItem(
        work_id=f"j.s.{i}", job_id="j", tenant="t", step="s", attempt=1, capability="text.generate"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:6.3f} ms"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[94]


async def rounds(calls: dict[str, Call], n: int, first: int = 0) -> dict[str, list[float]]:
    """Rounds ``first`` to ``first + n - 1`` of one call of each kind, the order rotated every
    round; seconds per call."""
    names = list(calls)
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(first, first + n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            await calls[name](i)
            out[name].append(time.perf_counter() - t0)
    return out


async def main() -> None:
    request = TextRequest(prompt="p", title="t")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, N={N}")
    busy = ("--rate-429", "1", "--retry-after-s", str(RETRY_AFTER_S))
    with child_process(*busy) as (a_url, _), child_process() as (b_url, _):
        admin = httpx.AsyncClient(base_url=a_url.removesuffix("/v1"))  # /_stats of A
        raw = httpx.AsyncClient(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S))  # as the adapter's
        a = OpenAICompatibleProvider(name="a", base_url=a_url)
        b = OpenAICompatibleProvider(name="b", base_url=b_url)
        providers: dict[str, Provider] = {"a": a, "b": b}
        try:
            await run(request, providers, a_url, b_url, raw)
            stats = (await admin.get("/_stats")).json()
            # One 429 per round of the first failover, and the one that tripped `cooling`.
            assert stats["outcomes"] == {"rate_limited": N + WARMUP + 1}, stats["outcomes"]
        finally:
            for client in (a, b):
                await client.aclose()
            await raw.aclose()
            await admin.aclose()


async def run(
    request: TextRequest, providers: dict[str, Provider], a_url: str, b_url: str, raw: httpx.AsyncClient
) -> None:
    healthy = parse(MATRIX.format(a=a_url, b=b_url, first="b", second="a"))
    failing = parse(MATRIX.format(a=a_url, b=b_url, first="a", second="b"))
    # What the adapter sends for this request: the same body and headers, straight through httpx
    # (the baseline checks the status but does not parse the answer; the adapter does).
    payload = {
        "model": "m1",
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": f'Write a story titled "{request.title}" about: {request.prompt}'},
        ],
        "max_tokens": request.max_tokens,
        "seed": request.seed,
    }

    def options(i: int) -> CallOptions:
        return CallOptions(model="m1", timeout_s=10, idempotency_key=f"j.s.{i}:b/m1")

    async def direct_http(i: int) -> None:
        headers = {"Idempotency-Key": options(i).idempotency_key}
        answer = await raw.post(f"{b_url}/chat/completions", json=payload, headers=headers, timeout=10)
        answer.raise_for_status()

    async def adapter(i: int) -> TextResult:
        return await providers["b"].generate_text(request, options(i))

    def through(router: Router, i: int) -> Awaitable[Routed[TextResult]]:
        return router.call("text.generate", item(i), lambda p, o: p.generate_text(request, o))

    plain = Router(healthy, providers)
    # The first failover: the breaker is closed, so the 429's round trip is paid. A fresh Router
    # (fresh breakers, same adapters and connection pools) per call, built before the clock starts.
    fresh = [Router(failing, providers) for _ in range(WARMUP + N)]
    # The steady state: A tripped on its first 429 (Retry-After one hour) and is skipped.
    cooling = Router(failing, providers)
    answered_by: dict[str, set[str]] = {"first": set(), "steady": set()}

    async def first_failover(i: int) -> None:
        routed = await through(fresh[i], i)
        answered_by["first"].add(routed.route.key)

    async def steady_failover(i: int) -> None:
        routed = await through(cooling, i)
        answered_by["steady"].add(routed.route.key)

    calls: dict[str, Call] = {
        "direct": direct_http,
        "adapter": adapter,
        "router": lambda i: through(plain, i),
        "first": first_failover,
        "steady": steady_failover,
    }
    await rounds(calls, WARMUP, first=N)  # opens the connections; trips A's breaker in `cooling`
    times = await rounds(calls, N)
    assert answered_by == {"first": {"b/m2"}, "steady": {"b/m2"}}, answered_by
    assert cooling.breakers["a"].state == "open"

    labels = {
        "direct": "direct HTTP request (httpx)",
        "adapter": "through the adapter",
        "router": "through the router",
        "first": "failover, breaker closed (429 paid)",
        "steady": "failover, primary cooling (skipped)",
    }
    p50 = {name: statistics.median(samples) for name, samples in times.items()}
    top = {name: p95(samples) for name, samples in times.items()}
    print(f"{'':38} {'p50':>9}  {'p95':>9}   to direct: p50  p95")
    for name, label in labels.items():
        ratio = f"{p50[name] / p50['direct']:.2f}x  {top[name] / top['direct']:.2f}x"
        print(f"{label + ':':38} {ms(p50[name])}  {ms(top[name])}   {ratio:>16}")
    print(f"adapter over direct HTTP (p50):         {(p50['adapter'] - p50['direct']) * 1e6:.0f} µs")
    print(f"router over the adapter (p50):          {(p50['router'] - p50['adapter']) * 1e6:.0f} µs")
    print(f"first failover over the router (p50):   {(p50['first'] - p50['router']) * 1e6:.0f} µs")
    print(f"cooling failover over the router (p50): {(p50['steady'] - p50['router']) * 1e6:.0f} µs")


if __name__ == "__main__":
    asyncio.run(main())
