"""``export``: an upload rendered in several export presets (``GET /v1/presets``), in one job.

Each preset is a step of its own on ``image.variant``, all rendered from the upload's sanitised
original (never from another variant), in parallel. The job is kept for the export TTL
(``ATELIER_EXPORT_TTL_S``, a day by default), then deleted with its files.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, InvalidInput, Issue, JobKind, attached_upload
from atelier_contracts.presets import PresetName

UploadId = Annotated[str, msgspec.Meta(pattern=r"^upl_[0-9a-f]{24}$")]
SOURCE_STEP = "source"


class ExportInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    """Not used by an export: a note for whoever reads the job."""
    upload: UploadId
    """The upload to export (``POST /v1/uploads``)."""
    presets: Annotated[list[PresetName], msgspec.Meta(min_length=1, max_length=16)]
    """The presets to render it in, each once."""


def variant_step(preset: str) -> str:
    return f"variant-{preset}"


def check(export: ExportInput) -> None:
    if len(set(export.presets)) != len(export.presets):
        twice = sorted({p for p in export.presets if export.presets.count(p) > 1})
        message = f"each preset once; named more than once: {', '.join(twice)}"
        raise InvalidInput("validation_failed", [Issue(loc=("presets",), msg=message, type="value_error")])


def plan(export: ExportInput) -> tuple[StepSpec, ...]:
    original = attached_upload(export, export.upload)
    source = StepSpec(name=SOURCE_STEP, capability="upload", given=(original,))
    variants = tuple(
        StepSpec(
            name=variant_step(preset),
            capability="image.variant",
            needs=(SOURCE_STEP,),
            params={"preset": preset},
            timeout_s=120,
        )
        for preset in export.presets
    )
    return (source, *variants)


KIND = JobKind(
    name="export",
    description="An upload in several export presets (WebP, JPEG, PNG where transparent), at once.",
    input_type=ExportInput,
    plan=plan,
    check=check,
    uploads=lambda export: (export.upload,),
    deadline_s=600.0,
    example={"upload": "upl_0123456789abcdef01234567", "presets": ["web-1080", "market-1500"]},
)
