"""The anime studio's projects and episodes: a project holds a style, a review mode and a budget;
an episode holds a script; rendering an episode submits an ``episode`` job with the project's
style and review, counted toward the project (its usage and its budget, by the router)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from atelier_contracts.commands import ReviewStep
from atelier_contracts.kinds.episode import clip_review_step, clip_step, image_step, review_step
from atelier_contracts.snapshot import JobView, StepStatus
from atelier_gateway.app.errors import IllegalTransition, ShotNotFound, once_each

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
    schedule_id: str | None = None
    """The engine's schedule of the project's batch (``PUT …/schedule``)."""


@dataclass(frozen=True)
class Episode:
    id: str
    project_id: str
    title: str
    script: str
    job_id: str | None
    created_at: datetime
    updated_at: datetime
    package_kinds: tuple[str, ...] | None = None
    """What ``POST …/package`` packs (``PACKAGE_KINDS``); None: everything."""
    marked: bool = False
    """In the project's scheduled batch."""


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


def shot_count(job: JobView) -> int:
    """How many shots the episode's shot list planned (0 before it has)."""
    return sum(1 for name in job.steps if name.startswith("image_"))


def shot_states(job: JobView) -> list[dict[str, Any]]:
    """Every shot of an episode's render as a reviewer sees it: its image's and clip's state, the
    gates' (``waiting`` for a person, ``approved``, ``rejected`` until drawn again, ``pending``)
    and every verdict on them (reviewer, round, verdict, feedback)."""
    out = []
    for i in range(1, shot_count(job) + 1):
        image, clip = job.steps[image_step(i)], job.steps.get(clip_step(i))
        shot: dict[str, Any] = {
            "shot": i,
            "image": image.status,
            "image_attempts": image.attempts,
            "clip": clip.status if clip else None,
            "feedback": image.feedback,
        }
        for field, gate_name in (("review", review_step(i)), ("clip_review", clip_review_step(i))):
            gate = job.steps.get(gate_name)
            if gate is not None:
                shot[field] = _gate_state(job, gate_name, gate.status)
        shot["reviews"] = [
            {"of": "clip" if r.step.startswith("clip_") else "image", "round": r.round, "verdict": r.verdict,
             "feedback": r.feedback, "reviewer": r.reviewer, "auto": r.auto, "at": r.at.isoformat()}
            for r in job.reviews
            if r.step in (review_step(i), clip_review_step(i))
        ]  # fmt: skip
        out.append(shot)
    return out


@dataclass(frozen=True)
class ShotVerdict:
    shot: int
    verdict: Literal["approve", "reject"]
    feedback: str = ""
    of: Literal["image", "clip"] = "image"


def review_commands(job: JobView, verdicts: Sequence[ShotVerdict], reviewer: str) -> list[ReviewStep]:
    """The verdicts as commands to their shots' gates, every one checked before any is sent: a
    gate given twice, a gate the render has not, or one that waits for no verdict is refused."""
    gates = [review_step(v.shot) if v.of == "image" else clip_review_step(v.shot) for v in verdicts]
    once_each(gates, ("body", "verdicts"), "One verdict per shot (and per clip) in a request.")
    missing = [v.shot for v, gate in zip(verdicts, gates, strict=True) if gate not in job.steps]
    if missing:
        raise ShotNotFound(
            f"The render has no such review for shots {missing}: it has {shot_count(job)} shots, and "
            "a clip's review only with review_clips."
        )
    idle = [
        v.shot
        for v, g in zip(verdicts, gates, strict=True)
        if job.steps[g].status != StepStatus.AWAITING_REVIEW
    ]
    if idle:
        raise IllegalTransition(f"Shots {idle} are not waiting for a review.")
    return [
        ReviewStep(step=gate, verdict=v.verdict, feedback=v.feedback, reviewer=reviewer)
        for v, gate in zip(verdicts, gates, strict=True)
    ]


def _gate_state(job: JobView, name: str, status: str) -> str:
    if status == StepStatus.AWAITING_REVIEW:
        return "waiting"
    if status == StepStatus.SUCCEEDED:
        return "approved"
    last = next((r for r in reversed(job.reviews) if r.step == name), None)
    return "rejected" if last is not None and last.verdict == "reject" else "pending"
