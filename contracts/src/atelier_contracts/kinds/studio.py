"""``studio``: a round of the product-photo studio (``docs/studio.md``).

An edit or refine round renders one candidate per recipe (``atelier_contracts.studio``), each from
the original photo (an upload, given), on the provider router's ``image.optimize``,
``image.bg_replace`` or ``image.refine``. An export round renders the adopted candidate in export
presets (``image.variant``, from the adopted candidate's file, or from the original when the
session has adopted none) and each marketplace platform asked for (``image.platform``: the
adopted look on the platform's plain background, framed to its fill, its rules measured).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from atelier_contracts.common import Artifact
from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import BaseInput, InvalidInput, Issue, JobKind, attached_upload, shared
from atelier_contracts.presets import PresetName
from atelier_contracts.studio import Background, Recipe
from atelier_contracts.studio_catalog import Name, Platform

UploadId = Annotated[str, msgspec.Meta(pattern=r"^upl_[0-9a-f]{24}$")]
MAX_CANDIDATES = 8
ORIGINAL_STEP = "original"
LOGO_STEP = "logo"
SOURCE_STEP = "source"


class StudioInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    """What the shop owner said (an edit may say nothing: its chip decides)."""
    operation: Literal["optimize", "bg_replace", "refine", "export"]
    upload: UploadId
    """The product photo every candidate is rendered from."""
    logo: UploadId | None = None
    """A logo to place at the recipe's anchor."""
    recipes: Annotated[list[Recipe], msgspec.Meta(max_length=MAX_CANDIDATES)] = []
    """An edit or refine round: one candidate per recipe."""
    presets: Annotated[list[PresetName], msgspec.Meta(max_length=16)] = []
    platforms: Annotated[dict[Name, Platform], msgspec.Meta(max_length=8)] = {}
    """An export round: marketplace platforms by name, as the catalogue defines them."""
    recipe: Recipe | None = None
    """An export round: the adopted look, which the platforms' renders keep."""


def candidate_step(index: int) -> str:
    return f"candidate-{index + 1}"


def platform_step(name: str) -> str:
    return f"platform-{name}"


def _issue(loc: tuple[str | int, ...], msg: str) -> InvalidInput:
    return InvalidInput("validation_failed", [Issue(loc=loc, msg=msg, type="value_error")])


def check(studio: StudioInput) -> None:
    if studio.operation == "export":
        if not studio.presets and not studio.platforms:
            raise _issue(("presets",), "an export names at least one preset or platform")
        if studio.platforms and studio.recipe is None:
            raise _issue(("recipe",), "a platform export renders the adopted look: give its recipe")
        if len(set(studio.presets)) != len(studio.presets):
            raise _issue(("presets",), "each preset once")
        return
    if not studio.recipes:
        raise _issue(("recipes",), f"an {studio.operation} round renders at least one recipe")
    for i, recipe in enumerate(studio.recipes):
        if recipe.operation != studio.operation:
            raise _issue(("recipes", i, "operation"), f"a recipe of this round is for {studio.operation}")


def _given(studio: StudioInput) -> list[StepSpec]:
    original = attached_upload(studio, studio.upload)
    steps = [StepSpec(name=ORIGINAL_STEP, capability="upload", given=(original,))]
    if studio.logo is not None:
        logo = attached_upload(studio, studio.logo, "logo")
        steps.append(StepSpec(name=LOGO_STEP, capability="upload", given=(logo,)))
    return steps


def plan(studio: StudioInput) -> tuple[StepSpec, ...]:
    given = _given(studio)
    needs = tuple(s.name for s in given)
    if studio.operation == "export":
        return (*given, *_export(studio, needs))
    common = shared(studio)
    candidates = [
        StepSpec(
            name=candidate_step(i),
            capability=f"image.{studio.operation}",
            needs=needs,
            params={**common, "recipe": msgspec.to_builtins(recipe), "prompt": studio.prompt},
            timeout_s=120,
        )
        for i, recipe in enumerate(studio.recipes)
    ]
    return (*given, *candidates)


def _export(studio: StudioInput, needs: tuple[str, ...]) -> list[StepSpec]:
    steps: list[StepSpec] = []
    if studio.presets:
        base = studio.session.base if studio.session is not None else None
        adopted = (
            Artifact(name="adopted", kind="image", blob=base.blob)
            if base is not None
            else attached_upload(studio, studio.upload)
        )
        steps.append(StepSpec(name=SOURCE_STEP, capability="upload", given=(adopted,)))
        steps.extend(
            StepSpec(
                name=f"variant-{preset}",
                capability="image.variant",
                needs=(SOURCE_STEP,),
                params={"preset": preset},
                timeout_s=120,
            )
            for preset in studio.presets
        )
    common = shared(studio)
    for name, platform in sorted(studio.platforms.items()):
        assert studio.recipe is not None  # check() said so
        framed = msgspec.structs.replace(
            studio.recipe,
            background=Background(kind="solid", colors=(platform.background,))
            if platform.background
            else studio.recipe.background,
            shadow=0.0 if platform.background else studio.recipe.shadow,
            fill=platform.fill,
            size=platform.long_side,
            square=platform.square,
            format=platform.format,
            logo=studio.recipe.logo if platform.logo else None,
        )
        params = {**common, "recipe": msgspec.to_builtins(framed), "platform": msgspec.to_builtins(platform)}
        params["platform_name"] = name
        steps.append(
            StepSpec(
                name=platform_step(name),
                capability="image.platform",
                needs=needs,
                params=params,
                timeout_s=180,
            )
        )
    return steps


KIND = JobKind(
    name="studio",
    description="A round of the product-photo studio: candidates of an edit or a refinement, or the "
    "adopted candidate exported in presets and for marketplaces (POST /v1/studio/sessions).",
    input_type=StudioInput,
    plan=plan,
    check=check,
    uploads=lambda studio: (studio.upload, *((studio.logo,) if studio.logo else ())),
    deadline_s=900.0,
    example={
        "operation": "bg_replace",
        "upload": "upl_0123456789abcdef01234567",
        "recipes": [{"operation": "bg_replace", "background": {"kind": "texture", "texture": "wood"}}],
    },
)
