"""The automatic reviewer: deterministic checks on the files a review gate looks at.

Images (and a clip's first frame): the short side at least ``min_side`` pixels, the mean
brightness (0..1) within ``brightness``. Texts: at least ``min_words`` words. The verdict names
every file that fails.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import av
from PIL import Image, ImageStat

MODEL = "auto-review-1"


@dataclass(frozen=True)
class Verdict:
    approve: bool
    feedback: str


def check_image(name: str, data: bytes, checks: Mapping[str, Any]) -> list[str]:
    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", (256, 256))  # brightness needs no full decode of a large JPEG
        problems = []
        min_side = int(checks.get("min_side", 0))
        if min(img.size) < min_side:
            problems.append(f"{name} is {img.size[0]}x{img.size[1]}, smaller than {min_side} px")
        low, high = checks.get("brightness", [0.0, 1.0])
        mean = ImageStat.Stat(img.convert("L")).mean[0] / 255
        if not float(low) <= mean <= float(high):
            problems.append(f"{name} has brightness {mean:.2f}, outside {low}..{high}")
    return problems


def check_video(name: str, data: bytes, checks: Mapping[str, Any]) -> list[str]:
    """A clip as its first frame is an image (the size, the brightness); no frame: a problem."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frame = next(container.decode(video=0), None)
            if frame is None:
                return [f"{name} holds no frame"]
            first = frame.to_image()  # type: ignore[no-untyped-call]
    except (av.FFmpegError, IndexError):
        return [f"{name} is not a video that decodes"]
    buffer = io.BytesIO()
    first.save(buffer, "PNG")
    return check_image(name, buffer.getvalue(), checks)


def check_text(name: str, text: str, checks: Mapping[str, Any]) -> list[str]:
    words = len(text.split())
    least = int(checks.get("min_words", 0))
    return [f"{name} has {words} words, fewer than {least}"] if words < least else []


def verdict(problems: list[str]) -> Verdict:
    if problems:
        return Verdict(approve=False, feedback="; ".join(problems))
    return Verdict(approve=True, feedback="every check passed")
