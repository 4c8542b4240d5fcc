"""``stills``: the shot images of several episodes drawn again, in one job (a project's batch).

Every shot is its prompt as the episode's render drew it (the style and the shot template already
laid around it), its size and its look; every image is a step of its own (``e01_image_003``: the
first episode's third shot), so one that fails is retried alone. A project's schedule fires it
(``PUT /v1/projects/{id}/schedule``), with the engine's overlap policies; the gateway writes its
input from the episodes marked for the batch (``docs/anime.md``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, JobKind, shared
from atelier_contracts.kinds.episode import MAX_SHOTS

MAX_EPISODES = 20


class StillShot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    shot: Annotated[int, msgspec.Meta(ge=1, le=MAX_SHOTS)]
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    size: Literal[256, 512, 1024] = 1024
    look: Annotated[str, msgspec.Meta(max_length=32)] = "plain"


class StillEpisode(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    episode: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    shots: Annotated[list[StillShot], msgspec.Meta(min_length=1, max_length=MAX_SHOTS)]


class StillsInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    episodes: Annotated[list[StillEpisode], msgspec.Meta(min_length=1, max_length=MAX_EPISODES)]


def still_step(n: int, shot: int) -> str:
    """Shot ``shot`` of the ``n``-th episode of the batch."""
    return f"e{n:02d}_image_{shot:03d}"


def plan(batch: StillsInput) -> tuple[StepSpec, ...]:
    common = shared(batch)
    return tuple(
        StepSpec(
            name=still_step(n, s.shot),
            capability="image.generate",
            params={
                "prompt": s.prompt,
                "size": s.size,
                "look": s.look,
                **common,
                "seed": batch.seed + 1000 * n + s.shot,
            },
            timeout_s=180,
        )
        for n, episode in enumerate(batch.episodes, start=1)
        for s in episode.shots
    )


KIND = JobKind(
    name="stills",
    description="The shot images of several episodes drawn again in one job (a project's scheduled batch).",
    input_type=StillsInput,
    plan=plan,
    deadline_s=7200.0,
    example={
        "episodes": [
            {"episode": "epi_1", "shots": [{"shot": 1, "prompt": "anime, a lighthouse", "look": "cel"}]}
        ]
    },
)
