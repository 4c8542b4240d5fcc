"""What the anime studio's routes share: a project, an episode and its composite looked up (or
made) for a request, and the jobs behind a composite."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import msgspec

from atelier_contracts.blobstore import BlobNotFound
from atelier_contracts.snapshot import JobStatus, JobView
from atelier_gateway.app import composites as cuts
from atelier_gateway.app.composites import Composite
from atelier_gateway.app.errors import CompositeChanged, EpisodeNotFound, EpisodeNotRendered, ProjectNotFound
from atelier_gateway.app.projects import Episode, Project
from atelier_gateway.app.read_job import read_job
from atelier_gateway.bootstrap import Deps


async def project_of(deps: Deps, project_id: str) -> Project:
    found = await deps.projects.project(deps.settings.tenant, project_id)
    if found is None:
        raise ProjectNotFound(f"No project {project_id!r}.")
    return found


async def episode_of(deps: Deps, project_id: str, episode_id: str) -> Episode:
    found = await deps.projects.episode(deps.settings.tenant, project_id, episode_id)
    if found is None:
        raise EpisodeNotFound(f"Project {project_id!r} has no episode {episode_id!r}.")
    return found


async def job_view(deps: Deps, job_id: str) -> JobView | None:
    """The job now (read your writes), or None."""
    tenant, wait = deps.settings.tenant, deps.settings.read_wait_s
    return await read_job(tenant, job_id, reader=deps.reader, joblog=deps.joblog, wait_s=wait)


async def _shot_list(deps: Deps, render_job: JobView) -> dict[str, Any]:
    """The render's shot list, from the file its ``shotlist`` step made (read off the loop)."""
    step = render_job.steps.get("shotlist")
    made = next((a for a in step.outputs if a.name == "shots"), None) if step else None
    if made is None:
        raise EpisodeNotRendered("The episode's render has no shot list.")
    try:
        data = await asyncio.to_thread(deps.blobs.path_of(made.blob.key).read_bytes)
        return dict(msgspec.json.decode(data))
    except (BlobNotFound, OSError) as exc:
        raise EpisodeNotRendered("The episode's shot list is gone from the blob store.") from exc


async def composite_of(deps: Deps, project_id: str, episode: Episode) -> Composite:
    """The episode's composite; made from its render the first time, and again when the episode
    has been rendered anew since (the older one stays while the new render runs)."""
    tenant = deps.settings.tenant
    stored = await deps.composites.get(tenant, episode.id)
    if episode.job_id is None:
        raise EpisodeNotRendered(f"Episode {episode.id!r} has not been rendered (POST …/render).")
    if stored is not None and stored.render_job == episode.job_id:
        return stored
    made = await job_view(deps, episode.job_id)
    if made is None or made.status != JobStatus.SUCCEEDED:
        if stored is not None:
            return stored
        raise EpisodeNotRendered(f"Episode {episode.id!r}'s render has not succeeded (yet).")
    fresh = cuts.from_render(episode.id, project_id, made, await _shot_list(deps, made), deps.clock())
    if stored is not None:
        fresh = replace(fresh, version=stored.version + 1, created_at=stored.created_at)
    if await deps.composites.put(tenant, fresh, stored.version if stored else None):
        return fresh
    again = await deps.composites.get(tenant, episode.id)  # a concurrent read made it first
    if again is None:
        raise CompositeChanged()
    return again


async def jobs_of(deps: Deps, composite: Composite) -> dict[str, JobView]:
    """The jobs of the composite's exports (the render first), by id."""
    found = {}
    for export in composite.exports:
        job = await job_view(deps, export.job_id)
        if job is not None:
            found[job.id] = job
    return found
