"""What the kinds that film and composite share: a clip's parameters and the composite's step.

``reel`` films its shots from prompts, ``episode`` from its shot images, ``cut`` films again only
what its takes cannot cover; all three lay the clips, their speech and their lines on one
timeline (``video.composite``, ``capabilities.CompositeParams``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from atelier_contracts.events import StepSpec

Move = Literal["zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "static"]
Fps = Literal[12, 15, 24, 25, 30]


def film(
    prompt: str,
    duration_s: float,
    move: str,
    *,
    fps: int,
    width: int,
    height: int,
    common: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """A clip's parameters (``video.from_image`` or ``video.from_text``): the shared ones of the
    job (``kinds.base.shared``) and a seed of the shot's own, so shots differ."""
    return {
        "prompt": prompt[:4000],
        "duration_s": duration_s,
        "fps": fps,
        "width": width,
        "height": height,
        "move": move,
        **common,
        "seed": seed,
    }


def composite_step(
    timeline: Sequence[Mapping[str, object]],
    needs: Sequence[str],
    *,
    fps: int,
    width: int,
    height: int,
    burn_subtitles: bool,
) -> StepSpec:
    """The ``composite`` step: the shots of ``timeline`` (clip, duration, audio, text) in order."""
    params = {
        "shots": list(timeline),
        "fps": fps,
        "width": width,
        "height": height,
        "burn_subtitles": burn_subtitles,
    }
    return StepSpec(
        name="composite", capability="video.composite", needs=tuple(needs), params=params, timeout_s=1800
    )
