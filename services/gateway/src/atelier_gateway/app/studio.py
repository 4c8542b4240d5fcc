"""The product-photo studio over sessions: each call is a round (a ``studio`` job) of a session
whose context holds the settled look (``atelier_contracts.studio``).

The gateway turns a request into whole recipes here — a chip's look, the words of a refinement
as exactly one change — so the round's job says what each candidate is, and the orchestrator
reads no catalogue. Adopting a candidate settles the look it was made with (the session's
``AdoptCandidate``); the next round starts from it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec

from atelier_contracts.faults import FaultInjection
from atelier_contracts.presets import PresetRegistry
from atelier_contracts.sessions import (
    AdoptCandidate,
    Candidate,
    CreateSession,
    SessionContext,
    SessionView,
    StartRound,
)
from atelier_contracts.studio import (
    ContextUnreadable,
    Recipe,
    RefineUnclear,
    edit_recipes,
    interpret,
    parse_background,
    parse_lighting,
    recipe_of,
)
from atelier_contracts.studio_catalog import Catalog, StudioCatalog
from atelier_gateway.app import sessions
from atelier_gateway.app.aggregates import Call, Ports, existing, send
from atelier_gateway.app.errors import (
    CandidateNotFound,
    ChipNotFound,
    InputInvalid,
    NothingAdopted,
    PlatformNotFound,
    RefineNotUnderstood,
    RefineOneChange,
    UploadNotFound,
)
from atelier_gateway.app.ports import UploadStore

KIND = "studio"
DEFAULT_CANDIDATES = 4


@dataclass(frozen=True)
class SavedTemplate:
    """A prompt a shop owner saved by name, with the operation and chip it goes with."""

    name: str
    operation: Literal["optimize", "bg_replace"]
    prompt: str
    chip: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Templates(Protocol):
    async def put(self, tenant: str, template: SavedTemplate, now: datetime) -> SavedTemplate: ...

    async def list(self, tenant: str) -> list[SavedTemplate]: ...

    async def get(self, tenant: str, name: str) -> SavedTemplate | None: ...

    async def delete(self, tenant: str, name: str) -> bool: ...


@dataclass(frozen=True)
class RecentPrompt:
    prompt: str
    operation: str
    session: str
    at: datetime


def recent_prompts(views: list[SessionView], limit: int) -> list[RecentPrompt]:
    """What was said in the newest studio rounds, newest first, each prompt once."""
    said: dict[str, RecentPrompt] = {}
    rounds = [(r, v) for v in views if v.kind == KIND for r in v.rounds]
    for r, v in sorted(rounds, key=lambda rv: rv[0].started_at, reverse=True):
        prompt = str(r.input.get("prompt", "")).strip()
        if prompt and prompt not in said:
            said[prompt] = RecentPrompt(prompt, str(r.input.get("operation", "")), v.id, r.started_at)
    return list(said.values())[:limit]


@dataclass(frozen=True)
class StudioPorts:
    sessions: Ports[SessionView]
    uploads: UploadStore
    catalog: StudioCatalog
    presets: PresetRegistry
    faults: FaultInjection


async def create(
    call: Call, title: str, upload: str, logo: str | None, request_hash: str, ports: StudioPorts
) -> SessionView:
    """A studio session of one product photo (and a logo to place, if given)."""
    for named in (upload, logo):
        if named is not None and await ports.uploads.get(call.tenant, named) is None:
            raise UploadNotFound(f"No upload {named!r} (POST /v1/uploads makes one).")
    extra = {"source": upload, **({"logo": logo} if logo else {})}
    body = CreateSession(
        kind=KIND, title=title, context=SessionContext(extra=extra), request_hash=request_hash
    )
    return await sessions.create_session(call, body, ports.sessions)


def _chip_look(catalog: Catalog, operation: str, chip_name: str | None, base: Recipe) -> tuple[Recipe, str]:
    """``base`` with a chip's look laid over it (the operation's default chip when none is
    named), and the chip's words."""
    name = chip_name or catalog.default_chips.get(operation)  # type: ignore[call-overload]
    chip = catalog.chips.get(name) if name else None
    if chip is None or chip.operation != operation:
        known = ", ".join(sorted(n for n, c in catalog.chips.items() if c.operation == operation))
        raise ChipNotFound(f"No {operation} chip {chip_name!r}; chips: {known} (GET /v1/studio/chips).")
    look = base
    if chip.background:
        look = msgspec.structs.replace(look, background=parse_background(chip.background))
    if chip.shadow is not None:
        look = msgspec.structs.replace(look, shadow=chip.shadow)
    if chip.lighting:
        look = msgspec.structs.replace(look, lighting=parse_lighting(chip.lighting))
    return look, chip.prompt


def _look(view: SessionView, operation: Literal["optimize", "bg_replace", "refine"]) -> Recipe:
    try:
        return recipe_of(view.context, operation)
    except ContextUnreadable as exc:
        raise InputInvalid(
            [{"loc": ["context"], "msg": str(exc), "type": "value_error"}],
            f"The session's context is not in the studio's form: {exc}",
        ) from None


_BACKGROUND_WORDS = re.compile(r"\b(wood|marble|linen|gradient|white)\b")


async def edit(
    call: Call,
    operation: Literal["optimize", "bg_replace"],
    prompt: str,
    chip: str | None,
    count: int,
    ports: StudioPorts,
) -> SessionView:
    """An edit round: ``count`` candidates of the chip's look, each lit from another side. Words
    that name a surface ("on a marble slab") choose the background over the chip's."""
    view = await existing(sessions.SESSIONS, call, ports.sessions)
    look, chip_words = _chip_look(ports.catalog.current(), operation, chip, _look(view, operation))
    if operation == "bg_replace" and _BACKGROUND_WORDS.search(prompt.lower()):
        with contextlib.suppress(RefineUnclear):
            look = interpret(f"{prompt} background", look, 1).recipes[0]
        look = msgspec.structs.replace(look, variant=0)
    recipes = edit_recipes(msgspec.structs.replace(look, operation=operation), count)
    said = prompt or chip_words
    return await _round(call, view, operation, said, recipes, ports)


async def refine(call: Call, prompt: str, count: int, ports: StudioPorts) -> SessionView:
    """A refine round on the adopted candidate: the words make one change, carried differently far
    by each candidate; everything else is the look in force."""
    view = await existing(sessions.SESSIONS, call, ports.sessions)
    if view.adopted is None:
        raise NothingAdopted("Adopt a candidate first: a refinement changes the one you chose.")
    try:
        change = interpret(prompt, _look(view, "refine"), count)
    except RefineUnclear as exc:
        raise (RefineOneChange if exc.code == "refine_one_change" else RefineNotUnderstood)(
            str(exc)
        ) from None
    return await _round(call, view, "refine", prompt, change.recipes, ports)


async def _round(
    call: Call, view: SessionView, operation: str, said: str, recipes: list[Recipe], ports: StudioPorts
) -> SessionView:
    body: dict[str, Any] = {
        "operation": operation,
        "upload": view.context.extra["source"],
        "prompt": said,
        "recipes": msgspec.to_builtins(recipes),
    }
    if view.context.extra.get("logo"):
        body["logo"] = view.context.extra["logo"]
    title = f"{operation}: {said}" if said else operation
    return await sessions.start_round(
        call,
        StartRound(input=body, title=title[:200]),
        ports.sessions,
        ports.faults,
        ports.uploads,
        ports.presets,
    )


async def adopt(call: Call, asset_id: str, ports: StudioPorts) -> SessionView:
    """Adopt a candidate by its asset id, whichever round made it."""
    view = await existing(sessions.SESSIONS, call, ports.sessions)
    for number, round_ in enumerate(view.rounds, start=1):
        if any(c.asset_id == asset_id for c in round_.candidates):
            return (
                await send(
                    sessions.SESSIONS, call, AdoptCandidate(round=number, asset_id=asset_id), ports.sessions
                )
                or view
            )
    raise CandidateNotFound(f"No round of this session made a candidate {asset_id!r}.")


def adopted_recipe(candidate: Candidate | None) -> Recipe | None:
    raw = candidate.meta.get("recipe") if candidate is not None else None
    try:
        return msgspec.convert(raw, Recipe) if isinstance(raw, dict) else None
    except msgspec.ValidationError:
        return None


async def export(call: Call, presets: list[str], platforms: list[str], ports: StudioPorts) -> SessionView:
    """The adopted candidate in export presets, and re-rendered for each marketplace's rules."""
    view = await existing(sessions.SESSIONS, call, ports.sessions)
    recipe = adopted_recipe(view.adopted)
    if view.adopted is None or recipe is None:
        raise NothingAdopted("Adopt a candidate first: an export renders the one you chose.")
    catalog = ports.catalog.current()
    unknown = [p for p in platforms if p not in catalog.platforms]
    if unknown:
        known = ", ".join(sorted(catalog.platforms))
        raise PlatformNotFound(f"No platform {unknown[0]!r}; platforms: {known} (GET /v1/studio/platforms).")
    body: dict[str, Any] = {
        "operation": "export",
        "upload": view.context.extra["source"],
        "presets": presets,
        "platforms": {p: msgspec.to_builtins(catalog.platforms[p]) for p in platforms},
        "recipe": msgspec.to_builtins(recipe),
    }
    if view.context.extra.get("logo"):
        body["logo"] = view.context.extra["logo"]
    start = StartRound(input=body, title=f"export: {', '.join([*presets, *platforms])}"[:200])
    return await sessions.start_round(call, start, ports.sessions, ports.faults, ports.uploads, ports.presets)


# --- what a shop owner reads ------------------------------------------------------------------


def model_note(candidate: Candidate) -> str:
    """Any fallback, in a shop owner's words."""
    if not candidate.fallbacks:
        return ""
    first = candidate.fallbacks[0]
    why = (
        "was busy"
        if "429" in first or "rate" in first
        else "was too slow"
        if "timeout" in first or "timed out" in first
        else "was having trouble"
    )
    used = candidate.model or candidate.provider
    return f"The first model {why}, so we used {used} instead."


FRIENDLY: dict[str, str] = {
    "rate_limited": "Our image models are busy right now. Please try again in a minute.",
    "image_too_large": "Your image is too large. Please compress it and upload it again.",
    "prompt_refused": "The model refused this request. Please rephrase your prompt.",
    "content_policy": "The model refused this request. Please rephrase your prompt.",
    "storage_unavailable": "We had trouble storing the result. Please try again.",
    "image_unreadable": "We could not read this photo. Please upload a JPEG or PNG.",
    "deadline_exceeded": "This took too long and was stopped. Please try again.",
    "provider_error": "Our image models had trouble with this one. Please try again.",
}


def friendly(code: str, message: str) -> str:
    return FRIENDLY.get(code, message or "Something went wrong with this round. Please try again.")
