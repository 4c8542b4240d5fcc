"""Commands on one job: cancel, requeue, retry a step, review a gate, update, delete.

Each waits (ATELIER_COMMAND_WAIT_S) for the orchestrator's decision: a refusal is a problem
(404 or 409); an acceptance, or no answer in time, is 202 with the job as it now reads.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response

from atelier_contracts import ids
from atelier_contracts.commands import (
    CancelJob,
    Command,
    DeleteJob,
    RequeueJob,
    RetryStep,
    ReviewStep,
    UpdateJob,
)
from atelier_gateway.app.errors import JobNotFound
from atelier_gateway.app.get_job import JobDetails, job_assets
from atelier_gateway.app.send_command import (
    CommandTiming,
    JobCommandInput,
    JobCommandResult,
    send_job_command,
)
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints import render
from atelier_gateway.entrypoints.bodies import CancelBody, ReviewBody, UpdateJobBody
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute, idempotent_request
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import DeletedJob, Job

router = APIRouter(prefix="/v1/jobs", tags=["job lifecycle"], route_class=IdempotentRoute)

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted (or not decided yet); the job as it reads now."}
}
_ANSWERS = {**_ACCEPTED, **problem_responses(404, 409, 422, 500, 503)}
StepName = Annotated[str, Path(min_length=1, max_length=64)]


async def send_command(
    deps: Deps, request: Request, job_id: str, body: Command, part: str = ""
) -> JobCommandResult:
    """``body`` to the job, decided. Under an Idempotency-Key the command's message id comes from
    the key and the request (and ``part``, for a request that sends several commands), so a
    client's retry after a lost answer is the same message: de-duplicated, decided once."""
    idempotent = idempotent_request(request)
    msg_id = (
        ids.derived_id(
            "cmd", deps.settings.tenant, idempotent.key, idempotent.request_hash, *((part,) if part else ())
        )
        if idempotent
        else None
    )
    return await send_job_command(
        JobCommandInput(
            tenant=deps.settings.tenant,
            job_id=job_id,
            request_id=current_request_id(),
            body=body,
            msg_id=msg_id,
        ),
        publisher=deps.publisher,
        reader=deps.reader,
        joblog=deps.joblog,
        clock=deps.clock,
        timing=CommandTiming(
            reply_wait_s=deps.settings.command_wait_s, read_wait_s=deps.settings.read_wait_s
        ),
    )


async def _job_answer(deps: Deps, request: Request, job_id: str, body: Command) -> Job:
    result = await send_command(deps, request, job_id, body)
    if result.job is None:  # deleted while the command was decided
        raise JobNotFound(f"No job {job_id!r}.")
    details = JobDetails(job=result.job, assets=job_assets(result.job, deps.signer, deps.clock()))
    return render.job(details, render.file_urls(request))


@router.post("/{job_id}/cancel", status_code=202, summary="Cancel a job", responses=_ANSWERS)
async def cancel(
    job_id: str, request: Request, deps: DepsDep, body: Annotated[CancelBody | None, Body()] = None
) -> Job:
    return await _job_answer(deps, request, job_id, CancelJob(reason=body.reason if body else ""))


@router.post(
    "/{job_id}:cancel",
    status_code=202,
    summary="Cancel a job (AIP-136 style alias of /cancel)",
    responses=_ANSWERS,
)
async def cancel_alias(
    job_id: str, request: Request, deps: DepsDep, body: Annotated[CancelBody | None, Body()] = None
) -> Job:
    return await cancel(job_id, request, deps, body)


@router.post(
    "/{job_id}/requeue",
    status_code=202,
    summary="Run a failed or cancelled job again, keeping the steps that succeeded",
    responses=_ANSWERS,
)
async def requeue(job_id: str, request: Request, deps: DepsDep) -> Job:
    return await _job_answer(deps, request, job_id, RequeueJob())


@router.post(
    "/{job_id}/steps/{step}/retry",
    status_code=202,
    summary="Run one step again, and what depends on it",
    description="409 `asset_already_running` when the step is being produced right now.",
    responses=_ANSWERS,
)
async def retry_step(job_id: str, step: StepName, request: Request, deps: DepsDep) -> Job:
    return await _job_answer(deps, request, job_id, RetryStep(step=step))


@router.post(
    "/{job_id}/steps/{step}/review",
    status_code=202,
    summary="Approve or reject what a review gate waits on",
    description="A rejection sends the reviewed steps (and what depends on them) back with the "
    "feedback, and the gate waits again; 409 `illegal_transition` when the step waits for no review.",
    responses=_ANSWERS,
)
async def review_step(job_id: str, step: StepName, body: ReviewBody, request: Request, deps: DepsDep) -> Job:
    verdict = ReviewStep(step=step, verdict=body.verdict, feedback=body.feedback, reviewer=body.reviewer)
    return await _job_answer(deps, request, job_id, verdict)


@router.patch(
    "/{job_id}",
    summary="Change a job's title, priority or tags",
    responses={
        200: {"description": "Decided and visible: the job with the change."},
        **_ANSWERS,
    },
)
async def update(
    job_id: str, body: UpdateJobBody, request: Request, response: Response, deps: DepsDep
) -> Job:
    command = UpdateJob(title=body.title, priority=body.priority, tags=body.tags)
    result = await send_command(deps, request, job_id, command)
    if result.job is None:
        raise JobNotFound(f"No job {job_id!r}.")
    response.status_code = 200 if result.shows_decision else 202
    details = JobDetails(job=result.job, assets=job_assets(result.job, deps.signer, deps.clock()))
    return render.job(details, render.file_urls(request))


@router.delete(
    "/{job_id}",
    status_code=202,
    summary="Delete a job: gone from reads and lists; its files are released later",
    responses={202: {"description": "Accepted."}, **problem_responses(404, 409, 422, 500, 503)},
)
async def delete(job_id: str, request: Request, deps: DepsDep) -> DeletedJob:
    result = await send_command(deps, request, job_id, DeleteJob())
    return DeletedJob(id=job_id, deleted=result.job is None)
