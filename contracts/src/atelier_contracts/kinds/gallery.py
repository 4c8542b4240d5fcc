"""``gallery``: a theme becomes a list of picture ideas, then one picture per idea, then a ZIP.

How many pictures there are comes from the ideas step's result, not from the plan: the job fans
out when that step succeeds (``StepsPlanned``), and the package then needs every picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, JobKind, Plan, PlanInvalid, shared

MAX_IDEA_CHARS = 500


class GalleryInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=500)] = 6
    """How many pictures to ask for (the deployment's max fan-out bounds what runs)."""
    size: Literal[256, 512, 1024] = 512


def picture(i: int) -> str:
    return f"picture_{i:03d}"


def plan(gallery: GalleryInput) -> tuple[StepSpec, ...]:
    common = shared(gallery)
    return (
        StepSpec(
            name="ideas",
            capability="text.generate",
            params={"prompt": gallery.prompt, "format": "list", "count": gallery.count, **common},
            planner="pictures",
            timeout_s=120,
        ),
        # Needs the pictures too, once the ideas have planned them.
        StepSpec(
            name="package",
            capability="bundle.zip",
            needs=("ideas",),
            params={"request": {"prompt": gallery.prompt}},
        ),
    )


def pictures(gallery: GalleryInput, data: Mapping[str, Any]) -> Plan:
    items = data.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise PlanInvalid("the ideas step did not answer a non-empty list of texts")
    common = shared(gallery)
    steps = tuple(
        StepSpec(
            name=picture(i),
            capability="image.generate",
            needs=("ideas",),
            params={
                "prompt": idea.strip()[:MAX_IDEA_CHARS],
                "size": gallery.size,
                **common,
                "seed": gallery.seed + i,
            },
            timeout_s=180,
        )
        for i, idea in enumerate(items, start=1)
    )
    return Plan(steps=steps, needs={"package": tuple(s.name for s in steps)}, width=len(items))


KIND = JobKind(
    name="gallery",
    description="A theme becomes a list of picture ideas, one picture per idea, and a ZIP of them.",
    input_type=GalleryInput,
    plan=plan,
    planners={"pictures": pictures},
)
