"""The product-photo studio over HTTP (``docs/studio.md``).

A studio session is a session of kind ``studio``; ``edit``, ``refine`` and ``export`` each start a
round (a job, followed at ``/v1/jobs/{id}`` and its streams), ``adopt`` settles a candidate's look.
Every answer is a ``StudioView``: the session's rounds with each candidate's download link, the
model that made it and any fallback in a shop owner's words, and the look now in force.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts import studio as looks
from atelier_contracts.sessions import Candidate, SessionView
from atelier_contracts.studio import ContextUnreadable, StudioCandidate, StudioLook, StudioRound, StudioView
from atelier_gateway.app import studio as app
from atelier_gateway.app.aggregates import existing
from atelier_gateway.app.get_job import JobAsset
from atelier_gateway.app.sessions import SESSIONS
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.aggregates import body, call_of, ports_of
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute, idempotent_request
from atelier_gateway.entrypoints.problems import contract_body, problem_responses
from atelier_gateway.entrypoints.render import FileUrl, file_urls

router = APIRouter(prefix="/v1/studio", tags=["studio"], route_class=IdempotentRoute)

_VIEW = contract_body("StudioView", "The studio session as decided.")
_ANSWERS: dict[int | str, dict[str, Any]] = {200: _VIEW, **problem_responses(404, 409, 422, 500, 503)}
Count = Annotated[int, Field(ge=1, le=8, description="How many candidates (default 4).")]


def studio_view(view: SessionView, url: FileUrl, deps: Deps) -> StudioView:
    now = deps.clock()

    def candidate(c: Candidate) -> StudioCandidate:
        link = deps.signer.sign(c.asset_id, now)
        asset = JobAsset(
            id=c.asset_id,
            step=c.step,
            name=c.name,
            kind=c.kind,
            content_type=c.blob.content_type,
            size=c.blob.size,
            link=link,
        )
        return StudioCandidate(
            asset_id=c.asset_id,
            url=url(asset),
            model_used=c.model or c.provider,
            note=app.model_note(c),
            width=int(c.meta.get("width", 0)),
            height=int(c.meta.get("height", 0)),
            checks=list(c.meta.get("checks", [])),
            recipe=dict(c.meta.get("recipe", {})),
        )

    try:
        recipe = looks.recipe_of(view.context, "refine")
        look: StudioLook | None = StudioLook(
            lighting=recipe.lighting,
            color_tone=recipe.tone,
            logo_anchor=recipe.logo,
            perspective=recipe.perspective,
            background=recipe.background.text(),
            shadow=recipe.shadow,
        )
    except ContextUnreadable:
        look = None
    rounds = [
        StudioRound(
            round=r.round,
            job_id=r.job_id,
            operation=str(r.input.get("operation", "")),
            said=str(r.input.get("prompt", "")),
            status=r.status,
            candidates=[candidate(c) for c in r.candidates],
            adopted=r.adopted,
            error=app.friendly(r.error_code, r.error) if r.status == "failed" else "",
            error_code=r.error_code,
        )
        for r in view.rounds
    ]
    return StudioView(
        id=view.id,
        title=view.title,
        status=view.status,
        upload=view.context.extra.get("source", ""),
        logo=view.context.extra.get("logo") or None,
        look=look,
        rounds=rounds,
        adopted=candidate(view.adopted) if view.adopted is not None else None,
        created_at=view.created_at,
        updated_at=view.updated_at,
    )


class CreateBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    upload: str = Field(description="The product photo (POST /v1/uploads).", pattern=r"^upl_[0-9a-f]{24}$")
    logo: str | None = Field(None, description="A logo to place (an upload).", pattern=r"^upl_[0-9a-f]{24}$")


class EditBody(BaseModel):
    operation: Literal["optimize", "bg_replace"] = "bg_replace"
    prompt: str = Field("", max_length=2000, description="May be empty: the chip decides.")
    chip: str | None = Field(None, max_length=48, description="A prompt chip (GET /v1/studio/chips).")
    candidates: Count = app.DEFAULT_CANDIDATES


class RefineBody(BaseModel):
    prompt: str = Field(min_length=1, max_length=2000, description="One change: 'warmer light'.")
    candidates: Count = app.DEFAULT_CANDIDATES


class AdoptBody(BaseModel):
    asset_id: str = Field(min_length=1, max_length=64)


class ExportBody(BaseModel):
    presets: list[str] = Field(default_factory=list, max_length=16, description="GET /v1/presets")
    platforms: list[str] = Field(default_factory=list, max_length=8, description="GET /v1/studio/platforms")


def _ports(deps: Deps) -> app.StudioPorts:
    return app.StudioPorts(
        sessions=ports_of(deps, deps.sessions),
        uploads=deps.uploads,
        catalog=deps.studio,
        presets=deps.presets,
        faults=deps.settings.faults,
    )


def _answer(view: SessionView, request: Request, deps: Deps, status_code: int = 200) -> Response:
    return body(studio_view(view, file_urls(request), deps), status_code)


@router.post(
    "/sessions", status_code=201, summary="Start a studio session", responses={201: _VIEW, **_ANSWERS}
)
async def create(payload: CreateBody, request: Request, deps: DepsDep) -> Response:
    idempotent = idempotent_request(request)
    session_id = SESSIONS.new_id("ses", deps.settings.tenant, idempotent.key if idempotent else None)
    call = call_of(deps, request, session_id)
    request_hash = idempotent.request_hash if idempotent else ""
    view = await app.create(call, payload.title, payload.upload, payload.logo, request_hash, _ports(deps))
    return _answer(view, request, deps, 201)


@router.get("/sessions/{session_id}", summary="Read a studio session", responses=_ANSWERS)
async def read(session_id: str, request: Request, deps: DepsDep) -> Response:
    view = await existing(SESSIONS, call_of(deps, request, session_id), ports_of(deps, deps.sessions))
    return _answer(view, request, deps)


@router.post(
    "/sessions/{session_id}/edit",
    status_code=202,
    summary="Optimize or replace the background: a round of candidates",
    responses={202: _VIEW, **_ANSWERS},
)
async def edit(session_id: str, payload: EditBody, request: Request, deps: DepsDep) -> Response:
    call = call_of(deps, request, session_id)
    view = await app.edit(
        call, payload.operation, payload.prompt, payload.chip, payload.candidates, _ports(deps)
    )
    return _answer(view, request, deps, 202)


@router.post(
    "/sessions/{session_id}/refine",
    status_code=202,
    summary="Refine the adopted candidate: one change, a round of candidates",
    responses={202: _VIEW, **_ANSWERS},
)
async def refine(session_id: str, payload: RefineBody, request: Request, deps: DepsDep) -> Response:
    call = call_of(deps, request, session_id)
    view = await app.refine(call, payload.prompt, payload.candidates, _ports(deps))
    return _answer(view, request, deps, 202)


@router.post(
    "/sessions/{session_id}/adopt", summary="Adopt a candidate: its look is settled", responses=_ANSWERS
)
async def adopt(session_id: str, payload: AdoptBody, request: Request, deps: DepsDep) -> Response:
    view = await app.adopt(call_of(deps, request, session_id), payload.asset_id, _ports(deps))
    return _answer(view, request, deps)


@router.post(
    "/sessions/{session_id}/export",
    status_code=202,
    summary="Export the adopted candidate in presets and for marketplaces",
    responses={202: _VIEW, **_ANSWERS},
)
async def export(session_id: str, payload: ExportBody, request: Request, deps: DepsDep) -> Response:
    call = call_of(deps, request, session_id)
    view = await app.export(call, payload.presets, payload.platforms, _ports(deps))
    return _answer(view, request, deps, 202)


@router.get("/chips", summary="Prompt chips: one-click looks")
async def chips(deps: DepsDep) -> dict[str, Any]:
    catalog = deps.studio.current()
    return {
        "chips": {name: msgspec.to_builtins(chip) for name, chip in sorted(catalog.chips.items())},
        "defaults": dict(catalog.default_chips),
    }


@router.get("/platforms", summary="Marketplace platforms and their main-image rules")
async def platforms(deps: DepsDep) -> dict[str, Any]:
    catalog = deps.studio.current()
    return {"platforms": {name: msgspec.to_builtins(p) for name, p in sorted(catalog.platforms.items())}}
