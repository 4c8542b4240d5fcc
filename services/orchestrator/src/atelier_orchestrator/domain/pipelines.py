"""Pipelines: the steps each job kind runs, and which step makes a job partially ready."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atelier_contracts.commands import TASK_CAPABILITIES
from atelier_contracts.events import StepSpec


@dataclass(frozen=True)
class Pipeline:
    kind: str
    steps: tuple[StepSpec, ...]
    partial_ready_after: str | None = None


STORY = Pipeline(
    kind="story",
    steps=(
        StepSpec(name="story", capability="text.generate", timeout_s=120),
        StepSpec(
            name="cover", capability="image.generate", needs=("story",), params={"size": 1024}, timeout_s=180
        ),
        StepSpec(name="narration", capability="tts", needs=("story",), timeout_s=180),
        StepSpec(
            name="thumbnail",
            capability="image.thumbnail",
            needs=("cover",),
            params={"max_side": 256, "format": "webp"},
        ),
        StepSpec(
            name="package",
            capability="bundle.zip",
            needs=("story", "cover", "thumbnail", "narration"),
        ),
    ),
    partial_ready_after="story",
)

PIPELINES: dict[str, Pipeline] = {p.kind: p for p in (STORY,)}


def task_pipeline(job_input: dict[str, Any]) -> Pipeline | None:
    """A generic task: one step on the capability the input names, with optional limits."""
    capability = job_input.get("capability")
    if capability not in TASK_CAPABILITIES:
        return None
    limits: dict[str, Any] = {
        name: job_input[name]
        for name in ("timeout_s", "max_attempts", "backoff_s", "backoff_max_s")
        if isinstance(job_input.get(name), int | float) and job_input[name] > 0
    }
    return Pipeline(kind="task", steps=(StepSpec(name="task", capability=capability, **limits),))


def pipeline_for(kind: str, job_input: dict[str, Any]) -> Pipeline | None:
    if kind == "task":
        return task_pipeline(job_input)
    return PIPELINES.get(kind)


DEFAULT_JOB_DEADLINE_S = 3600.0


def default_deadline_s(kind: str) -> float:
    """How long a job of this kind may take from submission (or requeue) to its end."""
    return DEFAULT_JOB_DEADLINE_S
