"""``story``: a children's story — text, then cover and narration in parallel, a thumbnail, the
narration delivered (normalised, in the format asked for), a ZIP."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, JobKind, shared


class StoryInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    age: Annotated[int, msgspec.Meta(ge=1, le=18)] | None = None
    """The reader's age, for the story's tone."""
    audio_format: Literal["mp3", "opus", "aac", "wav"] = "mp3"
    """What the narration is delivered as (normalised; a WAV master beside it)."""


def plan(story: StoryInput) -> tuple[StepSpec, ...]:
    common = shared(story)
    asked = {"prompt": story.prompt, **({"age": story.age} if story.age is not None else {})}
    return (
        StepSpec(name="story", capability="text.generate", params={**asked, **common}, timeout_s=120),
        # The cover is drawn from the story's text (its input) and the job's title.
        StepSpec(
            name="cover",
            capability="image.generate",
            needs=("story",),
            params={"size": 1024, **common},
            timeout_s=180,
        ),
        StepSpec(name="narration", capability="tts", needs=("story",), params=common, timeout_s=180),
        StepSpec(
            name="audio",
            capability="audio.deliver",
            needs=("narration",),
            params={"format": story.audio_format},
            timeout_s=120,
        ),
        StepSpec(
            name="thumbnail",
            capability="image.thumbnail",
            needs=("cover",),
            params={"max_side": 256, "format": "webp"},
        ),
        StepSpec(
            name="package",
            capability="bundle.zip",
            needs=("story", "cover", "thumbnail", "audio"),
            params={"request": asked},  # what the manifest says was asked for
        ),
    )


KIND = JobKind(
    name="story",
    description="A children's story: text, cover image and narration (delivered as MP3, Opus, AAC "
    "or WAV), a thumbnail, and a ZIP of all.",
    input_type=StoryInput,
    plan=plan,
    partial_ready_after="story",
)
