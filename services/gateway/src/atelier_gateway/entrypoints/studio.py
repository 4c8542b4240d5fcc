"""The product-photo studio over HTTP (``docs/studio.md``).

A studio session is a session of kind ``studio``; ``edit``, ``refine`` and ``export`` each start a
round (a job, followed at ``/v1/jobs/{id}`` and its streams), ``adopt`` settles a candidate's look.
Every answer is a ``StudioView``: the session's rounds with each candidate's download link, the
model that made it and any fallback in a shop owner's words, and the look now in force.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts import studio as looks
from atelier_contracts.common import Artifact
from atelier_contracts.sessions import Candidate, SessionView
from atelier_contracts.studio import ContextUnreadable, StudioCandidate, StudioLook, StudioRound, StudioView
from atelier_gateway.app import studio as app
from atelier_gateway.app.aggregates import existing
from atelier_gateway.app.errors import ChipNotFound, TemplateNotFound
from atelier_gateway.app.get_job import signed_asset
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
        asset = signed_asset(
            deps.signer, now, c.asset_id, c.step, Artifact(name=c.name, kind=c.kind, blob=c.blob)
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
    template: str | None = Field(
        None, max_length=64, description="A saved template: its operation, prompt and chip."
    )
    candidates: Count = app.DEFAULT_CANDIDATES


class TemplateBody(BaseModel):
    operation: Literal["optimize", "bg_replace"] = "bg_replace"
    prompt: str = Field(max_length=2000)
    chip: str | None = Field(None, max_length=48)


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
    operation, prompt, chip = payload.operation, payload.prompt, payload.chip
    if payload.template is not None:
        saved = await deps.studio_templates.get(deps.settings.tenant, payload.template)
        if saved is None:
            raise TemplateNotFound(f"No saved template {payload.template!r} (GET /v1/studio/templates).")
        operation, prompt, chip = saved.operation, prompt or saved.prompt, chip or saved.chip
    view = await app.edit(call, operation, prompt, chip, payload.candidates, _ports(deps))
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


@router.get("/chips", summary="Prompt chips: one-click looks", responses=problem_responses(500))
async def chips(deps: DepsDep) -> dict[str, Any]:
    catalog = deps.studio.current()
    return {
        "chips": {name: msgspec.to_builtins(chip) for name, chip in sorted(catalog.chips.items())},
        "defaults": dict(catalog.default_chips),
    }


@router.get(
    "/platforms", summary="Marketplace platforms and their main-image rules", responses=problem_responses(500)
)
async def platforms(deps: DepsDep) -> dict[str, Any]:
    catalog = deps.studio.current()
    return {"platforms": {name: msgspec.to_builtins(p) for name, p in sorted(catalog.platforms.items())}}


def _template_out(t: app.SavedTemplate) -> dict[str, Any]:
    return {
        "name": t.name,
        "operation": t.operation,
        "prompt": t.prompt,
        "chip": t.chip,
        "created_at": t.created_at.isoformat() if t.created_at else None,
        "updated_at": t.updated_at.isoformat() if t.updated_at else None,
    }


TemplateName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")]


@router.put(
    "/templates/{name}",
    summary="Save a prompt as a template",
    responses=problem_responses(404, 422, 500, 503),
)
async def save_template(name: TemplateName, payload: TemplateBody, deps: DepsDep) -> dict[str, Any]:
    if payload.chip is not None:  # a chip it names must be one of the operation's
        catalog = deps.studio.current()
        if payload.chip not in catalog.chips or catalog.chips[payload.chip].operation != payload.operation:
            raise ChipNotFound(f"No {payload.operation} chip {payload.chip!r} (GET /v1/studio/chips).")
    template = app.SavedTemplate(
        name=name, operation=payload.operation, prompt=payload.prompt, chip=payload.chip
    )
    return _template_out(await deps.studio_templates.put(deps.settings.tenant, template, deps.clock()))


@router.get("/templates", summary="The templates saved", responses=problem_responses(500, 503))
async def list_templates(deps: DepsDep) -> dict[str, Any]:
    return {"templates": [_template_out(t) for t in await deps.studio_templates.list(deps.settings.tenant)]}


@router.delete(
    "/templates/{name}",
    status_code=204,
    summary="Forget a template",
    responses=problem_responses(404, 422, 500, 503),
)
async def delete_template(name: str, deps: DepsDep) -> Response:
    if not await deps.studio_templates.delete(deps.settings.tenant, name):
        raise TemplateNotFound(f"No saved template {name!r}.")
    return Response(status_code=204)


@router.get(
    "/prompts",
    summary="Recent prompts of the studio's rounds, and the saved templates",
    responses=problem_responses(422, 500, 503),
)
async def prompts(deps: DepsDep, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    views = await deps.sessions.newest(deps.settings.tenant, None, 100)
    recent = app.recent_prompts(views, limit)
    return {
        "recent": [
            {"prompt": p.prompt, "operation": p.operation, "session": p.session, "at": p.at.isoformat()}
            for p in recent
        ],
        "templates": [_template_out(t) for t in await deps.studio_templates.list(deps.settings.tenant)],
    }
