"""Sessions over HTTP: create, read, list, update, close; start rounds and adopt candidates.

Each change waits (ATELIER_COMMAND_WAIT_S) for the orchestrator's decision and answers with the
session as decided; a refusal is a problem (404 or 409). Reads come from the ``sessions`` read
model. The body of every answer is a ``SessionView`` (``docs/workflows.md``, "Sessions").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts.sessions import (
    AdoptCandidate,
    CloseSession,
    CreateSession,
    SessionCommand,
    SessionContext,
    SessionList,
    StartRound,
    UpdateSession,
)
from atelier_gateway.app import aggregates
from atelier_gateway.app import sessions as app
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.aggregates import body, call_of, ports_of
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute, idempotent_request
from atelier_gateway.entrypoints.problems import contract_body, problem_responses

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], route_class=IdempotentRoute)

_VIEW = contract_body("SessionView", "The session as decided (or, not decided in time, as it reads).")
_ANSWERS: dict[int | str, dict[str, Any]] = {200: _VIEW, **problem_responses(404, 409, 422, 500, 503)}


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


def _context(fields: ContextBody | None) -> SessionContext | None:
    return app.context_patch(fields.model_dump(exclude_none=True)) if fields is not None else None


async def _command(session_id: str, request: Request, deps: Deps, command: SessionCommand) -> Response:
    call, ports = call_of(deps, request, session_id), ports_of(deps, deps.sessions)
    view = await aggregates.command(app.SESSIONS, call, command, ports)
    return body(view)


@router.post("", status_code=201, summary="Create a session", responses={201: _VIEW, **_ANSWERS})
async def create(payload: CreateSessionBody, request: Request, deps: DepsDep) -> Response:
    idempotent = idempotent_request(request)
    session_id = app.SESSIONS.new_id("ses", deps.settings.tenant, idempotent.key if idempotent else None)
    command = CreateSession(
        kind=payload.kind,
        title=payload.title,
        context=_context(payload.context) or SessionContext(),
        request_hash=idempotent.request_hash if idempotent else "",
    )
    call, ports = call_of(deps, request, session_id), ports_of(deps, deps.sessions)
    return body(await app.create_session(call, command, ports), 201)


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
    return body(SessionList(items=await deps.sessions.newest(deps.settings.tenant, status, limit)))


@router.get("/{session_id}", summary="Read a session", responses=_ANSWERS)
async def read(session_id: str, request: Request, deps: DepsDep) -> Response:
    call, ports = call_of(deps, request, session_id), ports_of(deps, deps.sessions)
    view = await aggregates.existing(app.SESSIONS, call, ports)
    return body(view)


@router.patch("/{session_id}", summary="Rename a session or change its context", responses=_ANSWERS)
async def update(session_id: str, payload: UpdateSessionBody, request: Request, deps: DepsDep) -> Response:
    command = UpdateSession(title=payload.title, context=_context(payload.context))
    return await _command(session_id, request, deps, command)


@router.post(
    "/{session_id}/rounds", status_code=202, summary="Start a round", responses={202: _VIEW, **_ANSWERS}
)
async def start_round(session_id: str, payload: RoundBody, request: Request, deps: DepsDep) -> Response:
    command = StartRound(input=payload.input, title=payload.title, priority=payload.priority)
    call, ports = call_of(deps, request, session_id), ports_of(deps, deps.sessions)
    return body(
        await app.start_round(call, command, ports, deps.settings.faults, deps.uploads, deps.presets), 202
    )


@router.post(
    "/{session_id}/rounds/{round}/adopt", summary="Adopt one of a round's candidates", responses=_ANSWERS
)
async def adopt(session_id: str, round: int, payload: AdoptBody, request: Request, deps: DepsDep) -> Response:
    return await _command(session_id, request, deps, AdoptCandidate(round=round, asset_id=payload.asset_id))


@router.post("/{session_id}/close", summary="Close a session: no more rounds", responses=_ANSWERS)
async def close(session_id: str, request: Request, deps: DepsDep) -> Response:
    return await _command(session_id, request, deps, CloseSession())
