"""``gallery``: a theme becomes a list of picture ideas, then one picture per idea, then a ZIP.

How many pictures there are comes from the ideas step's result, not from the plan: the job fans
out when that step succeeds (``StepsPlanned``), and the package then needs every picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from atelier_contracts.common import ReviewSpec, TimeoutPolicy
from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, JobKind, Plan, PlanInvalid, shared

MAX_IDEA_CHARS = 500


class GalleryInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=200)] = 6
    """How many pictures to ask for (at most the default max fan-out: refused at the door, not
    after the ideas were paid for)."""
    size: Literal[256, 512, 1024] = 512
    review: Literal["none", "manual", "auto", "both"] = "none"
    """Review the pictures before they are packaged: by a person, automatically, or both."""
    review_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] = 86400.0
    on_review_timeout: TimeoutPolicy = "fail"


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
        *_review(gallery),
        # Needs the pictures too (and their review), once the ideas have planned them.
        StepSpec(
            name="package",
            capability="bundle.zip",
            needs=("ideas",) if gallery.review == "none" else ("ideas", "review"),
            params={"request": {"prompt": gallery.prompt}},
        ),
    )


def _review(gallery: GalleryInput) -> tuple[StepSpec, ...]:
    if gallery.review == "none":
        return ()
    spec = ReviewSpec(
        mode=gallery.review,
        keeps=("ideas",),  # a rejection draws the pictures again, from the same ideas
        timeout_s=gallery.review_timeout_s,
        on_timeout=gallery.on_review_timeout,
        checks={"min_side": gallery.size, "brightness": [0.04, 0.96]},
    )
    capability = "review" if gallery.review == "manual" else "review.auto"
    return (StepSpec(name="review", capability=capability, needs=("ideas",), review=spec, timeout_s=120),)


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
    names = tuple(s.name for s in steps)
    needs = {"package": names, **({"review": names} if gallery.review != "none" else {})}
    return Plan(steps=steps, needs=needs, width=len(items))


KIND = JobKind(
    name="gallery",
    description="A theme becomes a list of picture ideas, one picture per idea, and a ZIP of them.",
    input_type=GalleryInput,
    plan=plan,
    planners={"pictures": pictures},
    example={"prompt": "foxes in the snow", "count": 4, "review": "manual"},
)
