"""Budgets per tenant and project: set, read (with what was spent and is held), remove."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from atelier_contracts.budgets import ALERT_AT, BudgetLimit
from atelier_gateway.app.errors import BudgetNotFound
from atelier_gateway.app.ports import Budget
from atelier_gateway.entrypoints.bodies import Strict
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute
from atelier_gateway.entrypoints.problems import problem_responses

router = APIRouter(prefix="/v1/budgets", tags=["budgets"], route_class=IdempotentRoute)

Project = Annotated[str, Path(min_length=1, max_length=64)]


class BudgetBody(Strict):
    limit_usd: float = Field(gt=0, le=1e9, description="US dollars the scope may spend per period.")
    period: Literal["month", "total"] = Field(
        default="month",
        description="`month`: each calendar month (UTC) starts from zero; `total`: never resets.",
    )


class BudgetOut(BaseModel):
    scope: Literal["tenant", "project"]
    project: str | None
    limit_usd: float
    period: Literal["month", "total"]
    current_period: str
    spent_usd: float
    reserved_usd: float = Field(description="Worst-case cost held by calls in flight.")
    remaining_usd: float
    used: float = Field(description="spent / limit")
    alerted: bool = Field(description=f"The alert at {ALERT_AT:.0%} was raised this period.")


class BudgetList(BaseModel):
    items: list[BudgetOut]


def _out(budget: Budget) -> BudgetOut:
    limit, spent, held = budget.limit, budget.spent_usd, budget.spend.reserved_usd
    return BudgetOut(
        scope="project" if budget.project else "tenant",
        project=budget.project or None,
        limit_usd=limit.limit_usd,
        period=limit.period,
        current_period=budget.period,
        spent_usd=round(spent, 6),
        reserved_usd=round(held, 6),
        remaining_usd=round(max(limit.limit_usd - spent - held, 0.0), 6),
        used=round(spent / limit.limit_usd, 4),
        alerted=budget.alerted,
    )


@router.get("", summary="The tenant's budgets and where they stand", responses=problem_responses(500, 503))
async def list_(deps: DepsDep) -> BudgetList:
    return BudgetList(items=[_out(b) for b in await deps.budgets.of_tenant(deps.settings.tenant)])


@router.put("/tenant", summary="Set the tenant's budget", responses=problem_responses(422, 500, 503))
async def put_tenant(body: BudgetBody, deps: DepsDep) -> BudgetOut:
    limit = BudgetLimit(limit_usd=body.limit_usd, period=body.period)
    return _out(await deps.budgets.put(deps.settings.tenant, "", limit))


@router.put(
    "/projects/{project}",
    summary="Set a project's budget (jobs name their project in `input.project`)",
    responses=problem_responses(422, 500, 503),
)
async def put_project(project: Project, body: BudgetBody, deps: DepsDep) -> BudgetOut:
    limit = BudgetLimit(limit_usd=body.limit_usd, period=body.period)
    return _out(await deps.budgets.put(deps.settings.tenant, project, limit))


@router.delete(
    "/tenant",
    status_code=204,
    summary="Remove the tenant's budget",
    responses=problem_responses(404, 500, 503),
)
async def delete_tenant(deps: DepsDep) -> Response:
    if not await deps.budgets.remove(deps.settings.tenant, ""):
        raise BudgetNotFound()
    return Response(status_code=204)


@router.delete(
    "/projects/{project}",
    status_code=204,
    summary="Remove a project's budget",
    responses=problem_responses(404, 422, 500, 503),
)
async def delete_project(project: Project, deps: DepsDep) -> Response:
    if not await deps.budgets.remove(deps.settings.tenant, project):
        raise BudgetNotFound()
    return Response(status_code=204)
