"""``episode``: a script becomes a shot list, every shot an image, a clip of it and its spoken line,
and the shots one composited MP4 with subtitles, then the episode's package.

The shot list is a ``text.generate`` step that answers structured shots (``format: shots``):
how many there are comes from the script, not from the plan. When it succeeds the job fans out
(the ``shots`` planner): per shot an image in the episode's style (``image.generate``), a clip of
it with the shot's camera move (``video.from_image``) and its line spoken (``tts``); then the
composite lays them on one timeline, each line also a subtitle cue; the package holds it all.
With review (``manual``, ``auto`` or ``both``) every shot's image has a gate of its own
(``review_001`` …): its clip waits for its verdict, a rejected image is drawn again with the
feedback and comes back to its gate, and only approved shots are filmed; with ``review_clips``
every clip has one too (``clip_review_001`` …), and the composite waits for them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from atelier_contracts.common import ReviewSpec, TimeoutPolicy
from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, InvalidInput, Issue, JobKind, Plan, PlanInvalid, shared
from atelier_contracts.kinds.timeline import Fps, Move, composite_step, film
from atelier_contracts.styles import STYLES, Style, style_prompt

MAX_SHOTS = 48
IMAGE_CHECKS: dict[str, Any] = {"min_side": 256, "brightness": [0.04, 0.96]}
"""What the automatic reviewer checks of a shot image."""
CLIP_CHECKS: dict[str, Any] = {"min_side": 64, "brightness": [0.02, 0.98]}
"""… and of a clip (its first frame)."""


class Shot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One shot of a shot list, as a model answers it."""

    description: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    duration_s: Annotated[float, msgspec.Meta(ge=0.5, le=30)]
    line: Annotated[str, msgspec.Meta(max_length=500)] = ""
    """Dialogue or narration, spoken over the shot and its subtitle."""
    move: Move = "zoom_in"


class ShotList(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    shots: Annotated[list[Shot], msgspec.Meta(min_length=1, max_length=MAX_SHOTS)]


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_shots(text: str) -> list[Shot]:
    """A model's answer as a shot list: JSON ``{"shots": [...]}`` (or the bare list), fences and
    prose around it tolerated; anything else is ``PlanInvalid`` saying what was wrong."""
    body = _FENCE.sub("", text.strip())
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise PlanInvalid("the model did not answer a shot list (no JSON in its answer)")
    try:
        raw, _ = json.JSONDecoder().raw_decode(body[start:])
    except ValueError as exc:
        raise PlanInvalid(f"the model's shot list is not JSON: {exc}") from None
    if isinstance(raw, list):
        raw = {"shots": raw}
    try:
        return msgspec.convert(raw, ShotList, strict=False).shots
    except msgspec.ValidationError as exc:
        raise PlanInvalid(f"the model's answer is not a shot list: {exc}") from None


class EpisodeInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    """A note on the episode (the script is what is filmed)."""
    script: Annotated[str, msgspec.Meta(min_length=1, max_length=20000)]
    style: Annotated[str, msgspec.Meta(min_length=1, max_length=48)] = "anime"
    """A style preset (``GET /v1/styles``): it shapes the shots' prompts and the offline look."""
    look: Style | None = None
    """The style as it stood at submission (the gateway fills it from the presets, so a plan made
    again after a crash is the same plan); a client may give its own instead of a preset's name."""
    shot_template: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] = "{description}"
    """How every shot's description becomes its picture's prompt (a project's: "{description}, in
    Harbourside, late autumn"); the style is laid around it."""
    review: Literal["none", "manual", "auto", "both"] = "none"
    review_clips: bool = False
    """Review every clip as well as every shot image (with ``review`` other than ``none``)."""
    review_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] = 86400.0
    on_review_timeout: TimeoutPolicy = "fail"
    fps: Fps = 24
    width: Annotated[int, msgspec.Meta(ge=64, le=1920, multiple_of=2)] = 640
    height: Annotated[int, msgspec.Meta(ge=64, le=1080, multiple_of=2)] = 360
    burn_subtitles: bool = False


def image_step(i: int) -> str:
    return f"image_{i:03d}"


def clip_step(i: int) -> str:
    return f"clip_{i:03d}"


def voice_step(i: int) -> str:
    return f"voice_{i:03d}"


def review_step(i: int) -> str:
    """The gate on shot ``i``'s image."""
    return f"review_{i:03d}"


def clip_review_step(i: int) -> str:
    """The gate on shot ``i``'s clip (``review_clips``)."""
    return f"clip_review_{i:03d}"


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The input with its style preset's look filled in (at the door, from the presets file)."""
    preset = STYLES.current().get(str(raw.get("style", "anime")))
    if raw.get("look") is None and preset is not None:
        return {**raw, "look": msgspec.to_builtins(preset)}
    return dict(raw)


def check(episode: EpisodeInput) -> None:
    if (
        episode.shot_template.replace("{description}", "").count("{")
        or "{description}" not in episode.shot_template
    ):
        message = "a shot template names {description} and no other placeholder"
        raise InvalidInput(
            "validation_failed", [Issue(loc=("shot_template",), msg=message, type="value_error")]
        )
    if episode.look is None and episode.style not in STYLES.current():
        known = ", ".join(sorted(STYLES.current()))
        message = f"no style {episode.style!r}; styles: {known}"
        raise InvalidInput("validation_failed", [Issue(loc=("style",), msg=message, type="enum")])


def plan(episode: EpisodeInput) -> tuple[StepSpec, ...]:
    common = shared(episode)
    shotlist = StepSpec(
        name="shotlist",
        capability="text.generate",
        params={"prompt": episode.script, "format": "shots", **common},
        planner="shots",
        timeout_s=180,
    )
    package = StepSpec(
        name="package",
        capability="bundle.zip",
        needs=("shotlist",),
        params={"request": {"script": episode.script[:2000], "style": episode.style}},
    )
    return (shotlist, package)


def _gate(episode: EpisodeInput, name: str, reviewed: str, checks: dict[str, Any]) -> StepSpec:
    """A review gate on one step of one shot: a rejection sends that step (and what needs it)
    back with the feedback; the other shots go on."""
    spec = ReviewSpec(
        mode=episode.review,  # type: ignore[arg-type]  # not "none": no gate is made then
        timeout_s=episode.review_timeout_s,
        on_timeout=episode.on_review_timeout,
        checks=checks,
    )
    capability = "review" if episode.review == "manual" else "review.auto"
    return StepSpec(name=name, capability=capability, needs=(reviewed,), review=spec, timeout_s=120)


def shots(episode: EpisodeInput, data: Mapping[str, Any]) -> Plan:
    """Per shot an image, a clip of it (after the review, if any) and its line; the composite."""
    try:
        listed = msgspec.convert(data, ShotList, strict=False).shots
    except msgspec.ValidationError as exc:
        raise PlanInvalid(f"the shot list step did not answer a shot list: {exc}") from None
    common = shared(episode)
    style = episode.look
    steps: list[StepSpec] = []
    timeline: list[dict[str, object]] = []
    reviewed = episode.review != "none"
    for i, shot in enumerate(listed, start=1):
        described = episode.shot_template.replace("{description}", shot.description)
        prompt = style_prompt(style, described) if style else described
        size = 512 if max(episode.width, episode.height) <= 512 else 1024
        image = {
            "prompt": prompt[:4000],
            "size": size,
            "look": style.look if style else "plain",
            **common,
            "seed": episode.seed + i,
        }
        steps.append(
            StepSpec(
                name=image_step(i),
                capability="image.generate",
                needs=("shotlist",),
                params=image,
                timeout_s=180,
            )
        )
        gate: tuple[str, ...] = ()
        if reviewed:
            steps.append(_gate(episode, review_step(i), image_step(i), IMAGE_CHECKS))
            gate = (review_step(i),)
        clip = film(
            prompt,
            shot.duration_s,
            shot.move,
            fps=episode.fps,
            width=episode.width,
            height=episode.height,
            common=common,
            seed=episode.seed + i,
        )
        steps.append(
            StepSpec(
                name=clip_step(i),
                capability="video.from_image",
                needs=(image_step(i), *gate),
                params=clip,
                timeout_s=600,
            )
        )
        if reviewed and episode.review_clips:
            steps.append(_gate(episode, clip_review_step(i), clip_step(i), CLIP_CHECKS))
        entry: dict[str, object] = {"clip": clip_step(i), "duration_s": shot.duration_s, "text": shot.line}
        if shot.line:
            steps.append(
                StepSpec(
                    name=voice_step(i),
                    capability="tts",
                    needs=("shotlist",),
                    params={"text": shot.line, **common},
                    timeout_s=180,
                )
            )
            entry["audio"] = voice_step(i)
        timeline.append(entry)
    made = tuple(s.name for s in steps)
    steps.append(
        composite_step(
            timeline,
            made,
            fps=episode.fps,
            width=episode.width,
            height=episode.height,
            burn_subtitles=episode.burn_subtitles,
        )
    )
    return Plan(steps=tuple(steps), needs={"package": (*made, "composite")}, width=len(listed))


KIND = JobKind(
    name="episode",
    description="A script becomes a shot list, each shot an image, a clip and its spoken line, and one "
    "composited MP4 with subtitles, packaged (optionally with review of the shot images).",
    input_type=EpisodeInput,
    plan=plan,
    check=check,
    resolve=resolve,
    planners={"shots": shots},
    deadline_s=7200.0,
    example={
        "script": 'A lighthouse keeper climbs the stairs at dusk. "Another storm," she says. '
        "Far out, a small boat turns toward the light.",
        "style": "anime",
    },
)
