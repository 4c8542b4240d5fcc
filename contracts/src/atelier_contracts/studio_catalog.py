"""The studio's catalogue as a file: prompt templates, prompt chips and marketplace platforms.

JSON (``ATELIER_STUDIO_FILE``; the packaged ``data/studio.json`` by default), validated strictly
and read again when it changes (``atelier_contracts.reloading``). A chip is a one-click look ("white
background, soft shadow"): a shop owner with an empty prompt gets its settings. A platform is a
marketplace's main-image rules: the export renders to them and measures each on the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from atelier_contracts.reloading import ReloadingFile
from atelier_contracts.sessions import ContextText
from atelier_contracts.studio import OPERATIONS, ContextUnreadable, Recipe, parse_background, parse_lighting

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]


class Templates(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a remote model is asked per operation; ``{prompt}``, ``{background}``, ``{lighting}``,
    ``{tone}`` and ``{perspective}`` are filled in."""

    optimize: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    bg_replace: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    refine: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


def fill_template(template: str, recipe: Recipe, said: str) -> str:
    """A template with the recipe's look and the shop owner's words filled in."""
    values = {
        "prompt": said,
        "background": recipe.background.text(),
        "lighting": recipe.lighting.text(),
        "tone": recipe.tone.text(),
        "perspective": recipe.perspective,
    }
    return " ".join(template.format_map(values).split())


class Chip(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    label: Label
    operation: Literal["optimize", "bg_replace"]
    prompt: Annotated[str, msgspec.Meta(max_length=400)] = ""
    background: ContextText | None = None
    """As the context says it: ``solid #ffffff``, ``gradient #a #b``, ``texture wood``, ``keep``."""
    shadow: Annotated[float, msgspec.Meta(ge=0, le=0.9)] | None = None
    lighting: ContextText | None = None


class Platform(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A marketplace's main image: how the export renders it and which rules it measures."""

    label: Label
    format: Literal["jpeg", "png"] = "jpeg"
    long_side: Annotated[int, msgspec.Meta(ge=64, le=4096)]
    square: bool = False
    width: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 0
    height: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 0
    """An exact size the platform asks for (0: any)."""
    min_long_side: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 0
    background: Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-f]{6}$")] | None = None
    """The plain background the platform asks for (None: any)."""
    background_tolerance: Annotated[int, msgspec.Meta(ge=0, le=64)] = 6
    fill: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.85
    """The share of the frame's long side the product is rendered to fill."""
    fill_min: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    fill_max: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    logo: bool = False
    """Whether the platform's main image may carry the shop's logo (Amazon's may not)."""


class Catalog(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    templates: Templates
    chips: dict[Name, Chip]
    default_chips: dict[Literal["optimize", "bg_replace"], Name]
    platforms: dict[Name, Platform]


class CatalogInvalid(ValueError):
    pass


def parse_catalog(text: str, suffix: str = ".json") -> Catalog:
    try:
        catalog = msgspec.convert(json.loads(text), Catalog, strict=True)
    except (ValueError, msgspec.ValidationError) as exc:
        raise CatalogInvalid(f"studio catalogue is invalid: {exc}") from None
    for operation in OPERATIONS:
        try:
            fill_template(getattr(catalog.templates, operation), Recipe(operation=operation), "")  # type: ignore[arg-type]
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            raise CatalogInvalid(
                f"studio catalogue: template {operation}: {type(exc).__name__}: {exc}"
            ) from None
    for name, chip in catalog.chips.items():
        try:
            parse_background(chip.background)
            parse_lighting(chip.lighting)
        except ContextUnreadable as exc:
            raise CatalogInvalid(f"studio catalogue: chip {name}: {exc}") from None
    for operation, name in catalog.default_chips.items():
        default = catalog.chips.get(name)
        if default is None or default.operation != operation:
            raise CatalogInvalid(
                f"studio catalogue: default chip {name!r} for {operation} is not one of its chips"
            )
    for name, platform in catalog.platforms.items():
        if not platform.fill_min <= platform.fill <= platform.fill_max:
            raise CatalogInvalid(f"studio catalogue: platform {name}: fill outside fill_min..fill_max")
    assert set(OPERATIONS) >= set(catalog.default_chips)
    return catalog


def default_text() -> str:
    return resources.files("atelier_contracts").joinpath("data/studio.json").read_text()


class StudioCatalog:
    """The catalogue of ``path`` (the packaged one when None), read again when it changes."""

    def __init__(self, path: Path | None = None) -> None:
        self._file = ReloadingFile(path, parse_catalog, lambda: (default_text(), ".json"), "studio catalogue")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StudioCatalog:
        env = os.environ if env is None else env
        path = env.get("ATELIER_STUDIO_FILE", "")
        return cls(Path(path) if path else None)

    def current(self) -> Catalog:
        return self._file.current()
