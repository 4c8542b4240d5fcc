"""``reel``: shots made from prompts, each with its spoken line, composited into one MP4.

Every shot is a clip (``video.from_text``: an image, then the camera over it) and, when it has a
line, the line spoken (``tts``); the composite lays them on one timeline, the line also as a
subtitle cue. The shots run in parallel; the composite waits for all of them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, JobKind, shared
from atelier_contracts.kinds.timeline import Fps, Move, composite_step, film


class ReelShot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    line: Annotated[str, msgspec.Meta(max_length=500)] = ""
    """Spoken over the shot, and its subtitle."""
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 3.0
    move: Move = "zoom_in"


class ReelInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    """What the reel is about (a note; each shot has its own prompt)."""
    shots: Annotated[list[ReelShot], msgspec.Meta(min_length=1, max_length=48)]
    fps: Fps = 24
    width: Annotated[int, msgspec.Meta(ge=64, le=1920, multiple_of=2)] = 640
    height: Annotated[int, msgspec.Meta(ge=64, le=1080, multiple_of=2)] = 360
    burn_subtitles: bool = False


def shot_step(i: int) -> str:
    return f"shot_{i + 1:03d}"


def voice_step(i: int) -> str:
    return f"voice_{i + 1:03d}"


def plan(reel: ReelInput) -> tuple[StepSpec, ...]:
    common = shared(reel)
    steps: list[StepSpec] = []
    timeline: list[dict[str, object]] = []
    for i, shot in enumerate(reel.shots):
        # shots that differ, also for the same prompt
        clip = film(
            shot.prompt,
            shot.duration_s,
            shot.move,
            fps=reel.fps,
            width=reel.width,
            height=reel.height,
            common=common,
            seed=common.get("seed", 0) + i,
        )
        steps.append(StepSpec(name=shot_step(i), capability="video.from_text", params=clip, timeout_s=600))
        entry: dict[str, object] = {"clip": shot_step(i), "duration_s": shot.duration_s, "text": shot.line}
        if shot.line:
            steps.append(
                StepSpec(
                    name=voice_step(i), capability="tts", params={"text": shot.line, **common}, timeout_s=180
                )
            )
            entry["audio"] = voice_step(i)
        timeline.append(entry)
    needs = tuple(s.name for s in steps)
    composite = composite_step(
        timeline,
        needs,
        fps=reel.fps,
        width=reel.width,
        height=reel.height,
        burn_subtitles=reel.burn_subtitles,
    )
    return (*steps, composite)


KIND = JobKind(
    name="reel",
    description="Shots from prompts, each with its spoken line, composited into one MP4 with subtitles.",
    input_type=ReelInput,
    plan=plan,
    deadline_s=3600.0,
    example={
        "shots": [
            {"prompt": "a lighthouse at dusk", "line": "The lamp was lit at six.", "duration_s": 3},
            {
                "prompt": "a cat on the stairs",
                "line": "The cat climbed up.",
                "duration_s": 2.5,
                "move": "pan_up",
            },
        ]
    },
)
