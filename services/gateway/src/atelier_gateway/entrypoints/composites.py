"""An episode's composite over HTTP: read it, edit its timeline, export it again.

``GET …/episodes/{id}/composite`` makes it from the episode's render once that has succeeded, the
first time (``app/composites.py``); ``PATCH`` sets the timeline (the shots in order, each with an
optional duration and take number: a shot left out is dropped); ``POST …/composite/export``
submits a ``cut`` job that films only the shots extended past their takes, and answers 202 with
the composite (``exporting``), or 200 when the timeline is what was last exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts import ids
from atelier_contracts.kinds.episode import MAX_SHOTS
from atelier_contracts.snapshot import JobView
from atelier_gateway.app import composites as cuts
from atelier_gateway.app.composites import Composite, CutEdit
from atelier_gateway.app.errors import CompositeChanged, CompositeExporting, EpisodeNotRendered
from atelier_gateway.app.get_job import job_assets
from atelier_gateway.app.projects import Episode, Project
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints import render
from atelier_gateway.entrypoints.anime import composite_of, episode_of, jobs_of, project_of
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute
from atelier_gateway.entrypoints.jobs import job_out, submitted
from atelier_gateway.entrypoints.problems import problem_responses

router = APIRouter(prefix="/v1/projects", tags=["projects"], route_class=IdempotentRoute)
_ANSWERS: dict[int | str, dict[str, Any]] = problem_responses(404, 409, 422, 500, 503)
_PATH = "/{project_id}/episodes/{episode_id}/composite"


class CutBody(BaseModel):
    shot: int = Field(ge=1, le=MAX_SHOTS, description="The shot's number in the episode.")
    duration_s: float | None = Field(
        None, ge=0.5, le=30, description="Trim or extend; left out, the shot keeps its duration."
    )
    take: int | None = Field(
        None, ge=1, description="Which of the shot's takes (1 is the render's); left out, the one it has."
    )


class TimelineBody(BaseModel):
    timeline: list[CutBody] = Field(
        min_length=1, max_length=MAX_SHOTS, description="The shots in order; a shot left out is dropped."
    )


@dataclass(frozen=True)
class _Loaded:
    project: Project
    episode: Episode
    composite: Composite
    jobs: dict[str, JobView]
    """The jobs of its exports (the render first), by id."""


async def _loaded(deps: Deps, project_id: str, episode_id: str) -> _Loaded:
    project = await project_of(deps, project_id)
    episode = await episode_of(deps, project_id, episode_id)
    composite = await composite_of(deps, project_id, episode)
    return _Loaded(project, episode, composite, await jobs_of(deps, composite))


def composite_out(
    request: Request, deps: Deps, composite: Composite, jobs: dict[str, JobView]
) -> dict[str, Any]:
    url = render.file_urls(request)
    known = cuts.takes(composite, jobs)
    numbers = {t.asset: t.number for t in known}
    now = deps.clock()
    links = {a.id: url(a) for job in jobs.values() for a in job_assets(job, deps.signer, now)}
    shown = cuts.newest_video(composite, jobs)
    video = None
    if shown is not None:
        made = {a.name: a for a in shown.steps["composite"].outputs}
        link = {name: links.get(ids.asset_id(shown.id, "composite", name)) for name in made}
        video = {
            "job_id": shown.id,
            "url": link["episode"],
            "poster_url": link.get("poster"),
            "subtitles_url": link.get("subtitles"),
            "frames": made["episode"].meta.get("frames"),
            "duration_s": made["episode"].meta.get("duration_s"),
        }
    return {
        "episode_id": composite.episode_id,
        "project_id": composite.project_id,
        "status": cuts.status(composite, jobs),
        "render_job": composite.render_job,
        "fps": composite.fps,
        "duration_s": round(sum(c.duration_s for c in composite.timeline), 6),
        "timeline": [
            {
                "shot": c.shot,
                "duration_s": c.duration_s,
                "take": numbers.get(c.take),
                "refilm": cuts.fitting(c, known, composite.fps) is None,
                "line": composite.source(c.shot).line,
                "move": composite.source(c.shot).move,
            }
            for c in composite.timeline
        ],
        "takes": [
            {
                "shot": t.shot,
                "take": t.number,
                "duration_s": t.duration_s,
                "job_id": t.job_id,
                "url": links.get(t.asset),
            }
            for t in known
        ],
        "exports": [
            {"job_id": e.job_id, "status": jobs[e.job_id].status if e.job_id in jobs else "deleted"}
            for e in composite.exports
        ],
        "video": video,
        "created_at": composite.created_at.isoformat(),
        "updated_at": composite.updated_at.isoformat(),
    }


@router.get(
    _PATH, summary="An episode's composite: its timeline, takes, exports and video", responses=_ANSWERS
)
async def read_composite(project_id: str, episode_id: str, request: Request, deps: DepsDep) -> dict[str, Any]:
    got = await _loaded(deps, project_id, episode_id)
    return composite_out(request, deps, got.composite, got.jobs)


@router.patch(
    _PATH, summary="Edit the timeline: reorder, trim or extend, drop, swap a take", responses=_ANSWERS
)
async def edit_composite(
    project_id: str, episode_id: str, body: TimelineBody, request: Request, deps: DepsDep
) -> dict[str, Any]:
    got = await _loaded(deps, project_id, episode_id)
    if cuts.status(got.composite, got.jobs) == "exporting":
        raise CompositeExporting()
    edits = [CutEdit(shot=c.shot, duration_s=c.duration_s, take=c.take) for c in body.timeline]
    composite = cuts.edited(got.composite, edits, cuts.takes(got.composite, got.jobs), deps.clock())
    if not await deps.composites.put(deps.settings.tenant, composite, got.composite.version):
        raise CompositeChanged()
    return composite_out(request, deps, composite, got.jobs)


@router.post(
    _PATH + "/export",
    status_code=202,
    summary="Export the timeline: a cut job that re-renders only what changed",
    responses={200: {"description": "Nothing changed since the last export."}, **_ANSWERS},
)
async def export_composite(
    project_id: str, episode_id: str, request: Request, response: Response, deps: DepsDep
) -> dict[str, Any]:
    got = await _loaded(deps, project_id, episode_id)
    composite, jobs = got.composite, got.jobs
    state = cuts.status(composite, jobs)
    if state == "exporting":
        raise CompositeExporting()
    if state == "done":
        response.status_code = 200
        return composite_out(request, deps, composite, jobs)
    known = cuts.takes(composite, jobs)
    job_input = cuts.cut_input(composite, known, seed=len(composite.exports))
    # One job per version of the composite: exports racing on it submit the same job, and the
    # one whose write loses answers the composite the other wrote.
    once = f"composite:{got.episode.id}:{composite.version}"
    title = f"{got.project.name}: {got.episode.title} (cut)"
    job = await submitted(request, deps, "cut", title, job_input, once=once)
    composite = cuts.exported(composite, job.id, known, deps.clock())
    if not await deps.composites.put(deps.settings.tenant, composite, got.composite.version):
        composite = await composite_of(deps, project_id, got.episode)
    jobs[job.id] = job
    response.headers["Location"] = render.job_path(job.id)
    return composite_out(request, deps, composite, jobs)


@router.post(
    "/{project_id}/episodes/{episode_id}/package",
    status_code=202,
    summary="Package the episode: a job whose ZIP holds what the episode's package config asks for",
    responses=_ANSWERS,
)
async def package_episode(
    project_id: str, episode_id: str, request: Request, response: Response, deps: DepsDep
) -> Any:
    got = await _loaded(deps, project_id, episode_id)
    project, episode, composite, jobs = got.project, got.episode, got.composite, got.jobs
    kinds = episode.package_kinds or cuts.PACKAGE_KINDS
    files = cuts.package_files(
        composite, cuts.takes(composite, jobs), cuts.newest_video(composite, jobs), kinds
    )
    if not files:
        raise EpisodeNotRendered(f"Episode {episode.id!r} has none of {', '.join(kinds)} yet.")
    about = {"episode": episode.id, "title": episode.title, "project": project.id, "kinds": list(kinds)}
    job_input = {"files": files, "about": about, "project": project.id}
    job = await submitted(request, deps, "package", f"{project.name}: {episode.title} (package)", job_input)
    response.headers["Location"] = render.job_path(job.id)
    return job_out(request, deps, job)
