"""``task``: one step on the capability the input names, with optional limits."""

from __future__ import annotations

from typing import Annotated

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, InvalidInput, Issue, JobKind, shared

CAPABILITIES: tuple[str, ...] = ("text.generate", "image.generate", "tts", "video.from_text")
"""What a task may name as ``input.capability``."""


class TaskInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    capability: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """One of ``text.generate``, ``image.generate``, ``tts``, ``video.from_text``."""
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)] | None = None
    """For ``tts``: what to speak (default: the prompt)."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None
    """The step's deadline per attempt (default 300 s)."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] | None = None
    """Attempts before the step fails (default 3)."""
    backoff_s: Annotated[float, msgspec.Meta(gt=0, le=600)] | None = None
    """The first retry's delay, doubling each attempt (default 1 s)."""
    backoff_max_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None
    """The longest retry delay (default 60 s)."""


def check(task: TaskInput) -> None:
    if task.capability not in CAPABILITIES:
        message = f"unknown capability {task.capability!r}; a task runs one of: {', '.join(CAPABILITIES)}"
        raise InvalidInput("unknown_capability", [Issue(loc=("capability",), msg=message, type="enum")])


def plan(task: TaskInput) -> tuple[StepSpec, ...]:
    limits = {
        name: value
        for name in ("timeout_s", "max_attempts", "backoff_s", "backoff_max_s")
        if (value := getattr(task, name)) is not None
    }
    params = {"prompt": task.prompt, **({"text": task.text} if task.text else {}), **shared(task)}
    return (StepSpec(name="task", capability=task.capability, params=params, **limits),)


KIND = JobKind(
    name="task",
    description="One step on the capability the input names (text.generate, image.generate, tts or "
    "video.from_text).",
    input_type=TaskInput,
    plan=plan,
    check=check,
    example={"prompt": "autumn rain", "capability": "text.generate"},
)
