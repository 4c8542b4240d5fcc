"""Export presets: named renditions of an image, defined in a file and read again when it changes.

The gateway refuses names no preset has (``preset_not_found``); the media service renders a
variant from a preset's definition, and caches it by (original, the definition's digest), so a
changed preset renders anew while an unchanged one is never rendered twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from atelier_contracts.reloading import ReloadingFile

PresetName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$")]


class Preset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: Literal["webp", "jpeg", "png"]
    long_edge: Annotated[int, msgspec.Meta(ge=16, le=8192)]
    quality: Annotated[int, msgspec.Meta(ge=1, le=100)] = 85
    png_when_transparent: bool = True
    """For ``jpeg``: an image with transparent pixels is written as PNG instead."""
    upscale: bool = False
    """Enlarge an image whose long edge is shorter than ``long_edge`` (default: keep its size)."""
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""

    def digest(self) -> str:
        """Names what the preset renders (not its description): the variant cache's key."""
        rendering = msgspec.structs.asdict(self)
        rendering.pop("description")
        return hashlib.sha256(msgspec.json.encode(rendering, order="sorted")).hexdigest()[:16]


class PresetsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    presets: dict[PresetName, Preset]


class PresetsInvalid(ValueError):
    pass


def parse_presets(text: str, suffix: str) -> dict[str, Preset]:
    """A presets file's text (TOML, or JSON for a ``.json`` file), validated."""
    try:
        raw = json.loads(text) if suffix == ".json" else tomllib.loads(text)
        parsed = msgspec.convert(raw, PresetsFile, strict=True)
    except (ValueError, msgspec.ValidationError) as exc:  # JSON and TOML errors are ValueErrors
        raise PresetsInvalid(f"presets file is invalid: {exc}") from None
    if not parsed.presets:
        raise PresetsInvalid("presets file defines no preset")
    return dict(parsed.presets)


def default_text() -> str:
    return resources.files("atelier_contracts").joinpath("data/presets.toml").read_text()


class PresetRegistry:
    """The presets of ``path`` (the packaged defaults when None), read again when the file
    changes; a file that turns invalid is logged and the last good presets are kept, so a typo
    never takes exports down (``atelier_contracts.reloading``)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._file = ReloadingFile(path, parse_presets, lambda: (default_text(), ".toml"), "presets")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PresetRegistry:
        env = os.environ if env is None else env
        path = env.get("ATELIER_PRESETS_FILE", "")
        return cls(Path(path) if path else None)

    def presets(self) -> dict[str, Preset]:
        return self._file.current()

    def get(self, name: str) -> Preset | None:
        return self.presets().get(name)
