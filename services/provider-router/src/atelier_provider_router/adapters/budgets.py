"""Budgets in NATS KV, shared by every router replica.

Limits are read from ``limit.*`` keys of the bucket ``ATELIER_BUDGETS`` (written by the
gateway; cached for ``limits_ttl_s``); spend is kept in its ``spend.*`` keys with
compare-and-set (see :mod:`app.budget` for the rules). A call reserves on the tenant's scope,
then on its project's; if the project refuses, the tenant's hold is released again. Spend is
kept for every priced call, limited or not, so a limit set mid-month counts what the month
already cost.

Billing once: before a call's cost is added, a marker key for its hold id is *created* in the
``ATELIER_LIMITS`` bucket (its entries live an hour, far longer than a work item can be
redelivered). Creating fails if the marker exists, so a redelivered call that settles again only
releases its hold. A router dying between the marker and the spend update loses that call from
the budget (never counts it twice); the job's log still records its cost.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import nats.js.errors
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
from atelier_provider_router.app.gate import Refusal

log = logging.getLogger(__name__)

Scope = tuple[str, str]
"""(tenant, project); project "" is the tenant's own budget."""

RETRY_HELD_S = 2.0
"""When only calls in flight stand in the way, look again this much later."""


def _scopes(tenant: str, project: str) -> list[Scope]:
    return [(tenant, "")] + ([(tenant, project)] if project else [])


def _name(scope: Scope) -> str:
    tenant, project = scope
    return f"project {project!r}" if project else f"tenant {tenant!r}"


def _decode(raw: bytes | None) -> BudgetSpend:
    return spend_codec.decode(raw) if raw else BudgetSpend()


class KvBudgets:
    def __init__(
        self,
        bucket: Callable[[], Awaitable[KeyValue]],
        markers: Callable[[], Awaitable[KeyValue]],
        clock: Callable[[], float] = time.time,
        limits_ttl_s: float = 1.0,
    ) -> None:
        self.state = KvState(bucket)
        self.markers = KvState(markers)
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

    def _month(self) -> str:
        return self._period(None)

    def _period(self, limit: BudgetLimit | None) -> str:
        """The period a limit counts now (this month unless it is a ``total`` budget)."""
        return period_key(limit.period if limit else "month", datetime.fromtimestamp(self.clock(), UTC))

    async def reserve(
        self, tenant: str, project: str, hold_id: str, amount_usd: float, ttl_s: float
    ) -> Refusal | None:
        """Hold ``amount_usd`` on every limited scope of the call; None when held, else why not."""
        held: list[Scope] = []
        for scope in _scopes(tenant, project):
            limit = await self.limit(scope)
            if limit is None:
                continue
            period = self._period(limit)

            def change(
                raw: bytes | None, limit: BudgetLimit = limit, period: str = period
            ) -> tuple[bytes | None, budget.Refused | None]:
                now = self.clock()
                spend = _decode(raw).current(self._month(), now)
                new = budget.reserve(spend, limit, period, hold_id, amount_usd, now + ttl_s)
                if isinstance(new, budget.Refused):
                    return None, new
                return (None if new is spend else msgspec.json.encode(new)), None

            refused = await self.state.update(spend_key(*scope), change)
            if refused is not None:
                for done in held:
                    await self._release(done, hold_id)
                what = "this month" if limit.period == "month" else "in all"
                message = (
                    f"the {_name(scope)} budget would be exceeded: ${refused.spent_usd:.4f} spent"
                    f" {what} and ${refused.held_usd:.4f} held by calls in flight, of ${limit.limit_usd:.4f};"
                    f" this call may cost up to ${amount_usd:.4f}"
                )
                return Refusal("over_budget", message, RETRY_HELD_S if refused.transient else None)
            held.append(scope)
        return None

    async def settle(self, tenant: str, project: str, hold_id: str, cost_usd: float) -> list[BudgetAlert]:
        """Replace the call's holds by its cost on every scope, once; the alerts this raised."""
        if not await self._mark_settled(hold_id):
            await self.release(tenant, project, hold_id)  # billed before: only let go of the hold
            return []
        alerts: list[BudgetAlert] = []
        for scope in _scopes(tenant, project):
            limit = await self.limit(scope)
            month, period = self._month(), self._period(limit)

            def change(
                raw: bytes | None, limit: BudgetLimit | None = limit, period: str = period, month: str = month
            ) -> tuple[bytes | None, float | None]:
                spend = _decode(raw).current(month, self.clock())
                new, alert = budget.settle(spend, limit, period, hold_id, cost_usd)
                return msgspec.json.encode(new), (new.spent(period) if alert else None)

            crossed = await self.state.update(spend_key(*scope), change)
            if crossed is not None and limit is not None:
                alerts.append(
                    BudgetAlert(
                        tenant=scope[0],
                        project=scope[1],
                        period=period,
                        spent_usd=crossed,
                        limit_usd=limit.limit_usd,
                    )
                )
        return alerts

    async def release(self, tenant: str, project: str, hold_id: str) -> None:
        """Drop the call's holds without billing (it failed, or was billed before)."""
        for scope in _scopes(tenant, project):
            await self._release(scope, hold_id)

    async def _release(self, scope: Scope, hold_id: str) -> None:
        def change(raw: bytes | None) -> tuple[bytes | None, None]:
            new = budget.release(_decode(raw), hold_id) if raw else None
            return (None if new is None else msgspec.json.encode(new)), None

        await self.state.update(spend_key(*scope), change)

    async def _mark_settled(self, hold_id: str) -> bool:
        """Create the call's settlement marker: True the first time, False if it exists."""
        kv = await self.markers.kv()
        key = "settled." + hashlib.sha256(hold_id.encode()).hexdigest()[:32]
        try:
            await kv.create(key, b"")
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True
