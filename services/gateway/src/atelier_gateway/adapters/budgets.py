"""Budget limits in the NATS KV bucket the provider routers read (``ATELIER_BUDGETS``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from atelier_contracts.budgets import (
    BudgetLimit,
    BudgetSpend,
    limit_codec,
    limit_key,
    period_key,
    scope_id,
    scope_of,
    spend_codec,
    spend_key,
)
from atelier_contracts.runtime.nats import budgets
from atelier_gateway.adapters.natsio import reachable
from atelier_gateway.app.ports import Budget

_ABSENT = (KeyNotFoundError, KeyDeletedError)


class KvBudgetStore:
    def __init__(self, nc: Client, js: JetStreamContext, clock: Callable[[], float] = time.time) -> None:
        self.nc = nc
        self.js = js
        self.clock = clock
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await budgets(self.js)
        return self._kv

    async def _value(self, key: str) -> bytes | None:
        try:
            return (await (await self.kv()).get(key)).value or None
        except _ABSENT:
            return None

    async def _budget(self, tenant: str, project: str, limit: BudgetLimit) -> Budget:
        raw = await self._value(spend_key(tenant, project))
        now = self.clock()
        month = period_key("month", _utc(now))
        spend = (spend_codec.decode(raw) if raw else BudgetSpend()).current(month, now)
        return Budget(project=project, limit=limit, spend=spend, period=period_key(limit.period, _utc(now)))

    async def of_tenant(self, tenant: str) -> list[Budget]:
        async with reachable(self.nc, "the budgets bucket"):
            return await self._list(tenant)

    async def put(self, tenant: str, project: str, limit: BudgetLimit) -> Budget:
        async with reachable(self.nc, "the budgets bucket"):
            await (await self.kv()).put(limit_key(tenant, project), msgspec.json.encode(limit))
            return await self._budget(tenant, project, limit)

    async def remove(self, tenant: str, project: str) -> bool:
        async with reachable(self.nc, "the budgets bucket"):
            key = limit_key(tenant, project)
            if await self._value(key) is None:
                return False
            await (await self.kv()).delete(key)
            return True

    async def _list(self, tenant: str) -> list[Budget]:
        try:
            keys = await (await self.kv()).keys()
        except NoKeysError:
            return []
        mine = f"limit.{scope_id(tenant)}"
        found: list[Budget] = []
        for key in sorted(keys):
            if key != mine and not key.startswith(mine + "."):
                continue
            raw = await self._value(key)
            if raw:
                found.append(await self._budget(tenant, scope_of(key)[1], limit_codec.decode(raw)))
        return found


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
