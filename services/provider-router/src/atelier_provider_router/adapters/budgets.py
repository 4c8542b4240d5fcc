"""Budgets in the NATS KV bucket ``ATELIER_BUDGETS``, shared by every router replica.

Limits are read from ``limit.*`` keys (written by the gateway; cached for ``limits_ttl_s``),
spend is kept in ``spend.*`` keys with compare-and-set (see :mod:`app.budget` for the rules).
A call reserves on the tenant's scope and then on its project's; if the project refuses, the
tenant's hold is released again. Spend is kept for every priced call, limited or not, so a
limit set mid-month starts from what the month already cost.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
from nats.js.kv import KeyValue

from atelier_contracts.budgets import (
    BudgetLimit,
    BudgetSpend,
    limit_codec,
    limit_key,
    period_key,
    spend_codec,
    spend_key,
)
from atelier_contracts.common import BudgetAlert
from atelier_provider_router.adapters.kvstate import KvState
from atelier_provider_router.app import budget

Scope = tuple[str, str]
"""(tenant, project); project "" is the tenant's own budget."""


def _scopes(tenant: str, project: str) -> list[Scope]:
    return [(tenant, "")] + ([(tenant, project)] if project else [])


def _name(scope: Scope) -> str:
    tenant, project = scope
    return f"project {project!r}" if project else f"tenant {tenant!r}"


class KvBudgets:
    def __init__(
        self,
        bucket: Callable[[], Awaitable[KeyValue]],
        clock: Callable[[], float] = time.time,
        limits_ttl_s: float = 1.0,
    ) -> None:
        self.state = KvState(bucket)
        self.clock = clock
        self.limits_ttl_s = limits_ttl_s
        self._limits: dict[str, tuple[float, BudgetLimit | None]] = {}

    async def limit(self, scope: Scope) -> BudgetLimit | None:
        key = limit_key(*scope)
        now = time.monotonic()
        cached = self._limits.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self.state.get(key)
        found = limit_codec.decode(raw) if raw else None
        self._limits[key] = (now + self.limits_ttl_s, found)
        return found

    def _period(self, limit: BudgetLimit | None) -> str:
        return period_key(limit.period if limit else "month", datetime.fromtimestamp(self.clock(), UTC))

    async def reserve(self, tenant: str, project: str, hold_id: str, amount_usd: float, ttl_s: float) -> str:
        """Hold ``amount_usd`` on every limited scope of the call; "" when held, else why not."""
        held: list[Scope] = []
        for scope in _scopes(tenant, project):
            limit = await self.limit(scope)
            if limit is None:
                continue
            period = self._period(limit)

            def change(
                raw: bytes | None, limit: BudgetLimit = limit, period: str = period
            ) -> tuple[bytes | None, str]:
                now = self.clock()
                spend = (spend_codec.decode(raw) if raw else BudgetSpend()).current(period, now)
                new = budget.reserve(spend, limit, hold_id, amount_usd, now + ttl_s)
                if new is None:
                    return None, (
                        f"spent ${spend.spent_usd:.4f} and ${spend.reserved_usd:.4f} held of"
                        f" ${limit.limit_usd:.2f} this {'month' if limit.period == 'month' else 'budget'};"
                        f" this call may cost up to ${amount_usd:.4f}"
                    )
                return (None if new is spend else msgspec.json.encode(new)), ""

            refused = await self.state.update(spend_key(*scope), change)
            if refused:
                for done in held:
                    await self.release(done, hold_id)
                return f"the {_name(scope)} budget would be exceeded: {refused}"
            held.append(scope)
        return ""

    async def settle(self, tenant: str, project: str, hold_id: str, cost_usd: float) -> list[BudgetAlert]:
        """Replace the call's holds by its cost on every scope; the alerts this raised."""
        alerts: list[BudgetAlert] = []
        for scope in _scopes(tenant, project):
            limit = await self.limit(scope)
            period = self._period(limit)

            def change(
                raw: bytes | None, limit: BudgetLimit | None = limit, period: str = period
            ) -> tuple[bytes | None, BudgetSpend | None]:
                spend = (spend_codec.decode(raw) if raw else BudgetSpend()).current(period, self.clock())
                new, alert = budget.settle(spend, limit, hold_id, cost_usd)
                return (None if new is spend else msgspec.json.encode(new)), (new if alert else None)

            crossed = await self.state.update(spend_key(*scope), change)
            if crossed is not None and limit is not None:
                alerts.append(
                    BudgetAlert(
                        tenant=scope[0],
                        project=scope[1],
                        period=crossed.period,
                        spent_usd=crossed.spent_usd,
                        limit_usd=limit.limit_usd,
                    )
                )
        return alerts

    async def release(self, scope: Scope, hold_id: str) -> None:
        """Drop a hold without billing (the call never went out)."""

        def change(raw: bytes | None) -> tuple[bytes | None, None]:
            if raw is None:
                return None, None
            spend = spend_codec.decode(raw)
            if hold_id not in spend.holds:
                return None, None
            holds = {k: h for k, h in spend.holds.items() if k != hold_id}
            return msgspec.json.encode(msgspec.structs.replace(spend, holds=holds)), None

        await self.state.update(spend_key(*scope), change)
