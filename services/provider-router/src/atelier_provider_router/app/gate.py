"""What a call must pass before it goes out — the route's shared limits and the budgets — and
what it gives back after.

In order: a concurrency slot, a request token (``rpm``), its worst-case tokens (``tpm``), and
a budget reservation of its worst-case cost. A refusal at any point gives back what was taken
before it and says whether waiting helps (``wait_s``: always for limits; for a budget only
when calls in flight fill it). After the call, :meth:`Gate.leave` frees the slot, returns
unused tokens and settles the cost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from atelier_contracts.common import BudgetAlert, Usage
from atelier_provider_router.app.matrix import Route

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE_MARGIN_S = 30.0
"""A concurrency lease outlives its call's timeout by this much before another may take it."""


class RateLimiter(Protocol):
    async def take(self, name: str, per_minute: int, amount: float = 1.0, kind: str = "rpm") -> float: ...

    async def give_back(self, name: str, per_minute: int, amount: float, kind: str = "rpm") -> None: ...


class Leases(Protocol):
    async def acquire(self, name: str, limit: int, holder: str, ttl_s: float) -> float: ...

    async def release(self, name: str, holder: str) -> None: ...


class Budgets(Protocol):
    async def reserve(
        self, tenant: str, project: str, hold_id: str, amount_usd: float, ttl_s: float
    ) -> Refusal | None: ...

    async def settle(self, tenant: str, project: str, hold_id: str, cost_usd: float) -> list[BudgetAlert]: ...

    async def release(self, tenant: str, project: str, hold_id: str) -> None: ...


@dataclass(frozen=True)
class Ticket:
    """One call's claim: who pays, and the most it can consume (usage units)."""

    hold_id: str
    tenant: str
    project: str = ""
    worst_case: dict[str, float] = field(default_factory=dict)

    @property
    def tokens(self) -> float:
        return tokens(self.worst_case)


def tokens(units: dict[str, float]) -> float:
    """What a ``tpm`` limit counts: input and output tokens."""
    return units.get("input_tokens", 0.0) + units.get("output_tokens", 0.0)


@dataclass(frozen=True)
class Refusal:
    error_class: str
    """``over_limit`` or ``over_budget``."""
    message: str
    wait_s: float | None = None
    """When waiting may help (a limit; a budget that only calls in flight fill); None if not."""


@dataclass
class Pass:
    """What a call took on its way in, to be given back on its way out."""

    route: Route
    ticket: Ticket
    lease: str = ""
    request: bool = False
    tokens: float = 0.0
    worst_cost: float = 0.0


class Gate:
    def __init__(
        self, limiter: RateLimiter | None = None, leases: Leases | None = None, budgets: Budgets | None = None
    ) -> None:
        self.limiter = limiter
        self.leases = leases
        self.budgets = budgets

    async def enter(self, route: Route, ticket: Ticket) -> Pass | Refusal:
        """Take what the call needs, or nothing: a refusal or an error gives back what was taken."""
        taken = Pass(route, ticket, worst_cost=route.price.cost(ticket.worst_case))
        try:
            refusal = await self._take(taken)
        except BaseException:
            await self._give_back(taken)
            raise
        if refusal is not None:
            await self._give_back(taken)
            return refusal
        return taken

    async def _take(self, taken: Pass) -> Refusal | None:
        route, ticket = taken.route, taken.ticket
        if route.concurrency and self.leases is not None:
            holder = f"{ticket.hold_id}#{uuid.uuid4().hex[:8]}"
            wait = await self.leases.acquire(
                route.key, route.concurrency, holder, route.timeout_s + LEASE_MARGIN_S
            )
            if wait > 0:
                # A slot frees when any call ends, usually long before the oldest lease runs out.
                return Refusal(
                    "over_limit", f"{route.key} has all {route.concurrency} calls in flight", min(wait, 1.0)
                )
            taken.lease = holder
        if route.rpm and self.limiter is not None:
            wait = await self.limiter.take(route.key, route.rpm)
            if wait > 0:
                return Refusal(
                    "over_limit", f"{route.key} at its limit of {route.rpm} requests a minute", wait
                )
            taken.request = True
        if route.tpm and self.limiter is not None and ticket.tokens:
            amount = min(ticket.tokens, float(route.tpm))  # a larger call waits for a full bucket
            wait = await self.limiter.take(route.key, route.tpm, amount, kind="tpm")
            if wait > 0:
                return Refusal("over_limit", f"{route.key} at its limit of {route.tpm} tokens a minute", wait)
            taken.tokens = amount
        if taken.worst_cost > 0 and self.budgets is not None:
            refusal = await self.budgets.reserve(
                ticket.tenant,
                ticket.project,
                ticket.hold_id,
                taken.worst_cost,
                route.timeout_s + LEASE_MARGIN_S,
            )
            if refusal is not None:
                return Refusal(refusal.error_class, f"{route.key}: {refusal.message}", refusal.wait_s)
        return None

    async def leave(self, taken: Pass, usage: Usage | None, *, answered: bool) -> list[BudgetAlert]:
        """After the call: free its slot, return unused tokens, and settle its cost — or release
        its hold when it failed unbilled, or keep the hold (until it runs out) when its answer
        never came (``answered`` False: timed out, cut off, cancelled; the provider may bill it).
        Never raises: the call's result matters more than this bookkeeping, which is logged."""
        route, ticket = taken.route, taken.ticket
        alerts: list[BudgetAlert] = []
        if taken.lease and self.leases is not None:
            await _logged("release a concurrency slot", self.leases.release(route.key, taken.lease))
        if taken.tokens and self.limiter is not None and route.tpm and answered:
            used = tokens(usage.units) if usage else 0.0
            if taken.tokens > used:
                await _logged(
                    "give back tokens",
                    self.limiter.give_back(route.key, route.tpm, taken.tokens - used, kind="tpm"),
                )
        if self.budgets is None:
            return alerts
        cost = usage.cost_usd if usage else 0.0
        if usage is not None and (taken.worst_cost > 0 or cost > 0):
            settled = await _logged(
                "settle a budget", self.budgets.settle(ticket.tenant, ticket.project, ticket.hold_id, cost)
            )
            alerts += settled or []
        elif answered and taken.worst_cost > 0:
            await _logged(
                "release a budget hold", self.budgets.release(ticket.tenant, ticket.project, ticket.hold_id)
            )
        return alerts

    async def _give_back(self, taken: Pass) -> None:
        """Undo ``enter`` so far: the call will not go out."""
        route = taken.route
        if taken.lease and self.leases is not None:
            await _logged("release a concurrency slot", self.leases.release(route.key, taken.lease))
            taken.lease = ""
        if taken.request and self.limiter is not None and route.rpm:
            await _logged("give back a request", self.limiter.give_back(route.key, route.rpm, 1.0))
            taken.request = False
        if taken.tokens and self.limiter is not None and route.tpm:
            await _logged(
                "give back tokens", self.limiter.give_back(route.key, route.tpm, taken.tokens, kind="tpm")
            )
            taken.tokens = 0.0


async def _logged(what: str, step: Awaitable[T]) -> T | None:
    """Run one bookkeeping step; a failure (NATS away, too many races) is logged, not raised."""
    try:
        return await step
    except Exception:
        log.exception("could not %s", what)
        return None
