"""``clip``: an uploaded still becomes a video clip, the camera moving over it."""

from __future__ import annotations

from typing import Annotated

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, JobKind, attached_upload, shared
from atelier_contracts.kinds.export import SOURCE_STEP, UploadId
from atelier_contracts.kinds.timeline import Fps, Move


class ClipInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    """What the clip shows (a remote video model takes it as its prompt)."""
    upload: UploadId
    """The still (``POST /v1/uploads``)."""
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 4.0
    fps: Fps = 24
    width: Annotated[int, msgspec.Meta(ge=64, le=1920, multiple_of=2)] = 640
    height: Annotated[int, msgspec.Meta(ge=64, le=1080, multiple_of=2)] = 360
    move: Move = "zoom_in"


def plan(clip: ClipInput) -> tuple[StepSpec, ...]:
    original = attached_upload(clip, clip.upload)
    params = {
        "prompt": clip.prompt,
        "duration_s": clip.duration_s,
        "fps": clip.fps,
        "width": clip.width,
        "height": clip.height,
        "move": clip.move,
        **shared(clip),
    }
    return (
        StepSpec(name=SOURCE_STEP, capability="upload", given=(original,)),
        StepSpec(
            name="clip", capability="video.from_image", needs=(SOURCE_STEP,), params=params, timeout_s=600
        ),
    )


KIND = JobKind(
    name="clip",
    description="An uploaded still as a video clip (H.264): zoom or pan, duration, frame rate and size.",
    input_type=ClipInput,
    plan=plan,
    uploads=lambda clip: (clip.upload,),
    deadline_s=1800.0,
    example={"upload": "upl_0123456789abcdef01234567", "duration_s": 3.0, "move": "pan_right"},
)
