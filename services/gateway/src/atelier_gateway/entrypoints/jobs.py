"""Routes under /v1/jobs: submit, read, list and the event history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from atelier_gateway.app.get_job import JobAsset, JobDetails, get_job, job_assets
from atelier_gateway.app.job_events import job_events
from atelier_gateway.app.list_jobs import ListJobsInput, list_jobs
from atelier_gateway.app.submit_job import SubmitJobInput, submit_job
from atelier_gateway.entrypoints import render
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import Job, JobEvents, JobList, JobStatusName, SubmitJobBody

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _file_url(request: Request) -> render.FileUrl:
    def url(asset: JobAsset) -> str:
        base = request.url_for("download_file", asset_id=asset.id)
        return str(base.include_query_params(expires=asset.link.expires, sig=asset.link.sig))

    return url


@router.post(
    "",
    status_code=202,
    summary="Submit a job",
    responses={
        202: {
            "description": "Accepted; the job runs in the background.",
            "headers": {"Location": {"description": "The job's URL.", "schema": {"type": "string"}}},
        },
        **problem_responses(422, 500, 503),
    },
)
async def submit(body: SubmitJobBody, request: Request, response: Response, deps: DepsDep) -> Job:
    result = await submit_job(
        SubmitJobInput(
            tenant=deps.settings.tenant,
            request_id=current_request_id(),
            kind=body.kind,
            title=body.title,
            input=body.input.model_dump(),
            priority=body.priority,
            tags=tuple(body.tags),
        ),
        publisher=deps.publisher,
        reader=deps.reader,
        clock=deps.clock,
        wait_s=deps.settings.submit_wait_s,
    )
    response.headers["Location"] = render.job_path(result.job.id)
    details = JobDetails(job=result.job, assets=job_assets(result.job, deps.signer, deps.clock()))
    return render.job(details, _file_url(request))


@router.get("", summary="List jobs, newest first", responses=problem_responses(422, 500, 503))
async def list_(
    deps: DepsDep,
    status: Annotated[list[JobStatusName] | None, Query(description="Any of these statuses.")] = None,
    kind: Annotated[list[str] | None, Query(description="Any of these kinds.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobList:
    jobs = await list_jobs(
        ListJobsInput(
            tenant=deps.settings.tenant, statuses=tuple(status or ()), kinds=tuple(kind or ()), limit=limit
        ),
        reader=deps.reader,
    )
    return JobList(items=[render.job_summary(j) for j in jobs], count=len(jobs))


@router.get("/{job_id}", summary="Read a job", responses=problem_responses(404, 422, 500, 503))
async def read(job_id: str, request: Request, deps: DepsDep) -> Job:
    details = await get_job(
        deps.settings.tenant, job_id, reader=deps.reader, signer=deps.signer, now=deps.clock()
    )
    return render.job(details, _file_url(request))


@router.get(
    "/{job_id}/events", summary="A job's event history", responses=problem_responses(404, 422, 500, 503)
)
async def events(job_id: str, deps: DepsDep) -> JobEvents:
    found = await job_events(deps.settings.tenant, job_id, reader=deps.reader)
    return render.job_events(job_id, found)
