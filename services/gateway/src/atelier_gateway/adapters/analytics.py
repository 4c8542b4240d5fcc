"""Usage, provider analytics and the ops summary, read from the read models (and NATS for backlog)."""

from __future__ import annotations

import json
import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.readmodel import jobs, provider_calls
from atelier_contracts.runtime import deadletter
from atelier_contracts.runtime.pull import read_stream
from atelier_contracts.snapshot import JobStatus
from atelier_contracts.subjects import PRIORITY_BANDS, PROVIDERS_BUCKET, WORK_STREAM
from atelier_gateway.adapters.natsio import reachable
from atelier_gateway.adapters.sql import SqlAdapter
from atelier_gateway.app.errors import Unavailable

log = logging.getLogger(__name__)

GROUPS = {"tenant", "project", "provider", "capability"}


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return round(float(statistics.quantiles(values, n=100, method="inclusive")[q - 1]), 2)


class SqlAnalytics(SqlAdapter):
    def __init__(self, engine: AsyncEngine, nc: Client, js: JetStreamContext) -> None:
        super().__init__(engine)
        self.nc = nc
        self.js = js

    async def _calls(
        self, tenant: str, start: datetime | None, end: datetime | None, capability: str | None
    ) -> Sequence[Row[Any]]:
        query = sa.select(provider_calls).where(provider_calls.c.tenant == tenant)
        if start is not None:
            query = query.where(provider_calls.c.at >= start)
        if end is not None:
            query = query.where(provider_calls.c.at < end)
        if capability:
            query = query.where(provider_calls.c.capability == capability)
        async with self._connect() as conn:
            return (await conn.execute(query.order_by(provider_calls.c.at))).all()

    async def usage(
        self, tenant: str, start: datetime | None, end: datetime | None, group_by: str
    ) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        for row in await self._calls(tenant, start, end, None):
            if row.outcome == "skipped":
                continue  # a skip is not a call: nothing was sent, nothing billed
            key = str(getattr(row, group_by))
            g = groups.setdefault(
                key, {group_by: key, "calls": 0, "succeeded": 0, "cost_usd": 0.0, "units": Counter()}
            )
            g["calls"] += 1
            g["succeeded"] += row.outcome == "succeeded"
            g["cost_usd"] += row.cost_usd
            g["units"].update(json.loads(row.units))
        return [
            {
                **g,
                "cost_usd": round(g["cost_usd"], 6),
                "units": {k: round(v, 3) for k, v in g["units"].items()},
            }
            for g in sorted(groups.values(), key=lambda g: -g["cost_usd"])
        ]

    async def providers(self, tenant: str, since: datetime, capability: str | None) -> list[dict[str, Any]]:
        stats: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for row in await self._calls(tenant, since, None, capability):
            stats[(row.provider, row.model)].append(row)
        out = []
        for (provider, model), rows in sorted(stats.items()):
            made = [r for r in rows if r.outcome != "skipped"]
            ok = [r for r in made if r.outcome == "succeeded"]
            latencies = sorted(r.latency_ms for r in made)
            out.append(
                {
                    "provider": provider,
                    "model": model,
                    "calls": len(made),
                    "skipped": len(rows) - len(made),
                    "success_rate": round(len(ok) / len(made), 4) if made else 0.0,
                    "latency_p50_ms": _percentile(latencies, 50),
                    "latency_p95_ms": _percentile(latencies, 95),
                    "fallback_ratio": round(sum(r.fallback for r in ok) / len(ok), 4) if ok else 0.0,
                    "cost_usd": round(sum(r.cost_usd for r in made), 6),
                    "failures": dict(Counter(r.error_class for r in made if r.outcome == "failed")),
                }
            )
        return out

    async def summary(self, tenant: str, now: datetime, recent: int = 20) -> dict[str, Any]:
        """From SQL, and from NATS what only NATS knows; without NATS, those parts are null and
        ``unavailable`` names it, since a summary matters most while something is down."""
        async with self._connect() as conn:
            live = jobs.c.tenant == tenant, jobs.c.deleted.is_(False)
            counted = await conn.execute(
                sa.select(jobs.c.status, sa.func.count()).where(*live).group_by(jobs.c.status)
            )
            by_status: dict[str, int] = {row[0]: int(row[1]) for row in counted}
            stale = (
                await conn.execute(
                    sa.select(jobs.c.id, jobs.c.status, jobs.c.next_deadline_at)
                    .where(*live, jobs.c.next_deadline_at < now, jobs.c.status.not_in(JobStatus.TERMINAL))
                    .order_by(jobs.c.next_deadline_at)
                    .limit(recent)
                )
            ).all()
            failures = (
                await conn.execute(
                    sa.select(provider_calls)
                    .where(provider_calls.c.tenant == tenant, provider_calls.c.outcome == "failed")
                    .order_by(provider_calls.c.at.desc())
                    .limit(recent)
                )
            ).all()
        backlog: dict[str, int] | None = None
        providers: dict[str, Any] | None = None
        dead: dict[str, int] | None = None
        try:
            backlog, providers = await self.backlog(), await self.provider_states(now)
            async with reachable(self.nc, "the dead-letter stream"):
                dead = await deadletter.counts(self.nc)
        except Unavailable as exc:
            log.warning("the ops summary goes without NATS: %s", exc.detail)
        return {
            "jobs_by_status": {s: by_status.get(s, 0) for s in JobStatus.ALL},
            "stale_jobs": [{"id": r.id, "status": r.status, "deadline": r.next_deadline_at} for r in stale],
            "backlog": backlog,
            "providers": providers,
            # Messages consumers gave up on: `atelier-orchestrator dead-letters` lists and re-drives them.
            "dead_letters": None if dead is None else {"total": sum(dead.values()), "by_consumer": dead},
            "unavailable": [] if dead is not None else ["nats"],
            "recent_failures": [
                {
                    "at": r.at, "job_id": r.job_id, "step": r.step, "provider": r.provider,
                    "model": r.model, "error_class": r.error_class,
                }
                for r in failures
            ],
        }  # fmt: skip

    async def backlog(self) -> dict[str, int]:
        """Work items waiting per pool and band (JetStream consumer pending counts)."""
        out: dict[str, int] = {}
        async with reachable(self.nc, "the work stream"):
            consumers = await self.js.consumers_info(WORK_STREAM)
        for info in consumers:
            name = info.name or ""
            if name.startswith("workers-") and name.rsplit("-", 1)[-1] in PRIORITY_BANDS:
                out[name.removeprefix("workers-")] = int(info.num_pending or 0) + int(
                    info.num_ack_pending or 0
                )
        return out

    async def provider_states(self, now: datetime) -> dict[str, Any]:
        """Circuit-breaker states the provider routers publish (one entry per provider), as of
        ``now``: the routers write changes only, so a trip's time left comes from its ``until``.

        Read from the bucket's stream up to its last message (the latest value per key wins, a
        delete or purge removes it): nats-py's ``kv.keys()`` watcher can end before the first
        entries arrive on a busy machine and list nothing."""
        latest: dict[str, bytes | None] = {}
        stream = f"KV_{PROVIDERS_BUCKET}"
        prefix = f"$KV.{PROVIDERS_BUCKET}."
        async with reachable(self.nc, "the providers bucket"):
            try:
                async for msg in read_stream(self.nc, stream, f"{prefix}>"):
                    operation = (msg.headers or {}).get("KV-Operation")
                    latest[msg.subject.removeprefix(prefix)] = None if operation else msg.data
            except NotFoundError:
                return {}
        return {
            key: _as_of(json.loads(value), now.timestamp()) for key, value in sorted(latest.items()) if value
        }


def _as_of(entry: dict[str, Any], wall: float) -> dict[str, Any]:
    """A trip whose cooldown is over shows as half-open: the next call to it is the probe."""
    left = max(float(entry.get("until") or 0.0) - wall, 0.0) if entry.get("state") == "open" else 0.0
    state = "half_open" if entry.get("state") == "open" and left == 0 else entry.get("state")
    return {**entry, "state": state, "remaining_s": round(left, 3)}
