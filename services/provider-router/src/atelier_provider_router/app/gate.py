"""What a call must pass before it goes out — the route's shared limits and the budgets — and
what it gives back after.

In order: a concurrency slot, a request token (``rpm``), its worst-case tokens (``tpm``), and
a budget reservation of its worst-case cost. A refusal at any point gives back what was taken
before it and says whether waiting helps (limits: yes, after ``wait_s``; budgets: no). After
the call, :meth:`Gate.leave` frees the slot, returns unused tokens and settles the cost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from atelier_contracts.common import BudgetAlert, Usage
from atelier_provider_router.app.matrix import Route

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
    ) -> str: ...

    async def settle(self, tenant: str, project: str, hold_id: str, cost_usd: float) -> list[BudgetAlert]: ...


@dataclass(frozen=True)
class Ticket:
    """One call's claim: who pays, and the most it can consume (usage units)."""

    hold_id: str
    tenant: str
    project: str = ""
    worst_case: dict[str, float] = field(default_factory=dict)

    @property
    def tokens(self) -> float:
        return self.worst_case.get("input_tokens", 0.0) + self.worst_case.get("output_tokens", 0.0)


@dataclass(frozen=True)
class Refusal:
    error_class: str
    """``over_limit`` (waiting helps) or ``over_budget`` (it does not)."""
    message: str
    wait_s: float | None = None


@dataclass
class Pass:
    """What a call took on its way in, to be given back on its way out."""

    route: Route
    ticket: Ticket
    lease: str = ""
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
        taken = Pass(route, ticket, worst_cost=route.price.cost(ticket.worst_case))
        if route.concurrency and self.leases is not None:
            holder = f"{ticket.hold_id}#{uuid.uuid4().hex[:8]}"
            wait = await self.leases.acquire(
                route.key, route.concurrency, holder, route.timeout_s + LEASE_MARGIN_S
            )
            if wait > 0:
                return Refusal("over_limit", f"{route.key} has all {route.concurrency} calls in flight", wait)
            taken.lease = holder
        if route.rpm and self.limiter is not None:
            wait = await self.limiter.take(route.key, route.rpm)
            if wait > 0:
                await self._give_back(taken)
                return Refusal(
                    "over_limit", f"{route.key} at its limit of {route.rpm} requests a minute", wait
                )
        if route.tpm and self.limiter is not None and ticket.tokens:
            wait = await self.limiter.take(route.key, route.tpm, ticket.tokens, kind="tpm")
            if wait > 0:
                await self._give_back(taken, request=bool(route.rpm))
                return Refusal("over_limit", f"{route.key} at its limit of {route.tpm} tokens a minute", wait)
            taken.tokens = ticket.tokens
        if taken.worst_cost > 0 and self.budgets is not None:
            refused = await self.budgets.reserve(
                ticket.tenant,
                ticket.project,
                ticket.hold_id,
                taken.worst_cost,
                route.timeout_s + LEASE_MARGIN_S,
            )
            if refused:
                await self._give_back(taken, request=bool(route.rpm))
                return Refusal("over_budget", f"{route.key}: {refused}")
        return taken

    async def leave(self, taken: Pass, usage: Usage | None) -> list[BudgetAlert]:
        """After the call: free its slot, return unused tokens, settle its cost (0 if it failed)."""
        route, ticket = taken.route, taken.ticket
        if taken.lease and self.leases is not None:
            await self.leases.release(route.key, taken.lease)
        if taken.tokens and self.limiter is not None and route.tpm:
            used = (
                (usage.units.get("input_tokens", 0.0) + usage.units.get("output_tokens", 0.0))
                if usage
                else 0.0
            )
            await self.limiter.give_back(route.key, route.tpm, taken.tokens - used, kind="tpm")
        cost = usage.cost_usd if usage else 0.0
        if self.budgets is not None and (taken.worst_cost > 0 or cost > 0):
            return await self.budgets.settle(ticket.tenant, ticket.project, ticket.hold_id, cost)
        return []

    async def _give_back(self, taken: Pass, *, request: bool = False) -> None:
        """Undo ``enter`` so far: the call will not go out."""
        route = taken.route
        if taken.lease and self.leases is not None:
            await self.leases.release(route.key, taken.lease)
            taken.lease = ""
        if request and self.limiter is not None and route.rpm:
            await self.limiter.give_back(route.key, route.rpm, 1.0)
        if taken.tokens and self.limiter is not None and route.tpm:
            await self.limiter.give_back(route.key, route.tpm, taken.tokens, kind="tpm")
            taken.tokens = 0.0
