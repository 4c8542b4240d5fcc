"""Style presets: data files that shape a shot's prompt and the offline renderer's look.

The packaged ``data/styles.json`` (anime, 3d, hand-drawn, ink-wash), or ``ATELIER_STYLES_FILE``,
read again when it changes (``atelier_contracts.reloading``); a package adds styles through the
``atelier.styles`` entry point group, each entry a callable that returns ``{name: Style}`` (or
the same as plain dicts), as provider adapters come from ``atelier.providers``. A new style is a
file entry, nothing else.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from importlib import metadata, resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from atelier_contracts.reloading import ReloadingFile

log = logging.getLogger(__name__)

StyleName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")]
Look = Literal["cel", "soft", "sketch", "ink", "plain"]
ENTRY_POINT_GROUP = "atelier.styles"


class Style(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    prefix: Annotated[str, msgspec.Meta(max_length=400)] = ""
    suffix: Annotated[str, msgspec.Meta(max_length=400)] = ""
    look: Look = "plain"
    """How the offline painter finishes its picture (flat cel colours, soft light, pencil, ink)."""


class StylesInvalid(ValueError):
    pass


def style_prompt(style: Style, description: str) -> str:
    return " ".join(p for p in (style.prefix, description.strip(), style.suffix) if p)


def parse_styles(text: str, suffix: str = ".json") -> dict[str, Style]:
    try:
        styles = msgspec.convert(json.loads(text), dict[StyleName, Style], strict=True)
    except (ValueError, msgspec.ValidationError) as exc:
        raise StylesInvalid(f"styles file is invalid: {exc}") from None
    if not styles:
        raise StylesInvalid("styles file defines no style")
    return {**_plugged(), **styles}


def _plugged() -> dict[str, Style]:
    """Styles other packages register (``atelier.styles``); a broken one is logged and skipped."""
    found: dict[str, Style] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            found.update(msgspec.convert(entry.load()(), dict[StyleName, Style]))
        except Exception:
            log.exception("a style plugin could not be loaded", extra={"entry_point": entry.value})
    return found


def _default() -> tuple[str, str]:
    return resources.files("atelier_contracts").joinpath("data/styles.json").read_text(), ".json"


class StyleRegistry:
    def __init__(self, path: Path | None = None) -> None:
        self._file = ReloadingFile(path, parse_styles, _default, "styles")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StyleRegistry:
        path = (os.environ if env is None else env).get("ATELIER_STYLES_FILE", "")
        return cls(Path(path) if path else None)

    def current(self) -> dict[str, Style]:
        return self._file.current()


STYLES = StyleRegistry.from_env()
"""The styles this process knows (the gateway checks a job's against them at the door)."""
