"""The anime studio's projects and episodes over HTTP.

A project has a style preset, a review mode and a budget (the router's: an alert, then refusals;
``docs/providers.md``); its episodes have scripts. ``POST …/episodes/{id}/render`` submits the
episode as an ``episode`` job, in the project's style and review mode, counted toward the project
— followed like any job, and shown on the episode.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts import ids
from atelier_contracts.budgets import BudgetLimit
from atelier_contracts.kinds.episode import MAX_SHOTS, clip_step, image_step
from atelier_contracts.kinds.stills import MAX_EPISODES
from atelier_contracts.styles import STYLES
from atelier_gateway.app.composites import PackageKind
from atelier_gateway.app.errors import (
    EpisodeNotFound,
    EpisodeNotRendered,
    InputInvalid,
    ProjectNotFound,
)
from atelier_gateway.app.get_job import get_job
from atelier_gateway.app.projects import (
    Episode,
    Project,
    ShotVerdict,
    changed,
    episode_input,
    improve_input,
    review_commands,
    shot_states,
)
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints import render
from atelier_gateway.entrypoints.anime import episode_of, job_view, project_of
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute, idempotent_request
from atelier_gateway.entrypoints.job_commands import send_command
from atelier_gateway.entrypoints.jobs import job_out, submitted
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.project_schedule import refresh_batch, stop_batch

router = APIRouter(prefix="/v1/projects", tags=["projects"], route_class=IdempotentRoute)
_ANSWERS: dict[int | str, dict[str, Any]] = problem_responses(404, 409, 422, 500, 503)
Review = Literal["none", "manual", "auto", "both"]


class ProjectBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    style: str = Field("anime", max_length=48, description="A style preset (GET /v1/styles).")
    review: Review = "none"
    shot_template: str = Field(
        "{description}",
        max_length=1000,
        description="Every shot's prompt: {description} and the words around it.",
    )
    budget_usd: float | None = Field(None, gt=0, le=1e9, description="Per calendar month (UTC).")


class ProjectPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    style: str | None = Field(None, max_length=48)
    review: Review | None = None
    shot_template: str | None = Field(None, max_length=1000)
    budget_usd: float | None = Field(None, gt=0, le=1e9)


_PACKAGE = "What POST …/package packs (shot images, clips, speech, subtitles, the episode); null: all."
_MARKED = "In the project's scheduled batch (PUT /v1/projects/{id}/schedule)."


class EpisodeBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    script: str = Field(min_length=1, max_length=20000)
    package: list[PackageKind] | None = Field(None, min_length=1, description=_PACKAGE)
    marked: bool = Field(False, description=_MARKED)


class EpisodePatch(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    script: str | None = Field(None, min_length=1, max_length=20000)
    package: list[PackageKind] | None = Field(None, min_length=1, description=_PACKAGE)
    marked: bool | None = Field(None, description=_MARKED)


class ShotVerdictBody(BaseModel):
    shot: int = Field(ge=1, le=MAX_SHOTS, description="The shot's number (GET the episode: `shots`).")
    verdict: Literal["approve", "reject"]
    feedback: str = Field("", max_length=2000, description="On a rejection: what to draw differently.")
    of: Literal["image", "clip"] = Field("image", description="The shot's image, or its clip (review_clips).")


class EpisodeReview(BaseModel):
    reviewer: str = Field("", max_length=100, description="Who decides (recorded with every verdict).")
    verdicts: list[ShotVerdictBody] = Field(min_length=1, max_length=2 * MAX_SHOTS)


def _template_fits(template: str | None) -> None:
    if template is not None and (
        "{description}" not in template or template.replace("{description}", "").count("{")
    ):
        raise InputInvalid(
            [
                {
                    "loc": ["body", "shot_template"],
                    "msg": "names {description}, no other placeholder",
                    "type": "value_error",
                }
            ],
            "A shot template names {description} and no other placeholder.",
        )


class ImproveBody(BaseModel):
    idea: str = Field(
        min_length=1, max_length=2000, description="A short idea: 'a cat who keeps a lighthouse'."
    )
    shots: int = Field(8, ge=1, le=48, description="How many beats (sentences) to write.")


def _style_known(style: str | None) -> None:
    if style is not None and style not in STYLES.current():
        known = ", ".join(sorted(STYLES.current()))
        raise InputInvalid(
            [{"loc": ["body", "style"], "msg": f"one of {known}", "type": "enum"}], f"No style {style!r}."
        )


def _project_out(p: Project, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "style": p.style,
        "review": p.review,
        "shot_template": p.shot_template,
        "budget_usd": p.budget_usd,
        "schedule_id": p.schedule_id,
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
    }
    if usage is not None:
        out["usage"] = usage
    return out


def _episode_out(
    e: Episode, job: dict[str, Any] | None = None, shots: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "id": e.id,
        "project_id": e.project_id,
        "title": e.title,
        "script": e.script,
        "package": list(e.package_kinds) if e.package_kinds else None,
        "marked": e.marked,
        "job_id": e.job_id,
        "job": job,
        "shots": shots,
        "waiting": [s["shot"] for s in shots or [] if "waiting" in (s.get("review"), s.get("clip_review"))],
        "created_at": e.created_at.isoformat(),
        "updated_at": e.updated_at.isoformat(),
    }


async def _budget(deps: Deps, project: Project) -> None:
    if project.budget_usd is not None:
        await deps.budgets.put(deps.settings.tenant, project.id, BudgetLimit(limit_usd=project.budget_usd))


async def _usage(deps: Deps, project_id: str) -> dict[str, Any]:
    groups = await deps.analytics.usage(deps.settings.tenant, None, None, "project")
    mine = next((g for g in groups if g["project"] == project_id), None)
    return {k: v for k, v in (mine or {"calls": 0, "cost_usd": 0.0, "units": {}}).items() if k != "project"}


def _new_id(prefix: str, request: Request, deps: Deps) -> str:
    keyed = idempotent_request(request)
    return (
        ids.derived_id(prefix, deps.settings.tenant, keyed.key)
        if keyed
        else f"{prefix}_{ids.uuid7().replace('-', '')}"
    )


@router.post("", status_code=201, summary="Create a project", responses=_ANSWERS)
async def create_project(body: ProjectBody, request: Request, deps: DepsDep) -> dict[str, Any]:
    _style_known(body.style)
    _template_fits(body.shot_template)
    now = deps.clock()
    project = Project(
        id=_new_id("prj", request, deps),
        name=body.name,
        style=body.style,
        review=body.review,
        shot_template=body.shot_template,
        budget_usd=body.budget_usd,
        created_at=now,
        updated_at=now,
    )
    await deps.projects.put_project(deps.settings.tenant, project)
    await _budget(deps, project)
    return _project_out(project)


@router.get("", summary="List projects, newest first", responses=_ANSWERS)
async def list_projects(deps: DepsDep) -> dict[str, Any]:
    return {"items": [_project_out(p) for p in await deps.projects.projects(deps.settings.tenant)]}


@router.get("/{project_id}", summary="Read a project, with its usage", responses=_ANSWERS)
async def read_project(project_id: str, deps: DepsDep) -> dict[str, Any]:
    return _project_out(await project_of(deps, project_id), await _usage(deps, project_id))


@router.patch("/{project_id}", summary="Change a project", responses=_ANSWERS)
async def update_project(project_id: str, body: ProjectPatch, deps: DepsDep) -> dict[str, Any]:
    _style_known(body.style)
    _template_fits(body.shot_template)
    project = changed(await project_of(deps, project_id), deps.clock(), **body.model_dump(exclude_none=True))
    await deps.projects.put_project(deps.settings.tenant, project)
    await _budget(deps, project)
    return _project_out(project)


@router.delete(
    "/{project_id}", status_code=204, summary="Delete a project and its episodes", responses=_ANSWERS
)
async def delete_project(project_id: str, deps: DepsDep) -> Response:
    project = await project_of(deps, project_id)
    await stop_batch(deps, project)
    if not await deps.projects.delete_project(deps.settings.tenant, project_id):
        raise ProjectNotFound(f"No project {project_id!r}.")
    return Response(status_code=204)


@router.post("/{project_id}/episodes", status_code=201, summary="Add an episode", responses=_ANSWERS)
async def create_episode(
    project_id: str, body: EpisodeBody, request: Request, deps: DepsDep
) -> dict[str, Any]:
    await project_of(deps, project_id)
    now = deps.clock()
    episode = Episode(
        id=_new_id("epi", request, deps),
        project_id=project_id,
        title=body.title,
        script=body.script,
        job_id=None,
        package_kinds=tuple(body.package) if body.package else None,
        marked=body.marked,
        created_at=now,
        updated_at=now,
    )
    await deps.projects.put_episode(deps.settings.tenant, episode)
    return _episode_out(episode)


@router.get("/{project_id}/episodes", summary="A project's episodes", responses=_ANSWERS)
async def list_episodes(project_id: str, deps: DepsDep) -> dict[str, Any]:
    await project_of(deps, project_id)
    return {
        "items": [_episode_out(e) for e in await deps.projects.episodes(deps.settings.tenant, project_id)]
    }


@router.get(
    "/{project_id}/episodes/{episode_id}", summary="Read an episode and its last render", responses=_ANSWERS
)
async def read_episode(project_id: str, episode_id: str, request: Request, deps: DepsDep) -> dict[str, Any]:
    episode = await episode_of(deps, project_id, episode_id)
    return await _episode_view(request, deps, episode)


async def _episode_view(request: Request, deps: Deps, episode: Episode) -> dict[str, Any]:
    """The episode with its last render and every shot as a reviewer sees it (links to images)."""
    if episode.job_id is None:
        return _episode_out(episode)
    details = await get_job(
        deps.settings.tenant,
        episode.job_id,
        reader=deps.reader,
        joblog=deps.joblog,
        signer=deps.signer,
        now=deps.clock(),
        wait_s=deps.settings.read_wait_s,
    )
    url = render.file_urls(request)
    images = {a.step: url(a) for a in details.assets if a.step.startswith("image_")}
    clips = {a.step: url(a) for a in details.assets if a.step.startswith("clip_") and a.kind == "video"}
    shots = [
        {**s, "image_url": images.get(image_step(s["shot"])), "clip_url": clips.get(clip_step(s["shot"]))}
        for s in shot_states(details.job)
    ]
    job = render.job(details, url).model_dump(mode="json", by_alias=True)
    return _episode_out(episode, job, shots)


@router.patch("/{project_id}/episodes/{episode_id}", summary="Change an episode", responses=_ANSWERS)
async def update_episode(
    project_id: str, episode_id: str, body: EpisodePatch, request: Request, deps: DepsDep
) -> dict[str, Any]:
    episode = await episode_of(deps, project_id, episode_id)
    fields: dict[str, Any] = body.model_dump(exclude_none=True)
    if "package" in fields:
        fields["package_kinds"] = tuple(fields.pop("package"))
    if fields.get("marked") and not episode.marked:
        others = [e for e in await deps.projects.episodes(deps.settings.tenant, project_id) if e.marked]
        if len(others) >= MAX_EPISODES:
            message = f"at most {MAX_EPISODES} episodes of a project are in its batch"
            raise InputInvalid([{"loc": ["body", "marked"], "msg": message, "type": "value_error"}], message)
    episode = Episode(**{**episode.__dict__, **fields, "updated_at": deps.clock()})
    await deps.projects.put_episode(deps.settings.tenant, episode)
    if "marked" in fields:  # a retry after a refresh that failed refreshes again
        await refresh_batch(deps, await project_of(deps, project_id))
    return await _episode_view(request, deps, episode)


@router.delete(
    "/{project_id}/episodes/{episode_id}", status_code=204, summary="Delete an episode", responses=_ANSWERS
)
async def delete_episode(project_id: str, episode_id: str, deps: DepsDep) -> Response:
    episode = await episode_of(deps, project_id, episode_id)
    if not await deps.projects.delete_episode(deps.settings.tenant, project_id, episode_id):
        raise EpisodeNotFound(f"Project {project_id!r} has no episode {episode_id!r}.")
    if episode.marked:
        await refresh_batch(deps, await project_of(deps, project_id))
    return Response(status_code=204)


@router.post(
    "/{project_id}/episodes/{episode_id}/render",
    status_code=202,
    summary="Render an episode: an episode job in the project's style and review mode",
    responses=_ANSWERS,
)
async def render_episode(
    project_id: str, episode_id: str, request: Request, response: Response, deps: DepsDep
) -> Any:
    project = await project_of(deps, project_id)
    episode = await episode_of(deps, project_id, episode_id)
    job = await submitted(
        request, deps, "episode", f"{project.name}: {episode.title}", episode_input(project, episode)
    )
    rendered = Episode(**{**episode.__dict__, "job_id": job.id, "updated_at": deps.clock()})
    await deps.projects.put_episode(deps.settings.tenant, rendered)
    response.headers["Location"] = render.job_path(job.id)
    return job_out(request, deps, job)


@router.post(
    "/{project_id}/improve-prompt",
    status_code=202,
    summary="Improve my prompt: a short idea expanded into a script the shot list reads well",
    responses=_ANSWERS,
)
async def improve_prompt(
    project_id: str, body: ImproveBody, request: Request, response: Response, deps: DepsDep
) -> Any:
    project = await project_of(deps, project_id)
    job = await submitted(
        request, deps, "task", f"{project.name}: an idea", improve_input(project, body.idea, body.shots)
    )
    response.headers["Location"] = render.job_path(job.id)
    return job_out(request, deps, job)


@router.post(
    "/{project_id}/episodes/{episode_id}/review",
    status_code=202,
    summary="Approve or reject shots of the episode's render, each with its feedback",
    description="Each verdict goes to its shot's gate (`review_003`, or `clip_review_003` for a clip): "
    "a rejected shot is drawn (or filmed) again with the feedback and comes back for review; the "
    "others go on. 409 `illegal_transition` names the shots that wait for no review.",
    responses=_ANSWERS,
)
async def review_episode(
    project_id: str, episode_id: str, body: EpisodeReview, request: Request, deps: DepsDep
) -> dict[str, Any]:
    await project_of(deps, project_id)
    episode = await episode_of(deps, project_id, episode_id)
    if episode.job_id is None:
        raise EpisodeNotRendered(f"Episode {episode_id!r} has not been rendered (POST …/render).")
    job = await job_view(deps, episode.job_id)
    if job is None:
        raise EpisodeNotRendered(f"Episode {episode_id!r}'s render is gone.")
    verdicts = [
        ShotVerdict(shot=v.shot, verdict=v.verdict, feedback=v.feedback, of=v.of) for v in body.verdicts
    ]
    for command in review_commands(job, verdicts, body.reviewer):
        await send_command(deps, request, episode.job_id, command, part=command.step)
    return await _episode_view(request, deps, episode)
