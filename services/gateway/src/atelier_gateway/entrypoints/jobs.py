"""Routes under /v1/jobs: submit, read and the event history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from atelier_contracts.snapshot import JobView
from atelier_gateway.app.get_job import JobDetails, get_job, job_assets
from atelier_gateway.app.job_events import job_events
from atelier_gateway.app.streams import Position
from atelier_gateway.app.submit_job import SubmitJobInput, existing_job, job_id_for, submit_job
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints import render
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import (
    IdempotentRequest,
    IdempotentRoute,
    idempotent_request,
    while_in_progress,
)
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import Job, JobEvents, SubmitJobBody

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=IdempotentRoute)


def job_out(request: Request, deps: Deps, job: JobView) -> Job:
    """A job as the API answers it, with signed links to its files."""
    details = JobDetails(job=job, assets=job_assets(job, deps.signer, deps.clock()))
    return render.job(details, render.file_urls(request))


async def _submitted_already(request: Request, key: IdempotentRequest) -> Response | None:
    """A keyed submit still marked in progress: if its job is in the log, the command was stored."""
    deps: Deps = request.app.state.deps
    tenant = deps.settings.tenant
    job = await existing_job(
        tenant,
        job_id_for(tenant, key.key),
        key.request_hash,
        deps.reader,
        deps.joblog,
        deps.settings.read_wait_s,
    )
    if job is None:
        return None
    return render.json_response(
        job_out(request, deps, job), status_code=202, headers={"Location": render.job_path(job.id)}
    )


@router.post(
    "",
    status_code=202,
    response_model=Job,
    summary="Submit a job",
    description="With an `Idempotency-Key`, the job id is derived from the key: one key makes one job.",
    responses={
        202: {
            "description": "Accepted; the job runs in the background.",
            "headers": {"Location": {"description": "The job's URL.", "schema": {"type": "string"}}},
        },
        **problem_responses(409, 422, 500, 503, 504),
    },
)
@while_in_progress(_submitted_already)
async def submit(body: SubmitJobBody, request: Request, deps: DepsDep) -> Response:
    return await submit_answer(body, request, deps)


async def submit_answer(body: SubmitJobBody, request: Request, deps: Deps) -> Response:
    """``POST /v1/jobs``'s answer (the route's, and the hot path's: ``hot_routes``)."""
    job = await submitted(
        request, deps, body.kind, body.title or body.kind, body.input, body.priority, body.tags
    )
    return render.json_response(
        job_out(request, deps, job), status_code=202, headers={"Location": render.job_path(job.id)}
    )


async def submitted(
    request: Request,
    deps: Deps,
    kind: str,
    title: str,
    job_input: dict[str, Any],
    priority: int = 0,
    tags: Sequence[str] = (),
    once: str | None = None,
) -> JobView:
    """A job submitted for this request (under its Idempotency-Key, if it has one), as decided;
    ``once`` is a key of the caller's own instead: every submit under it is the one job."""
    idempotent = idempotent_request(request)
    key, request_hash = (
        (once, "") if once else (idempotent.key, idempotent.request_hash) if idempotent else (None, "")
    )
    result = await submit_job(
        SubmitJobInput(
            tenant=deps.settings.tenant,
            request_id=current_request_id(),
            kind=kind,
            title=title[:200],
            input=job_input,
            priority=priority,
            tags=tuple(tags),
            idempotency_key=key,
            request_hash=request_hash,
        ),
        publisher=deps.publisher,
        reader=deps.reader,
        joblog=deps.joblog,
        clock=deps.clock,
        wait_s=deps.settings.submit_wait_s,
        read_wait_s=deps.settings.read_wait_s,
        faults=deps.settings.faults,
        uploads=deps.uploads,
        presets=deps.presets,
    )
    return result.job


@router.get(
    "/{job_id}",
    response_model=Job,
    summary="Read a job",
    description="With `at`, the job as it stood after the commit at that sequence (the `seq` of its "
    "events): folded from the job's log, so every past state can be looked at.",
    responses=problem_responses(404, 422, 500, 503),
)
async def read(
    job_id: str,
    request: Request,
    deps: DepsDep,
    at: Annotated[
        int | None, Query(ge=1, description="A commit's stream sequence (`seq` of an event).")
    ] = None,
) -> Response:
    return await read_answer(job_id, request, deps, at)


async def read_answer(job_id: str, request: Request, deps: Deps, at: int | None = None) -> Response:
    """``GET /v1/jobs/{job_id}``'s answer (the route's, and the hot path's: ``hot_routes``)."""
    details = await get_job(
        deps.settings.tenant,
        job_id,
        reader=deps.reader,
        joblog=deps.joblog,
        signer=deps.signer,
        now=deps.clock(),
        wait_s=deps.settings.read_wait_s,
        at=at,
    )
    return render.json_response(render.job(details, render.file_urls(request)))


@router.get(
    "/{job_id}/events", summary="A job's event history", responses=problem_responses(404, 422, 500, 503)
)
async def events(
    job_id: str,
    deps: DepsDep,
    after: Annotated[
        str | None, Query(description="Only the events after this position (`<seq>.<index>`, or `<seq>`).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> JobEvents:
    start = Position.parse(after) if after else None
    found = await job_events(
        deps.settings.tenant,
        job_id,
        reader=deps.reader,
        after=(start.seq, start.index) if start else None,
        limit=limit + 1,
    )
    return render.job_events(job_id, found[:limit], more=len(found) > limit)
