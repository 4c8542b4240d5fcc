"""Pipelines: the steps each job kind runs, and which step makes a job partially ready."""

from __future__ import annotations

from dataclasses import dataclass

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

DEFAULT_JOB_DEADLINE_S = 3600.0


def default_deadline_s(kind: str) -> float:
    """How long a job of this kind may take from submission (or requeue) to its end."""
    return DEFAULT_JOB_DEADLINE_S
