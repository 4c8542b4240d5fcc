"""Sessions over HTTP: create, read, list, update, close; start rounds and adopt candidates.

Each change waits (ATELIER_COMMAND_WAIT_S) for the orchestrator's decision and answers with the
session as decided; a refusal is a problem (404 or 409). Reads come from the ``sessions`` read
model. The body of every answer is a ``SessionView`` (``docs/workflows.md``, "Sessions").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts import ids
from atelier_contracts.sessions import (
    AdoptCandidate,
    CloseSession,
    CreateSession,
    SessionCommand,
    SessionList,
    SessionView,
    StartRound,
    UpdateSession,
)
from atelier_gateway.app import sessions as app
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute, idempotent_request
from atelier_gateway.entrypoints.problems import contract_body, problem_responses

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], route_class=IdempotentRoute)

_VIEW = contract_body("SessionView", "The session as decided (or, not decided in time, as it reads).")
_ANSWERS: dict[int | str, dict[str, Any]] = {200: _VIEW, **problem_responses(404, 409, 422, 500, 503)}
_encode = msgspec.json.Encoder()


class ContextBody(BaseModel):
    """Free text per field (at most 200 characters); ``""`` clears a field in a PATCH."""

    lighting: str | None = Field(None, max_length=200)
    perspective: str | None = Field(None, max_length=200)
    color_tone: str | None = Field(None, max_length=200)
    logo_anchor: str | None = Field(None, max_length=200)
    extra: dict[str, str] = Field(
        default_factory=dict, description="Free fields: lower_snake names, at most 32."
    )


class CreateSessionBody(BaseModel):
    kind: str = Field(description="The job kind each round runs (GET /v1/kinds).")
    title: str = Field(min_length=1, max_length=200)
    context: ContextBody | None = None


class UpdateSessionBody(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    context: ContextBody | None = Field(None, description="Laid over the context: the fields it sets win.")


class RoundBody(BaseModel):
    input: dict[str, Any] = Field(description="The round job's input, as its kind takes it.")
    title: str = Field("", max_length=200)
    priority: int = Field(0, ge=0, le=9)


class AdoptBody(BaseModel):
    asset_id: str = Field(min_length=1, max_length=64, description="One of the round's candidates.")


def _view(view: SessionView, status_code: int = 200) -> Response:
    return Response(_encode.encode(view), status_code=status_code, media_type="application/json")


def _call(deps: Deps, request: Request, session_id: str) -> tuple[app.SessionCall, app.SessionPorts]:
    idempotent = idempotent_request(request)
    msg_id = (
        ids.derived_id("cmd", deps.settings.tenant, idempotent.key, idempotent.request_hash)
        if idempotent
        else None
    )
    call = app.SessionCall(deps.settings.tenant, session_id, current_request_id(), msg_id)
    ports = app.SessionPorts(
        deps.publisher,
        deps.sessions,
        deps.joblog,
        deps.clock,
        wait_s=deps.settings.command_wait_s,
        read_wait_s=deps.settings.read_wait_s,
    )
    return call, ports


def _context(body: ContextBody | None) -> Any:
    return app.context_patch(body.model_dump(exclude_none=True)) if body is not None else None


@router.post("", status_code=201, summary="Create a session", responses={201: _VIEW, **_ANSWERS})
async def create(body: CreateSessionBody, request: Request, deps: DepsDep) -> Response:
    idempotent = idempotent_request(request)
    session_id = app.new_session_id(deps.settings.tenant, idempotent.key if idempotent else None)
    call, ports = _call(deps, request, session_id)
    command = CreateSession(
        kind=body.kind,
        title=body.title,
        context=_context(body.context) or app.context_patch({}),
        request_hash=idempotent.request_hash if idempotent else "",
    )
    return _view(await app.create_session(call, command, ports), 201)


@router.get(
    "",
    summary="List sessions, newest first",
    responses={200: contract_body("SessionList", "The sessions."), **problem_responses(422, 500, 503)},
)
async def list_sessions(
    deps: DepsDep,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    found = await deps.sessions.sessions(deps.settings.tenant, status, limit)
    return Response(_encode.encode(SessionList(items=found)), media_type="application/json")


@router.get("/{session_id}", summary="Read a session", responses=_ANSWERS)
async def read(session_id: str, request: Request, deps: DepsDep) -> Response:
    call, ports = _call(deps, request, session_id)
    return _view(await app.existing(call, ports))


async def _command(session_id: str, request: Request, deps: Deps, body: SessionCommand) -> Response:
    call, ports = _call(deps, request, session_id)
    return _view(await app.command(call, body, ports))


@router.patch("/{session_id}", summary="Rename a session or change its context", responses=_ANSWERS)
async def update(session_id: str, body: UpdateSessionBody, request: Request, deps: DepsDep) -> Response:
    return await _command(
        session_id, request, deps, UpdateSession(title=body.title, context=_context(body.context))
    )


@router.post(
    "/{session_id}/rounds", status_code=202, summary="Start a round", responses={202: _VIEW, **_ANSWERS}
)
async def start_round(session_id: str, body: RoundBody, request: Request, deps: DepsDep) -> Response:
    call, ports = _call(deps, request, session_id)
    command = StartRound(input=body.input, title=body.title, priority=body.priority)
    return _view(await app.start_round(call, command, ports, deps.settings.faults), 202)


@router.post(
    "/{session_id}/rounds/{round}/adopt", summary="Adopt one of a round's candidates", responses=_ANSWERS
)
async def adopt(session_id: str, round: int, body: AdoptBody, request: Request, deps: DepsDep) -> Response:
    return await _command(session_id, request, deps, AdoptCandidate(round=round, asset_id=body.asset_id))


@router.post("/{session_id}/close", summary="Close a session: no more rounds", responses=_ANSWERS)
async def close(session_id: str, request: Request, deps: DepsDep) -> Response:
    return await _command(session_id, request, deps, CloseSession())
