"""The provider router's rules, over fake providers (the port's fake) and a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from atelier_contracts.common import Usage
from atelier_contracts.runtime.workpool import WorkError
from atelier_contracts.work import WorkItem
from atelier_provider_router.app.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from atelier_provider_router.app.gate import Gate, Pass, Refusal, Ticket
from atelier_provider_router.app.matrix import MatrixError, ProviderConfig, Route, load, parse
from atelier_provider_router.app.ports import CallOptions, ErrorClass, ProviderError, TextRequest, TextResult
from atelier_provider_router.app.router import Router
from tests.support import Clock


@dataclass
class FakeProvider:
    """Answers from a script: an ErrorClass to raise, "slow" to hang, anything else to answer."""

    name: str
    script: list[object] = field(default_factory=list)
    calls: list[CallOptions] = field(default_factory=list)
    capabilities: frozenset[str] = frozenset({"text.generate"})

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        self.calls.append(options)
        step = self.script.pop(0) if self.script else "ok"
        if step == "slow":
            await asyncio.Event().wait()
        if isinstance(step, ErrorClass):
            retry = 7.0 if step == ErrorClass.RATE_LIMITED else None
            raise ProviderError(step, f"{step} from {self.name}", 429 if retry else 500, retry)
        usage = Usage(units={"input_tokens": 100, "output_tokens": 50})
        return TextResult(text=f"story by {self.name}", model=options.model, usage=usage)


MATRIX = """
strategy = "{strategy}"
[providers.a]
adapter = "offline"
min_calls = 2
[providers.b]
adapter = "offline"
[[capabilities."text.generate"]]
provider = "a"
model = "m1"
timeout_s = 0.2
price = {{ input_token = 0.001, output_token = 0.002 }}
[[capabilities."text.generate"]]
provider = "b"
model = "m2"
"""


def setup(
    strategy: str = "prefer_quality", **scripts: list[object]
) -> tuple[Router, dict[str, FakeProvider], Clock]:
    providers = {n: FakeProvider(n, list(scripts.get(n, []))) for n in ("a", "b")}
    clock = Clock()
    router = Router(parse(MATRIX.format(strategy=strategy)), providers, clock=clock)  # type: ignore[arg-type]
    return router, providers, clock


def item(n: int = 1, **params: object) -> WorkItem:
    return WorkItem(
        work_id=f"job_1.story.{n}", job_id="job_1", tenant="t", step="story", attempt=n,
        capability="text.generate", params=dict(params),
    )  # fmt: skip


async def call(router: Router, work: WorkItem | None = None):  # type: ignore[no-untyped-def]
    request = TextRequest(prompt="p", title="t")
    return await router.call("text.generate", work or item(), lambda p, o: p.generate_text(request, o))


async def test_the_first_provider_answers_and_its_cost_is_priced() -> None:
    router, providers, _ = setup()
    routed = await call(router)
    assert routed.route.key == "a/m1"
    assert routed.usage.cost_usd == pytest.approx(100 * 0.001 + 50 * 0.002)
    assert [a.outcome for a in routed.attempts] == ["succeeded"]
    assert providers["a"].calls[0].idempotency_key == "job_1.story.1:a/m1"
    assert routed.fallbacks == []


async def test_a_429_falls_over_and_says_why_then_cools_the_provider_down() -> None:
    router, providers, clock = setup(a=[ErrorClass.RATE_LIMITED])
    routed = await call(router)
    assert routed.route.key == "b/m2"
    assert [(a.provider, a.outcome, a.error_class) for a in routed.attempts] == [
        ("a", "failed", "rate_limited"),
        ("b", "succeeded", ""),
    ]
    assert routed.fallbacks == ["fell back to b/m2: a/m1 answered 429"]
    again = await call(router, item(2))
    assert [a.outcome for a in again.attempts] == ["skipped", "succeeded"]
    assert "cooling down (429, 7.0s left)" in again.fallbacks[0]
    assert len(providers["a"].calls) == 1, "no call to a provider that is cooling down"
    clock.now += 8
    probe = await call(router, item(3))
    assert probe.route.key == "a/m1", "after Retry-After one real request probes it"


@pytest.mark.parametrize("error", [ErrorClass.CONTENT_POLICY, ErrorClass.INVALID_REQUEST])
async def test_a_refused_prompt_fails_fast_without_failover(error: ErrorClass) -> None:
    router, providers, _ = setup(a=[error])
    with pytest.raises(WorkError) as raised:
        await call(router)
    assert raised.value.code == "prompt_invalid"
    assert not raised.value.retryable
    assert providers["b"].calls == []
    assert [a.error_class for a in raised.value.attempts] == [str(error)]


async def test_server_errors_timeouts_and_connections_fall_over() -> None:
    for error in ("slow", ErrorClass.SERVER_ERROR, ErrorClass.CONNECTION, ErrorClass.CONTEXT_TOO_LONG):
        router, _, _ = setup(a=[error])
        routed = await call(router)
        assert routed.route.key == "b/m2", error
    router, _, _ = setup(a=["slow"])
    routed = await call(router)
    assert routed.fallbacks == ["fell back to b/m2: a/m1 timed out after 0.2s"]


async def test_when_everyone_fails_the_step_is_retried_later() -> None:
    router, _, _ = setup(a=[ErrorClass.SERVER_ERROR], b=[ErrorClass.SERVER_ERROR])
    with pytest.raises(WorkError) as raised:
        await call(router)
    assert (raised.value.code, raised.value.retryable) == ("provider_error", True)
    assert len(raised.value.attempts) == 2


async def test_when_everyone_is_cooling_down_the_step_waits_for_the_first_to_return() -> None:
    router, _, _ = setup(a=[ErrorClass.RATE_LIMITED], b=[ErrorClass.RATE_LIMITED])
    with pytest.raises(WorkError) as raised:
        await call(router)
    assert raised.value.code == "providers_unavailable"
    assert raised.value.retry_after_s == pytest.approx(7.0)


async def test_auth_errors_take_the_provider_out() -> None:
    router, providers, clock = setup(a=[ErrorClass.AUTH])
    await call(router)
    clock.now += 600
    routed = await call(router, item(2))
    assert routed.route.key == "b/m2"
    assert len(providers["a"].calls) == 1


async def test_the_jobs_sticky_provider_goes_first_and_latency_strategy_learns() -> None:
    router, _, _ = setup()
    assert (await call(router, item(1, sticky_provider="b"))).route.key == "b/m2"
    router, _, _ = setup(strategy="prefer_latency")
    router.latency_ms = {"a/m1": 900.0, "b/m2": 40.0}
    assert [r.key for r in router.order("text.generate")] == ["b/m2", "a/m1"]


def test_breaker_trips_on_failure_rate_and_probes_once() -> None:
    b = Breaker(ProviderConfig(adapter="offline", min_calls=4, failure_rate=0.5, cooldown_s=10))
    for ok in (True, False, True):
        b.succeeded() if ok else b.failed(ErrorClass.SERVER_ERROR, 0)
    assert b.state == CLOSED
    b.failed(ErrorClass.TIMEOUT, 0)
    assert (b.state, b.remaining(5)) == (OPEN, 5)
    assert not b.allow(9)
    assert b.allow(10)
    assert b.state == HALF_OPEN
    assert not b.allow(10), "one probe at a time"
    b.failed(ErrorClass.SERVER_ERROR, 10)
    assert (b.state, b.remaining(10)) == (OPEN, 20), "a failed probe doubles the cooldown"
    assert b.allow(30)
    b.succeeded()
    assert b.state == CLOSED


def test_request_errors_do_not_count_against_a_providers_health() -> None:
    b = Breaker(ProviderConfig(adapter="offline", min_calls=1, failure_rate=0.1))
    for _ in range(5):
        b.failed(ErrorClass.CONTENT_POLICY, 0)
    assert b.state == CLOSED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strategy = 'fastest'", "strategy"),
        ("[providers.x]\nadapter = 'telepathy'", "adapter"),
        ("[providers.x]\nadapter = 'openai'", "needs base_url"),
        (
            "[providers.x]\nadapter = 'offline'\napi_key_env = 'ATELIER_NO_SUCH_KEY'",
            "ATELIER_NO_SUCH_KEY is not set",
        ),
        ("[[capabilities.'text.generate']]\nprovider = 'ghost'\nmodel = 'm'", "unknown provider 'ghost'"),
        (
            "[providers.o]\nadapter='offline'\n[[capabilities.'image.edit']]\nprovider='o'\nmodel='m'",
            "cannot do",
        ),
        (
            "[providers.o]\nadapter='offline'\n[[capabilities.'bundle.zip']]\nprovider='o'\nmodel='m'",
            "not one",
        ),
        ("[providers.o]\nadapter='offline'\ncolour='red'", "colour"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_invalid_configuration_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(MatrixError) as raised:
        parse(text, "providers.toml")
    assert message in str(raised.value)


@dataclass
class Closable(FakeProvider):
    closed: int = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_a_reload_closes_the_old_adapters_once_their_calls_must_have_ended() -> None:
    old = {n: Closable(n) for n in ("a", "b")}
    clock = Clock()
    router = Router(parse(MATRIX.format(strategy="prefer_quality")), old, clock=clock)  # type: ignore[arg-type]
    new = {n: Closable(n) for n in ("a", "b")}
    router.reload(router.matrix, new)  # type: ignore[arg-type]
    assert (await call(router)).route.provider == "a"
    assert new["a"].calls, "calls go to the new adapters at once"
    clock.now += 59  # b's route has the default 60 s timeout: a call on an old adapter may still run
    await router.reap()
    assert [p.closed for p in old.values()] == [0, 0]
    clock.now += 2
    await router.reap()
    assert [p.closed for p in old.values()] == [1, 1]
    await router.aclose()
    assert [p.closed for p in (*old.values(), *new.values())] == [1, 1, 1, 1], "each closed once"


async def test_a_probe_the_gate_refused_does_not_leave_the_breaker_stuck_half_open() -> None:
    class RefuseOnce(Gate):
        refused = False

        async def enter(self, route: Route, ticket: Ticket) -> Pass | Refusal:
            if route.provider == "a" and not self.refused:
                self.refused = True
                return Refusal("over_limit", "a is busy", 1.0)
            return await super().enter(route, ticket)

    router, _, clock = setup(a=[ErrorClass.RATE_LIMITED])
    await call(router)  # a answers 429: cooling for 7 s
    router.gate = RefuseOnce()
    clock.now += 8  # half-open: the next call may probe a...
    assert (await call(router, item(2))).route.provider == "b", "...but the gate refused it"
    assert (await call(router, item(3))).route.provider == "a", "so the call after probes instead"
    assert router.breakers["a"].state == CLOSED


@pytest.mark.parametrize("path", [None, Path(__file__).parents[2] / "deploy/local/providers.fake.toml"])
def test_the_shipped_matrices_load(path: Path | None) -> None:
    matrix = load(path)
    studio = {"image.optimize", "image.bg_replace", "image.refine", "image.platform"}
    assert set(matrix.capabilities) == {"text.generate", "image.generate", "tts", "video.from_image", *studio}


async def test_the_api_sees_a_rested_breaker_as_half_open_ready_to_probe() -> None:
    router, _, clock = setup(a=[ErrorClass.RATE_LIMITED])
    await call(router)
    assert router.breakers.snapshot(clock.now)["a"] == {"state": "open", "reason": "429", "remaining_s": 7.0}
    clock.now += 8
    assert router.breakers.snapshot(clock.now)["a"]["state"] == "half_open"
