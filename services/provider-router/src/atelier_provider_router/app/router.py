"""Routing one work item over the providers of its capability: order, failover, cooldowns.

Each candidate is tried at most once per work item, in the order the strategy gives (the job's
sticky provider first when it is configured). Every call and every skip becomes a
``ProviderAttempt`` that travels back in the work report, so the job's log says which provider
answered, what it cost, and why each earlier one was passed over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from prometheus_client import Counter, Histogram

from atelier_contracts.budgets import project_of
from atelier_contracts.common import BudgetAlert, ProviderAttempt, Usage
from atelier_contracts.runtime import telemetry
from atelier_contracts.runtime.telemetry import failed
from atelier_contracts.runtime.workpool import WorkError
from atelier_contracts.work import WorkItem
from atelier_provider_router.app.breaker import Breakers
from atelier_provider_router.app.gate import Gate, Refusal, Ticket
from atelier_provider_router.app.matrix import Matrix, Route
from atelier_provider_router.app.ports import CallOptions, ErrorClass, Provider, ProviderError

FAIL_FAST = {ErrorClass.CONTENT_POLICY, ErrorClass.INVALID_REQUEST}
UNANSWERED = {ErrorClass.TIMEOUT, ErrorClass.CONNECTION}
"""Failures after which the provider may still have done (and billed) the work."""

PROVIDER_LATENCY = Histogram(
    "provider_latency_seconds", "Provider call latency", ["provider", "capability"], buckets=(
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
    )
)  # fmt: skip
PROVIDER_ERRORS = Counter("provider_errors_total", "Failed provider calls", ["provider", "model", "reason"])
FALLBACKS = Counter(
    "fallbacks_total", "Work answered by a provider other than the first choice", ["capability"]
)
ROUTED = Counter(
    "routed_total",
    "Work answered by some provider (fallbacks_total / routed_total: the fallback ratio)",
    ["capability"],
)
EWMA_ALPHA = 0.3


class Answer(Protocol):
    @property
    def model(self) -> str: ...

    @property
    def usage(self) -> Usage: ...


R = TypeVar("R", bound=Answer)
Invoke = Callable[[Provider, CallOptions], Awaitable[R]]


@dataclass(frozen=True)
class Routed(Generic[R]):
    result: R
    route: Route
    usage: Usage
    attempts: list[ProviderAttempt]
    fallbacks: list[str] = field(default_factory=list)
    alerts: list[BudgetAlert] = field(default_factory=list)


def describe(error: ProviderError, route: Route) -> str:
    if error.error_class == ErrorClass.RATE_LIMITED:
        return f"{route.key} answered 429"
    if error.error_class == ErrorClass.TIMEOUT:
        return f"{route.key} timed out after {route.timeout_s:g}s"
    if error.status:
        return f"{route.key} answered {error.status} ({error.error_class})"
    return f"{route.key} failed ({error.error_class}: {error.message})"


class Router:
    def __init__(
        self,
        matrix: Matrix,
        providers: dict[str, Provider],
        clock: Callable[[], float] = time.monotonic,
        gate: Gate | None = None,
    ) -> None:
        self.matrix = matrix
        self.providers = providers
        self.gate = gate or Gate()
        self.breakers = Breakers(matrix.providers)
        self.clock = clock
        self.latency_ms: dict[str, float] = {}
        self.retiring: list[tuple[float, list[Provider]]] = []
        self.changed = asyncio.Event()
        """Set when a breaker changed state, so its new state is published without delay."""

    def reload(self, matrix: Matrix, providers: dict[str, Provider]) -> None:
        """Route by the new matrix from now on. The old adapters may still be answering calls
        in flight: they are closed once the longest of their routes' timeouts has passed."""
        grace = max(
            (r.timeout_s for routes in self.matrix.capabilities.values() for r in routes), default=0.0
        )
        self.retiring.append((self.clock() + grace, list(self.providers.values())))
        self.matrix, self.providers = matrix, providers
        self.breakers.reconfigure(matrix.providers)

    async def reap(self) -> None:
        """Close the adapters a reload retired whose calls must have ended by now."""
        now = self.clock()
        due = [providers for at, providers in self.retiring if at <= now]
        self.retiring = [(at, providers) for at, providers in self.retiring if at > now]
        for providers in due:
            await _close(providers)

    async def aclose(self) -> None:
        """Close every adapter (their HTTP connection pools), current and retired."""
        retired = [p for _, providers in self.retiring for p in providers]
        self.retiring = []
        await _close([*self.providers.values(), *retired])

    def order(self, capability: str, sticky: str | None = None) -> list[Route]:
        routes = self.matrix.routes(capability)
        if self.matrix.strategy == "prefer_latency":
            # Unmeasured routes go first (by config order) so every route gets measured.
            routes.sort(key=lambda r: self.latency_ms.get(r.key, 0.0))
        if sticky:
            routes.sort(key=lambda r: r.provider != sticky)
        return routes

    async def call(
        self, capability: str, item: WorkItem, invoke: Invoke[R], worst_case: dict[str, float] | None = None
    ) -> Routed[R]:
        """Route one work item; ``worst_case`` is the most it can consume (usage units), which
        the shared token limits and the budgets reserve before the call."""
        routes = self.order(capability, item.params.get("sticky_provider"))
        project = project_of(item.params) or project_of(item.params.get("input", {}))  # see param()
        if not routes:
            raise WorkError("no_provider", f"no provider is configured for {capability}", retryable=False)
        attempts: list[ProviderAttempt] = []
        passed_over: list[str] = []
        limit_waits: list[float] = []
        over_budget: list[str] = []
        alerts: list[BudgetAlert] = []
        for route in routes:
            breaker = self.breakers[route.provider]
            now = self.clock()
            started = datetime.now(UTC)
            if not breaker.allow(now):
                reason = (
                    f"{route.provider} cooling down ({breaker.reason}, {breaker.remaining(now):.1f}s left)"
                )
                attempts.append(
                    _attempt(route, "skipped", started, error_class="cooling_down", message=reason)
                )
                passed_over.append(reason)
                continue
            hold_id = f"{item.work_id}:{route.key}"
            ticket = Ticket(hold_id, item.tenant, project, worst_case or {})
            try:
                taken = await self.gate.enter(route, ticket)
            except BaseException:
                breaker.no_probe()
                raise
            if isinstance(taken, Refusal):
                breaker.no_probe()
                attempts.append(
                    _attempt(route, "skipped", started, error_class=taken.error_class, message=taken.message)
                )
                passed_over.append(taken.message)
                if taken.wait_s is not None:
                    limit_waits.append(taken.wait_s)
                else:
                    over_budget.append(taken.message)
                continue
            options = CallOptions(model=route.model, timeout_s=route.timeout_s, idempotency_key=hold_id)
            t0 = time.perf_counter()
            usage: Usage | None = None
            answered = False  # until the provider is known to have answered, it may bill the call
            call = telemetry.provider_span(
                f"provider {route.provider}",
                attributes={
                    "atelier.provider": route.provider,
                    "atelier.model": route.model,
                    "atelier.capability": capability,
                    "atelier.attempt": item.attempt,
                    "atelier.fallback": bool(passed_over),
                },
            )
            try:
                async with asyncio.timeout(route.timeout_s):
                    result = await invoke(self.providers[route.provider], options)
                usage, answered = route.priced(result.usage), True
            except TimeoutError:
                error = ProviderError(ErrorClass.TIMEOUT, f"no answer within {route.timeout_s:g}s")
            except ProviderError as exc:
                error = exc
                answered = exc.error_class not in UNANSWERED
            except BaseException:
                breaker.no_probe()  # cancelled, or a bug in the adapter: no verdict on the provider
                raise
            finally:
                latency = (time.perf_counter() - t0) * 1000  # the provider's time, not our bookkeeping
                if call is not None:
                    call.set_attribute("atelier.outcome", "succeeded" if usage is not None else "failed")
                    if usage is None:
                        failed(call, "the provider failed (its error class is in the attempt)")
                    call.end()
                alerts += await self.gate.leave(taken, usage, answered=answered)
            PROVIDER_LATENCY.labels(route.provider, capability).observe(latency / 1000)
            before = breaker.state
            if usage is not None:
                breaker.succeeded()
            else:
                PROVIDER_ERRORS.labels(route.provider, route.model, str(error.error_class)).inc()
                breaker.failed(error.error_class, self.clock(), error.retry_after_s)
            if breaker.state != before:
                self.changed.set()
            if usage is not None:
                ROUTED.labels(capability).inc()
                if passed_over:
                    FALLBACKS.labels(capability).inc()
                self._observe(route, latency)
                attempts.append(_attempt(route, "succeeded", started, latency_ms=latency, usage=usage))
                fallbacks = [f"fell back to {route.key}: {why}" for why in passed_over]
                return Routed(
                    result=result,
                    route=route,
                    usage=usage,
                    attempts=attempts,
                    fallbacks=fallbacks,
                    alerts=alerts,
                )
            attempts.append(
                _attempt(
                    route,
                    "failed",
                    started,
                    latency_ms=latency,
                    error_class=str(error.error_class),
                    message=error.message[:500],
                )
            )
            if error.error_class in FAIL_FAST:
                raise WorkError(
                    "prompt_invalid",
                    f"{route.key}: {error.message}",
                    retryable=False,
                    attempts=attempts,
                    alerts=alerts,
                )
            passed_over.append(describe(error, route))
        raise self._exhausted(capability, attempts, passed_over, limit_waits, over_budget, alerts)

    def _exhausted(
        self,
        capability: str,
        attempts: list[ProviderAttempt],
        why: list[str],
        limit_waits: list[float],
        over_budget: list[str],
        alerts: list[BudgetAlert],
    ) -> WorkError:
        now = self.clock()
        waits = [self.breakers[a.provider].remaining(now) for a in attempts] + limit_waits
        waits = [w for w in waits if w > 0]
        message = f"every provider of {capability} failed: " + "; ".join(why)
        if over_budget and len(over_budget) == len(attempts):
            # Every route would overspend: waiting will not help this period.
            return WorkError(
                "budget_exceeded", "; ".join(over_budget), retryable=False, attempts=attempts, alerts=alerts
            )
        if waits:
            # Nobody can answer before the earliest cooldown ends: ask to be retried then.
            return WorkError(
                "providers_unavailable",
                message,
                retryable=True,
                attempts=attempts,
                retry_after_s=min(waits),
                alerts=alerts,
            )
        return WorkError("provider_error", message, retryable=True, attempts=attempts, alerts=alerts)

    def _observe(self, route: Route, latency_ms: float) -> None:
        previous = self.latency_ms.get(route.key)
        self.latency_ms[route.key] = (
            latency_ms if previous is None else EWMA_ALPHA * latency_ms + (1 - EWMA_ALPHA) * previous
        )


async def _close(providers: list[Provider]) -> None:
    for provider in providers:
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()


def _attempt(
    route: Route,
    outcome: str,
    started: datetime,
    *,
    latency_ms: float = 0.0,
    error_class: str = "",
    message: str = "",
    usage: Usage | None = None,
) -> ProviderAttempt:
    return ProviderAttempt(
        provider=route.provider,
        model=route.model,
        outcome=outcome,
        started_at=started,
        latency_ms=round(latency_ms, 2),
        error_class=error_class,
        message=message,
        usage=usage or Usage(),
    )
