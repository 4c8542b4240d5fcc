"""An episode's composite over HTTP: read it, edit its timeline, export it again.

``GET …/episodes/{id}/composite`` makes it from the episode's last succeeded render the first
time (``app/composites.py``); ``PATCH`` sets the timeline (the shots in order, each with an
optional duration and take number: a shot left out is dropped); ``POST …/composite/export``
submits a ``cut`` job that films only the shots extended past their takes, and answers 202 with
the composite (``exporting``), or 200 when the timeline is what was last exported.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from atelier_contracts.kinds.episode import MAX_SHOTS
from atelier_contracts.snapshot import JobView
from atelier_gateway.app import composites as cuts
from atelier_gateway.app.composites import Composite, CutEdit
from atelier_gateway.app.errors import CompositeChanged, CompositeExporting, EpisodeNotRendered, InputInvalid
from atelier_gateway.app.get_job import JobAsset, job_assets
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


def _files(deps: Deps, job: JobView) -> dict[str, JobAsset]:
    return {a.id: a for a in job_assets(job, deps.signer, deps.clock())}


def composite_out(
    request: Request, deps: Deps, composite: Composite, jobs: dict[str, JobView]
) -> dict[str, Any]:
    url = render.file_urls(request)
    known = cuts.takes(composite, jobs)
    numbers = {t.asset: t.number for t in known}
    links = {aid: a for job in jobs.values() for aid, a in _files(deps, job).items()}
    last = jobs.get(composite.exports[-1].job_id)
    shown = cuts.newest_video(composite, jobs)
    video = None
    if shown is not None:
        files = {a.name: a for a in job_assets(shown, deps.signer, deps.clock()) if a.step == "composite"}
        episode = next(a for a in shown.steps["composite"].outputs if a.name == "episode")
        video = {
            "job_id": shown.id,
            "url": url(files["episode"]),
            "poster_url": url(files["poster"]) if "poster" in files else None,
            "subtitles_url": url(files["subtitles"]) if "subtitles" in files else None,
            "frames": episode.meta.get("frames"),
            "duration_s": episode.meta.get("duration_s"),
        }
    return {
        "episode_id": composite.episode_id,
        "project_id": composite.project_id,
        "status": cuts.status(composite, last),
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
                "url": url(links[t.asset]) if t.asset in links else None,
            }
            for t in known
        ],
        "exports": [
            {"job_id": e.job_id, "status": jobs[e.job_id].status if e.job_id in jobs else "queued"}
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
    await project_of(deps, project_id)
    composite = await composite_of(deps, project_id, await episode_of(deps, project_id, episode_id))
    return composite_out(request, deps, composite, await jobs_of(deps, composite))


@router.patch(
    _PATH, summary="Edit the timeline: reorder, trim or extend, drop, swap a take", responses=_ANSWERS
)
async def edit_composite(
    project_id: str, episode_id: str, body: TimelineBody, request: Request, deps: DepsDep
) -> dict[str, Any]:
    await project_of(deps, project_id)
    composite = await composite_of(deps, project_id, await episode_of(deps, project_id, episode_id))
    jobs = await jobs_of(deps, composite)
    if cuts.status(composite, jobs.get(composite.exports[-1].job_id)) == "exporting":
        raise CompositeExporting()
    edits = [CutEdit(shot=c.shot, duration_s=c.duration_s, take=c.take) for c in body.timeline]
    shots = [e.shot for e in edits]
    if len(set(shots)) != len(shots):
        twice = sorted({s for s in shots if shots.count(s) > 1})
        raise InputInvalid(
            [{"loc": ["body", "timeline"], "msg": f"shots {twice} are on it twice", "type": "value_error"}],
            "A shot is on the timeline once.",
        )
    before = composite.version
    composite = cuts.edited(composite, edits, cuts.takes(composite, jobs), deps.clock())
    if not await deps.composites.put(deps.settings.tenant, composite, before):
        raise CompositeChanged()
    return composite_out(request, deps, composite, jobs)


@router.post(
    _PATH + "/export",
    status_code=202,
    summary="Export the timeline: a cut job that re-renders only what changed",
    responses={200: {"description": "Nothing changed since the last export."}, **_ANSWERS},
)
async def export_composite(
    project_id: str, episode_id: str, request: Request, response: Response, deps: DepsDep
) -> dict[str, Any]:
    project = await project_of(deps, project_id)
    episode = await episode_of(deps, project_id, episode_id)
    composite = await composite_of(deps, project_id, episode)
    jobs = await jobs_of(deps, composite)
    state = cuts.status(composite, jobs.get(composite.exports[-1].job_id))
    if state == "exporting":
        raise CompositeExporting()
    if state == "done":
        response.status_code = 200
        return composite_out(request, deps, composite, jobs)
    known = cuts.takes(composite, jobs)
    job_input = cuts.cut_input(composite, known, seed=len(composite.exports))
    # One job per version of the composite: exports racing on it submit the same job, and the
    # one whose write loses answers the composite the other wrote.
    once = f"composite:{episode.id}:{composite.version}"
    title = f"{project.name}: {episode.title} (cut)"
    job = await submitted(request, deps, "cut", title, job_input, once=once)
    before = composite.version
    composite = cuts.exported(composite, job.id, known, deps.clock())
    if not await deps.composites.put(deps.settings.tenant, composite, before):
        composite = await composite_of(deps, project_id, episode)
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
    project = await project_of(deps, project_id)
    episode = await episode_of(deps, project_id, episode_id)
    composite = await composite_of(deps, project_id, episode)
    jobs = await jobs_of(deps, composite)
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
