"""A project's scheduled batch: the engine's schedule firing a ``stills`` job that draws again the
shot images of every episode marked for it (``PUT /v1/projects/{id}/schedule``).

The schedule is the engine's own (``/v1/schedules/{id}`` reads it too, with its firings); the
project keeps its id. Its template is written from the marked, rendered episodes when it is
set and again whenever an episode is marked or unmarked; with none left it is paused (its note
says why) and it resumes when one is marked again — a pause of the user's own stays.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import msgspec
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from atelier_contracts import ids
from atelier_contracts.schedules import (
    CreateSchedule,
    DeleteSchedule,
    PauseSchedule,
    ResumeSchedule,
    ScheduleCommand,
    ScheduleView,
    UpdateSchedule,
)
from atelier_gateway.app import aggregates
from atelier_gateway.app import schedules as engine
from atelier_gateway.app.aggregates import Call
from atelier_gateway.app.errors import EpisodeNotRendered, NothingMarked, ScheduleNotFound
from atelier_gateway.app.projects import Project
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.aggregates import body, ports_of
from atelier_gateway.entrypoints.anime import composite_of, project_of
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute
from atelier_gateway.entrypoints.problems import contract_body, problem_responses

router = APIRouter(prefix="/v1/projects", tags=["projects"], route_class=IdempotentRoute)
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: contract_body("ScheduleView", "The project's batch schedule as decided."),
    **problem_responses(404, 409, 422, 500, 503),
}
NONE_MARKED = "no rendered episode is marked for the batch"
"""The note of a pause the batch made itself (and lifts when an episode is marked again)."""


class ProjectBatchBody(BaseModel):
    cron: str = Field(min_length=1, max_length=120, description="When, e.g. '0 2 * * *' (every night at 2).")
    timezone: str = Field("UTC", description="An IANA time zone.")
    overlap: Literal["skip", "buffer_one", "allow_all", "cancel_other"] = Field(
        "skip", description="When a night comes while the last batch still runs."
    )
    catchup_window_s: float = Field(300.0, ge=10, le=7 * 86400)
    paused: bool = False


async def batch_input(deps: Deps, project: Project) -> dict[str, Any] | None:
    """The ``stills`` job of the project's marked episodes that have a render (None: none)."""
    drawn = []
    for episode in await deps.projects.episodes(deps.settings.tenant, project.id):
        if not episode.marked:
            continue
        try:
            composite = await composite_of(deps, project.id, episode)
        except EpisodeNotRendered:
            continue
        shots = [
            {"shot": s.shot, "prompt": s.prompt, "size": s.size, "look": s.look} for s in composite.sources
        ]
        drawn.append({"episode": episode.id, "shots": shots})
    return {"episodes": drawn, "project": project.id} if drawn else None


def _template(project: Project, job_input: dict[str, Any]) -> dict[str, Any]:
    title = f"{project.name}: shot images, drawn again"
    return {"kind": "stills", "title": title[:200], "input": job_input, "tags": ["batch"]}


def _call(deps: Deps, schedule_id: str) -> Call:
    # A request here may send several commands (update, then resume): each its own message.
    return Call(deps.settings.tenant, schedule_id, current_request_id())


async def _send(deps: Deps, call: Call, command: ScheduleCommand) -> ScheduleView | None:
    return await aggregates.send(engine.SCHEDULES, call, command, ports_of(deps, deps.schedules))


async def _existing(deps: Deps, call: Call) -> ScheduleView | None:
    try:
        view = await aggregates.existing(engine.SCHEDULES, call, ports_of(deps, deps.schedules))
    except ScheduleNotFound:
        return None
    return None if view.status == "deleted" else view


async def refresh_batch(deps: Deps, project: Project) -> None:
    """After an episode's mark changed: the batch's template written again (or, with nothing
    marked, the batch paused until something is)."""
    if project.schedule_id is None:
        return
    call = _call(deps, project.schedule_id)
    view = await _existing(deps, call)
    if view is None:
        return
    job_input = await batch_input(deps, project)
    if job_input is None:
        if view.status == "active":
            await _send(deps, call, PauseSchedule(note=NONE_MARKED))
        return
    fields = msgspec.to_builtins(view.spec) | {"template": _template(project, job_input)}
    await _send(deps, call, UpdateSchedule(spec=engine.checked_spec(fields, deps.settings.faults)))
    if view.status == "paused" and view.note == NONE_MARKED:
        await _send(deps, call, ResumeSchedule())


async def stop_batch(deps: Deps, project: Project) -> bool:
    """The project's batch schedule deleted (its running job goes on); False: it had none."""
    if project.schedule_id is None or await _existing(deps, _call(deps, project.schedule_id)) is None:
        return False
    await _send(deps, _call(deps, project.schedule_id), DeleteSchedule())
    stopped = replace(project, schedule_id=None, updated_at=deps.clock())
    await deps.projects.put_project(deps.settings.tenant, stopped)
    return True


@router.put(
    "/{project_id}/schedule",
    summary="Schedule the project's batch: its marked episodes' shot images drawn again",
    responses=_ANSWERS,
)
async def set_batch(project_id: str, payload: ProjectBatchBody, deps: DepsDep) -> Response:
    project = await project_of(deps, project_id)
    job_input = await batch_input(deps, project)
    if job_input is None:
        raise NothingMarked()
    fields = payload.model_dump(exclude={"paused"}) | {"template": _template(project, job_input)}
    spec = engine.checked_spec(fields, deps.settings.faults)
    view = await _existing(deps, _call(deps, project.schedule_id)) if project.schedule_id else None
    if view is None:
        # A new schedule: its id from the project as it stands, so PUTs racing on it make one
        # schedule (the engine takes the same create once), and one made after a DELETE (here,
        # which changes the project, or at /v1/schedules, which leaves the old id on it) has
        # another id than the deleted one.
        as_it_stands = (project.id, project.updated_at.isoformat(), project.schedule_id or "")
        call = _call(deps, ids.derived_id("sch", deps.settings.tenant, *as_it_stands))
        create = CreateSchedule(spec=spec, paused=payload.paused)
        await deps.projects.put_project(deps.settings.tenant, replace(project, schedule_id=call.key))
        made = await _send(deps, call, create)
        return body((made or engine.pending(call, create, deps.clock())).with_upcoming(), 201)
    call = _call(deps, view.id)
    answer = await _send(deps, call, UpdateSchedule(spec=spec))
    if payload.paused and view.status == "active":
        answer = await _send(deps, call, PauseSchedule(note="paused by request"))
    elif not payload.paused and view.status == "paused":
        answer = await _send(deps, call, ResumeSchedule())
    return body((answer or view).with_upcoming())


@router.get("/{project_id}/schedule", summary="The project's batch schedule", responses=_ANSWERS)
async def read_batch(project_id: str, deps: DepsDep) -> Response:
    project = await project_of(deps, project_id)
    view = await _existing(deps, _call(deps, project.schedule_id)) if project.schedule_id else None
    if view is None:
        raise ScheduleNotFound(f"Project {project_id!r} has no batch schedule (PUT …/schedule).")
    return body(view.with_upcoming())


@router.delete(
    "/{project_id}/schedule", status_code=204, summary="Stop the project's batch", responses=_ANSWERS
)
async def delete_batch(project_id: str, deps: DepsDep) -> Response:
    if not await stop_batch(deps, await project_of(deps, project_id)):
        raise ScheduleNotFound(f"Project {project_id!r} has no batch schedule.")
    return Response(status_code=204)
