"""Usage and cost, provider analytics, provider states and the ops summary."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import IsoDatetime

router = APIRouter(tags=["usage and operations"])


@router.get(
    "/v1/usage", summary="Provider usage and cost, grouped", responses=problem_responses(422, 500, 503)
)
async def usage(
    deps: DepsDep,
    group_by: Literal["tenant", "project", "provider", "capability"] = "provider",
    start: Annotated[IsoDatetime | None, Query(alias="from", description="Inclusive (ISO 8601).")] = None,
    end: Annotated[IsoDatetime | None, Query(alias="to", description="Exclusive (ISO 8601).")] = None,
) -> dict[str, Any]:
    groups = await deps.analytics.usage(deps.settings.tenant, start, end, group_by)
    return {"group_by": group_by, "from": start, "to": end, "groups": groups}


@router.get(
    "/v1/analytics/providers",
    summary="Per provider and model: calls, success rate, latency, fallbacks, cost, failure reasons",
    responses=problem_responses(422, 500, 503),
)
async def providers(
    deps: DepsDep,
    days: Annotated[float, Query(gt=0, le=366)] = 7,
    capability: str | None = None,
) -> dict[str, Any]:
    since = deps.clock() - timedelta(days=days)
    rows = await deps.analytics.providers(deps.settings.tenant, since, capability)
    return {"since": since, "capability": capability, "providers": rows}


@router.get(
    "/v1/providers", summary="Circuit-breaker state of each provider", responses=problem_responses(500, 503)
)
async def provider_states(deps: DepsDep) -> dict[str, Any]:
    return {"providers": await deps.analytics.provider_states(deps.clock())}


@router.get(
    "/v1/ops/summary",
    summary="Jobs by status, stale jobs, backlog, providers cooling down, recent failures",
    responses=problem_responses(500, 503),
)
async def ops_summary(deps: DepsDep) -> dict[str, Any]:
    return await deps.analytics.summary(deps.settings.tenant, deps.clock())
