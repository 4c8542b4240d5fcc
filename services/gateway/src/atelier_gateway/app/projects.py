"""The anime studio's projects and episodes: a project holds a style, a review mode and a budget;
an episode holds a script; rendering an episode submits an ``episode`` job with the project's
style and review, counted toward the project (its usage and its budget, by the router)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

Review = Literal["none", "manual", "auto", "both"]


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    style: str
    review: Review
    shot_template: str
    budget_usd: float | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Episode:
    id: str
    project_id: str
    title: str
    script: str
    job_id: str | None
    created_at: datetime
    updated_at: datetime


class Projects(Protocol):
    async def put_project(self, tenant: str, project: Project) -> None: ...

    async def project(self, tenant: str, project_id: str) -> Project | None: ...

    async def projects(self, tenant: str) -> list[Project]: ...

    async def delete_project(self, tenant: str, project_id: str) -> bool:
        """The project and its episodes."""
        ...

    async def put_episode(self, tenant: str, episode: Episode) -> None: ...

    async def episode(self, tenant: str, project_id: str, episode_id: str) -> Episode | None: ...

    async def episodes(self, tenant: str, project_id: str) -> list[Episode]: ...

    async def delete_episode(self, tenant: str, project_id: str, episode_id: str) -> bool: ...


def changed(project: Project, now: datetime, **fields: object) -> Project:
    given = {k: v for k, v in fields.items() if v is not None}
    return dataclasses.replace(project, **given, updated_at=now)  # type: ignore[arg-type]


def episode_input(project: Project, episode: Episode) -> dict[str, object]:
    """What rendering the episode submits: its script in the project's style and review mode,
    counted toward the project."""
    return {
        "script": episode.script,
        "style": project.style,
        "review": project.review,
        "shot_template": project.shot_template,
        "project": project.id,
    }


IMPROVE_ASK = (
    "Rewrite this idea as a short film script of {shots} sentences, one beat each, concrete and "
    "visual (who, where, what happens), with a line of dialogue in quotes where someone speaks. "
    "Style: {style}. Idea: {idea}"
)


def improve_input(project: Project, idea: str, shots: int) -> dict[str, object]:
    """ "Improve my prompt": a text job that expands a short idea into a script the shot list
    reads well (one visual beat per sentence), in the project's style, counted toward it."""
    ask = IMPROVE_ASK.format(shots=shots, style=project.style, idea=idea.strip())
    return {"prompt": ask, "capability": "text.generate", "project": project.id}
