"""``cut``: an episode's edited timeline exported again, re-rendering only what changed.

Every shot names the files an earlier job made (asset ids, resolved by the gateway into
``attached`` as uploads are): its still, the take (a clip) to use if one still fits, its speech.
A shot with a take is laid on the timeline as it is, cut to its duration; a shot without one
(extended past its takes, or never filmed) is filmed anew from its still — the only provider
calls a cut makes. Then the composite, in the timeline's order. The anime studio's composite
(``POST …/episodes/{id}/composite/export``) writes these inputs; ``docs/anime.md``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import (
    AssetId,
    BaseInput,
    InvalidInput,
    Issue,
    JobKind,
    attached_upload,
    shared,
)
from atelier_contracts.kinds.episode import MAX_SHOTS, clip_step, voice_step
from atelier_contracts.kinds.timeline import Fps, Move, composite_step, film


class CutShot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    shot: Annotated[int, msgspec.Meta(ge=1, le=MAX_SHOTS)]
    """The shot's number in the episode (its steps are named by it, wherever it is placed)."""
    still: AssetId
    """The shot's image: what a new take is filmed from."""
    take: AssetId | None = None
    """A clip to use (cut to ``duration_s``); None: film the still anew."""
    voice: AssetId | None = None
    """The shot's speech."""
    duration_s: Annotated[float, msgspec.Meta(ge=0.5, le=30)]
    move: Move = "zoom_in"
    line: Annotated[str, msgspec.Meta(max_length=500)] = ""
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class CutInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    """A note on the cut (what changed)."""
    episode: Annotated[str, msgspec.Meta(max_length=64)] = ""
    """The episode this is a cut of (a label)."""
    shots: Annotated[list[CutShot], msgspec.Meta(min_length=1, max_length=MAX_SHOTS)]
    """The timeline, in order."""
    fps: Fps = 24
    width: Annotated[int, msgspec.Meta(ge=64, le=1920, multiple_of=2)] = 640
    height: Annotated[int, msgspec.Meta(ge=64, le=1080, multiple_of=2)] = 360
    burn_subtitles: bool = False


def still_step(i: int) -> str:
    return f"still_{i:03d}"


def take_step(i: int) -> str:
    return f"take_{i:03d}"


def check(cut: CutInput) -> None:
    seen: set[int] = set()
    for n, shot in enumerate(cut.shots):
        if shot.shot in seen:
            message = f"shot {shot.shot} is on the timeline twice"
            raise InvalidInput(
                "validation_failed", [Issue(loc=("shots", n, "shot"), msg=message, type="value_error")]
            )
        seen.add(shot.shot)


def files(cut: CutInput) -> tuple[str, ...]:
    named = [f for s in cut.shots for f in (s.still if s.take is None else s.take, s.voice) if f]
    return tuple(dict.fromkeys(named))


def plan(cut: CutInput) -> tuple[StepSpec, ...]:
    common = shared(cut)
    steps: list[StepSpec] = []
    timeline: list[dict[str, object]] = []
    for shot in cut.shots:
        i = shot.shot
        if shot.take is not None:
            clip = take_step(i)
            steps.append(
                StepSpec(name=clip, capability="upload", given=(attached_upload(cut, shot.take, "take"),))
            )
        else:
            clip = clip_step(i)
            still = attached_upload(cut, shot.still, "still")
            steps.append(StepSpec(name=still_step(i), capability="upload", given=(still,)))
            film_params = film(
                shot.prompt,
                shot.duration_s,
                shot.move,
                fps=cut.fps,
                width=cut.width,
                height=cut.height,
                common=common,
                seed=cut.seed + i,
            )
            steps.append(
                StepSpec(
                    name=clip,
                    capability="video.from_image",
                    needs=(still_step(i),),
                    params=film_params,
                    timeout_s=600,
                )
            )
        entry: dict[str, object] = {"clip": clip, "duration_s": shot.duration_s, "text": shot.line}
        if shot.voice is not None:
            voice = attached_upload(cut, shot.voice, "voice")
            steps.append(StepSpec(name=voice_step(i), capability="upload", given=(voice,)))
            entry["audio"] = voice_step(i)
        timeline.append(entry)
    made = tuple(s.name for s in steps)
    steps.append(
        composite_step(
            timeline, made, fps=cut.fps, width=cut.width, height=cut.height, burn_subtitles=cut.burn_subtitles
        )
    )
    return tuple(steps)


KIND = JobKind(
    name="cut",
    description="An episode's edited timeline exported again: takes that still fit are reused, the "
    "rest filmed anew from their stills, and the whole composited (the anime studio's composite).",
    input_type=CutInput,
    plan=plan,
    check=check,
    uploads=files,
    deadline_s=3600.0,
    example={
        "shots": [
            {"shot": 2, "still": "ast_0123456789abcdef01234567", "duration_s": 3.0, "move": "pan_left"},
            {
                "shot": 1,
                "still": "ast_89abcdef0123456789abcdef",
                "take": "ast_fedcba987654321001234567",
                "duration_s": 2.0,
            },
        ]
    },
)
