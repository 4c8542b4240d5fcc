"""Batch commands: cancel or delete many jobs chosen by id or by filter (at most 1000 a call)."""

from __future__ import annotations

from fastapi import APIRouter

from atelier_contracts.commands import CancelJob, Command, DeleteJob
from atelier_gateway.app.batch import BatchInput, batch_command
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.bodies import BatchBody, BatchCancelBody
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import BatchItemOut, BatchOut

# Registered before /v1/jobs/{job_id}/..., which would otherwise take "batch" for a job id.
router = APIRouter(prefix="/v1/jobs/batch", tags=["job lifecycle"], route_class=IdempotentRoute)

_ANSWERS = {
    202: {"description": "Published (or, on a dry run, only counted)."},
    **problem_responses(422, 500, 503),
}
_DESCRIPTION = (
    "Choose jobs by `ids` or by `filter` (the filters of GET /v1/jobs). A command is published "
    "per job it can change, without waiting for decisions; `results` says per job whether it was "
    "`submitted`, `skipped` (with the reason, e.g. cancel of a job already succeeded) or "
    "`not_found`. `dry_run` only tells. More than 1000 jobs is a 422."
)


async def _batch(deps: Deps, body: BatchBody, command: Command) -> BatchOut:
    result = await batch_command(
        BatchInput(
            tenant=deps.settings.tenant,
            request_id=current_request_id(),
            body=command,
            ids=tuple(body.ids) if body.ids is not None else None,
            filter=body.filter.to_filter() if body.filter is not None else None,
            dry_run=body.dry_run,
        ),
        search=deps.search,
        publisher=deps.publisher,
        clock=deps.clock,
    )
    results = [BatchItemOut(id=i.id, outcome=i.outcome, reason=i.reason) for i in result.items]
    skipped = sum(1 for i in result.items if i.outcome == "skipped")
    if body.dry_run:
        return BatchOut(matched=result.matched, dry_run=True, skipped=skipped, results=results)
    return BatchOut(
        matched=result.matched,
        submitted=len(result.submitted),
        skipped=skipped,
        ids=result.submitted,
        results=results,
    )


@router.post(
    "/cancel",
    status_code=202,
    summary="Cancel many jobs",
    description=_DESCRIPTION,
    responses=_ANSWERS,
    response_model_exclude_none=True,
)
async def cancel_many(body: BatchCancelBody, deps: DepsDep) -> BatchOut:
    return await _batch(deps, body, CancelJob(reason=body.reason))


@router.post(
    "/delete",
    status_code=202,
    summary="Delete many jobs",
    description=_DESCRIPTION,
    responses=_ANSWERS,
    response_model_exclude_none=True,
)
async def delete_many(body: BatchBody, deps: DepsDep) -> BatchOut:
    return await _batch(deps, body, DeleteJob())
