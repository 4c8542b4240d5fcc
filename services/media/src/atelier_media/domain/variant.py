"""A variant: an original rendered as an export preset says, to exact dimensions.

Always from the sanitised original (never from another variant, so quality is lost once), in
the preset's format — a JPEG preset writes PNG for an image with transparent pixels when the
preset says so, and otherwise lays the image on white.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, JpegImagePlugin

from atelier_contracts.presets import Preset
from atelier_media.domain.thumbnail import DECODE_ERRORS, normalise_mode, transparent

_CONTENT_TYPES = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}
_ORIGINAL_FORMATS = ["PNG", "JPEG", "WEBP"]
"""What a sanitised original is stored as: the only decoders a variant opens it with."""


@dataclass(frozen=True)
class Variant:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.format]


def target_size(width: int, height: int, preset: Preset) -> tuple[int, int]:
    """The variant's dimensions: the long edge at the preset's, the other in proportion."""
    long_edge = max(width, height)
    if long_edge <= preset.long_edge and not preset.upscale:
        return width, height
    scale = preset.long_edge / long_edge
    if width >= height:
        return preset.long_edge, max(1, round(height * scale))
    return max(1, round(width * scale)), preset.long_edge


def render(original: bytes, preset: Preset) -> Variant:
    try:
        img: Image.Image = Image.open(io.BytesIO(original), formats=_ORIGINAL_FORMATS)
        size = target_size(*img.size, preset)
        if isinstance(img, JpegImagePlugin.JpegImageFile):
            img.draft("RGB", size)  # decode at the smallest DCT scale still at least ``size``
        img.load()
    except DECODE_ERRORS as exc:
        raise ValueError(f"the original could not be decoded: {exc}") from exc
    img = normalise_mode(img)
    if img.size != size:
        if img.mode == "RGBA":  # premultiplied, so transparent pixels do not bleed into edges
            img = img.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")
        else:
            img = img.resize(size, Image.Resampling.LANCZOS)
    see_through = transparent(img)
    fmt = preset.format
    if fmt == "jpeg" and see_through and preset.png_when_transparent:
        fmt = "png"
    if img.mode == "RGBA" and (fmt == "jpeg" or not see_through):
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    out = io.BytesIO()
    if fmt == "png":
        img.save(out, format="PNG")
    elif fmt == "webp":
        img.save(out, format="WEBP", quality=preset.quality, method=4)
    else:
        img.save(out, format="JPEG", quality=preset.quality, progressive=True)
    return Variant(data=out.getvalue(), format=fmt, width=img.width, height=img.height)
