"""Schedules over HTTP: create, read, list, replace, pause, resume, trigger now, delete.

Each change waits (ATELIER_COMMAND_WAIT_S) for the orchestrator's decision and answers with the
schedule as decided, with its next fire times; a refusal is a problem. The body of every answer
is a ``ScheduleView`` (``docs/workflows.md``, "Schedules").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts.schedules import (
    CreateSchedule,
    DeleteSchedule,
    PauseSchedule,
    ResumeSchedule,
    ScheduleCommand,
    ScheduleList,
    ScheduleView,
    TriggerSchedule,
    UpdateSchedule,
)
from atelier_gateway.app import aggregates
from atelier_gateway.app import schedules as app
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.aggregates import body, call_of, ports_of
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute, idempotent_request
from atelier_gateway.entrypoints.problems import contract_body, problem_responses

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=IdempotentRoute)

_VIEW = contract_body("ScheduleView", "The schedule as decided, with its next fire times.")
_ANSWERS: dict[int | str, dict[str, Any]] = {200: _VIEW, **problem_responses(404, 409, 422, 500, 503)}


class TemplateBody(BaseModel):
    kind: str = Field(description="The job kind each firing submits (GET /v1/kinds).")
    title: str | None = Field(None, min_length=1, max_length=200)
    input: dict[str, Any] = Field(description="The job's input, checked against its kind.")
    priority: int = Field(0, ge=0, le=9)
    tags: list[str] = Field(default_factory=list, max_length=20)


class ScheduleBody(BaseModel):
    cron: str = Field(
        min_length=1,
        max_length=120,
        description="Five fields, or six with seconds last (croniter), e.g. '0 9 * * 1-5'.",
    )
    timezone: str = Field("UTC", description="An IANA time zone, e.g. Europe/Berlin.")
    template: TemplateBody
    overlap: Literal["skip", "buffer_one", "allow_all", "cancel_other"] = Field(
        "skip", description="When a fire time comes while the last job still runs (as Temporal names them)."
    )
    catchup_window_s: float = Field(
        300.0, ge=10, le=7 * 86400, description="After downtime, missed fire times this recent still fire."
    )


class CreateScheduleBody(ScheduleBody):
    paused: bool = False


class PauseBody(BaseModel):
    note: str = Field("", max_length=500)


def _shown(view: ScheduleView, status_code: int = 200) -> Response:
    return body(view.with_upcoming(), status_code)


async def _command(schedule_id: str, request: Request, deps: Deps, command: ScheduleCommand) -> Response:
    call, ports = call_of(deps, request, schedule_id), ports_of(deps, deps.schedules)
    view = await aggregates.command(app.SCHEDULES, call, command, ports)
    return _shown(view)


@router.post("", status_code=201, summary="Create a schedule", responses={201: _VIEW, **_ANSWERS})
async def create(payload: CreateScheduleBody, request: Request, deps: DepsDep) -> Response:
    spec = app.checked_spec(payload.model_dump(exclude={"paused"}), deps.settings.faults)
    idempotent = idempotent_request(request)
    schedule_id = app.SCHEDULES.new_id("sch", deps.settings.tenant, idempotent.key if idempotent else None)
    command = CreateSchedule(
        spec=spec, paused=payload.paused, request_hash=idempotent.request_hash if idempotent else ""
    )
    call, ports = call_of(deps, request, schedule_id), ports_of(deps, deps.schedules)
    view = await aggregates.send(app.SCHEDULES, call, command, ports)
    return _shown(view or app.pending(call, command, deps.clock()), 201)


@router.get(
    "",
    summary="List schedules, newest first",
    responses={200: contract_body("ScheduleList", "The schedules."), **problem_responses(422, 500, 503)},
)
async def list_schedules(
    deps: DepsDep,
    status: Annotated[Literal["active", "paused"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    found = await deps.schedules.newest(deps.settings.tenant, status, limit)
    return body(ScheduleList(items=[view.with_upcoming() for view in found]))


@router.get("/{schedule_id}", summary="Read a schedule and its next fire times", responses=_ANSWERS)
async def read(schedule_id: str, request: Request, deps: DepsDep) -> Response:
    call, ports = call_of(deps, request, schedule_id), ports_of(deps, deps.schedules)
    view = await aggregates.existing(app.SCHEDULES, call, ports)
    return _shown(view)


@router.put(
    "/{schedule_id}", summary="Replace a schedule's cron, zone, template or policies", responses=_ANSWERS
)
async def replace(schedule_id: str, payload: ScheduleBody, request: Request, deps: DepsDep) -> Response:
    spec = app.checked_spec(payload.model_dump(), deps.settings.faults)
    return await _command(schedule_id, request, deps, UpdateSchedule(spec=spec))


@router.post("/{schedule_id}/pause", summary="Pause: no firings until resumed", responses=_ANSWERS)
async def pause(
    schedule_id: str, request: Request, deps: DepsDep, payload: Annotated[PauseBody | None, Body()] = None
) -> Response:
    return await _command(schedule_id, request, deps, PauseSchedule(note=payload.note if payload else ""))


@router.post(
    "/{schedule_id}/resume",
    summary="Resume: the cron goes on from now (what fell due while paused does not fire)",
    responses=_ANSWERS,
)
async def resume(schedule_id: str, request: Request, deps: DepsDep) -> Response:
    return await _command(schedule_id, request, deps, ResumeSchedule())


@router.post(
    "/{schedule_id}/trigger",
    status_code=202,
    summary="Fire now, outside the cron (the overlap policy applies)",
    responses={202: _VIEW, **_ANSWERS},
)
async def trigger(schedule_id: str, request: Request, deps: DepsDep) -> Response:
    response = await _command(schedule_id, request, deps, TriggerSchedule())
    response.status_code = 202
    return response


@router.delete("/{schedule_id}", summary="Delete a schedule (its running jobs go on)", responses=_ANSWERS)
async def delete(schedule_id: str, request: Request, deps: DepsDep) -> Response:
    return await _command(schedule_id, request, deps, DeleteSchedule())
