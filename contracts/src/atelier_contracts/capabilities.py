"""What each capability's worker takes as a step's parameters, as msgspec Structs.

A kind's plan binds each step's parameters from the job's input, and a planner from a step's
result (a model's answer): both are checked against the capability's schema before a worker
sees them — at the door for the steps an input makes (``JobKind.steps``), in the orchestrator
for the steps a result plans (a plan that does not fit is ``plan_invalid``). Fields a schema does
not name pass through (the orchestrator adds its own, e.g. a provider to stick to).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.faults import Simulate
from atelier_contracts.kinds.base import InvalidInput, Issue, Project, Seed, issue_of
from atelier_contracts.kinds.timeline import Fps, Move
from atelier_contracts.presets import PresetName
from atelier_contracts.sessions import SessionInput
from atelier_contracts.studio import Recipe
from atelier_contracts.studio_catalog import Platform

StepPrompt = Annotated[str, msgspec.Meta(max_length=4000)]


class StepParams(msgspec.Struct, frozen=True, kw_only=True):
    """What every step may take (``kinds.base.shared``)."""

    seed: Seed = 0
    project: Project | None = None
    simulate: Simulate | None = None
    session: SessionInput | None = None
    feedback: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    """Set by a review gate's rejection: what to do differently."""


class TextParams(StepParams, frozen=True, kw_only=True):
    prompt: StepPrompt = ""
    age: Annotated[int, msgspec.Meta(ge=1, le=18)] | None = None
    format: Literal["prose", "list", "shots"] = "prose"
    """``shots``: a shot list of the prompt (a script), as ``kinds.episode.ShotList``."""
    count: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    """With ``format: list``: how many items to ask for."""


class ImageParams(StepParams, frozen=True, kw_only=True):
    prompt: StepPrompt = ""
    """Empty: drawn from the text the step needs."""
    size: Literal[256, 512, 1024] = 512
    look: Literal["cel", "soft", "sketch", "ink", "plain"] = "plain"
    """How the offline painter finishes the picture (an episode's style)."""


class SpeechParams(StepParams, frozen=True, kw_only=True):
    prompt: StepPrompt = ""
    text: StepPrompt | None = None


class ThumbnailParams(msgspec.Struct, frozen=True, kw_only=True):
    max_side: Annotated[int, msgspec.Meta(ge=16, le=4096)] = 256
    format: Literal["webp", "png", "jpeg"] = "webp"


class ReviewParams(msgspec.Struct, frozen=True, kw_only=True):
    checks: dict[str, Any] = {}


class BundleParams(msgspec.Struct, frozen=True, kw_only=True):
    request: dict[str, Any] = {}
    """What the manifest says was asked for."""


class VariantParams(msgspec.Struct, frozen=True, kw_only=True):
    preset: PresetName
    """An export preset's name (``GET /v1/presets``)."""


def frames_of(duration_s: float, fps: int) -> int:
    """A duration as whole frames, as every clip is filmed and every composite laid (at least
    one): what a clip's length and a shot's are compared by."""
    return max(1, round(duration_s * fps))


class ClipParams(StepParams, frozen=True, kw_only=True):
    """A clip: the camera's move over a still (``video.from_image``), or over an image made from
    the prompt first (``video.from_text``)."""

    prompt: StepPrompt = ""
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 4.0
    fps: Fps = 24
    width: Annotated[int, msgspec.Meta(ge=64, le=1920, multiple_of=2)] = 640
    height: Annotated[int, msgspec.Meta(ge=64, le=1080, multiple_of=2)] = 360
    move: Move = "zoom_in"


class TimelineShot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    clip: str
    """The step whose video is the shot's picture."""
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=600)]
    """How long the shot lasts: its clip cut there or its last frame held."""
    audio: str | None = None
    """The step whose audio is the shot's sound (cut or padded with silence to the shot)."""
    text: Annotated[str, msgspec.Meta(max_length=500)] = ""
    """The shot's line: a subtitle cue (or burned in)."""


class CompositeParams(msgspec.Struct, frozen=True, kw_only=True):
    shots: Annotated[list[TimelineShot], msgspec.Meta(min_length=1, max_length=500)]
    fps: Fps = 24
    width: Annotated[int, msgspec.Meta(ge=64, le=1920, multiple_of=2)] = 640
    height: Annotated[int, msgspec.Meta(ge=64, le=1080, multiple_of=2)] = 360
    burn_subtitles: bool = False
    """Draw each line on the picture instead of a soft subtitle track."""


class AudioParams(msgspec.Struct, frozen=True, kw_only=True):
    format: Literal["mp3", "opus", "aac", "wav"] = "mp3"
    """What the speech is delivered as; a WAV master is made beside it."""
    sample_rate: Literal[16000, 22050, 24000, 44100, 48000] = 24000
    loudness_lufs: Annotated[float, msgspec.Meta(ge=-36, le=-8)] = -16.0
    """Integrated loudness (EBU R128): -16 is what podcasts and voice assistants ship."""


class StudioParams(StepParams, frozen=True, kw_only=True):
    """A studio candidate: the whole look it is rendered with, from the original photo."""

    recipe: Recipe
    prompt: StepPrompt = ""
    platform: Platform | None = None
    """``image.platform``: the marketplace's rules, measured on the file made."""
    platform_name: str = ""


class UploadParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An upload step runs nothing: its files are given (``StepSpec.given``)."""


CAPABILITY_PARAMS: dict[str, type[msgspec.Struct]] = {
    "text.generate": TextParams,
    "image.generate": ImageParams,
    "tts": SpeechParams,
    "image.thumbnail": ThumbnailParams,
    "review.auto": ReviewParams,
    "review": ReviewParams,
    "bundle.zip": BundleParams,
    "image.variant": VariantParams,
    "audio.deliver": AudioParams,
    "video.from_image": ClipParams,
    "video.from_text": ClipParams,
    "video.composite": CompositeParams,
    "upload": UploadParams,
    "image.optimize": StudioParams,
    "image.bg_replace": StudioParams,
    "image.refine": StudioParams,
    "image.platform": StudioParams,
}


def check_params(steps: Iterable[StepSpec]) -> None:
    """Each step's parameters as its capability takes them, or ``InvalidInput`` naming the step
    and the field (``steps.<name>.params.<field>``)."""
    issues = []
    for step in steps:
        schema = CAPABILITY_PARAMS.get(step.capability)
        if schema is None:
            issues.append(
                Issue(
                    loc=("steps", step.name, "capability"),
                    msg=f"no capability {step.capability!r}",
                    type="enum",
                )
            )
            continue
        try:
            msgspec.convert(step.params, schema, strict=True)
        except msgspec.ValidationError as exc:
            found = issue_of(exc)
            issues.append(
                Issue(loc=("steps", step.name, "params", *found.loc), msg=found.msg, type=found.type)
            )
    if issues:
        raise InvalidInput("validation_failed", issues)
