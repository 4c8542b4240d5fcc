"""Job kinds as data, in one registry that the gateway and the orchestrator both read.

Adding a kind is a module here (its input Struct, its ``plan``, a ``KIND``) and one line below;
``docs/workflows.md`` walks through it.
"""

from __future__ import annotations

from typing import Any

from atelier_contracts.kinds import (
    clip,
    cut,
    episode,
    export,
    gallery,
    package,
    reel,
    stills,
    story,
    studio,
    task,
)
from atelier_contracts.kinds.base import BaseInput, InvalidInput, Issue, JobKind, Plan, PlanInvalid

KINDS: dict[str, JobKind[Any]] = {
    k.name: k
    for k in (
        story.KIND,
        task.KIND,
        gallery.KIND,
        export.KIND,
        clip.KIND,
        reel.KIND,
        studio.KIND,
        episode.KIND,
        cut.KIND,
        package.KIND,
        stills.KIND,
    )
}

__all__ = ["KINDS", "BaseInput", "InvalidInput", "Issue", "JobKind", "Plan", "PlanInvalid"]
