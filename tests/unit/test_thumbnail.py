"""Thumbnails: right size and format, upright, no metadata, and safe against bad or huge input."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from atelier_media.domain.thumbnail import make_thumbnail


def encode(img: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def png_claiming(width: int, height: int) -> bytes:
    """A tiny real PNG whose header claims ``width`` x ``height``: the shape of a decompression bomb."""
    data = bytearray(encode(Image.new("RGB", (1, 1))))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts after signature, length, type
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    return bytes(data)


def test_landscape_png_becomes_a_256x192_webp() -> None:
    data, content_type = make_thumbnail(encode(Image.new("RGB", (1024, 768), (200, 40, 40))))
    thumb = decode(data)

    assert content_type == "image/webp"
    assert thumb.format == "WEBP"
    assert thumb.size == (256, 192)


def test_portrait_keeps_its_aspect_ratio() -> None:
    thumb = decode(make_thumbnail(encode(Image.new("RGB", (600, 1200))), max_side=128)[0])

    assert thumb.size == (64, 128)


def test_small_images_are_not_enlarged() -> None:
    assert decode(make_thumbnail(encode(Image.new("RGB", (100, 50))))[0]).size == (100, 50)


def test_rgba_keeps_its_transparency() -> None:
    img = Image.new("RGBA", (800, 400), (0, 0, 0, 0))
    img.paste((30, 160, 90, 255), (0, 0, 400, 400))
    thumb = decode(make_thumbnail(encode(img))[0])

    assert thumb.mode == "RGBA"
    assert thumb.getpixel((10, 10))[3] == 255  # type: ignore[index]
    assert thumb.getpixel((250, 100))[3] == 0  # type: ignore[index]


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK", "LA", "I;16"])
def test_other_modes_are_accepted(mode: str) -> None:
    img = Image.new(mode, (300, 300))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    thumb = decode(make_thumbnail(encode(img, fmt))[0])

    assert thumb.size == (256, 256)
    assert thumb.mode in ("RGB", "RGBA")


def test_palette_image_with_transparency_keeps_alpha() -> None:
    img = Image.new("P", (300, 300), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 150, 300))
    thumb = decode(make_thumbnail(encode(img, transparency=0))[0])

    assert thumb.mode == "RGBA"
    assert thumb.getpixel((200, 100))[3] == 0  # type: ignore[index]


def test_jpeg_output_flattens_alpha_onto_white() -> None:
    data, content_type = make_thumbnail(encode(Image.new("RGBA", (400, 400), (0, 0, 0, 0))), fmt="jpg")
    thumb = decode(data)

    assert content_type == "image/jpeg"
    assert (thumb.format, thumb.mode) == ("JPEG", "RGB")
    assert min(thumb.getpixel((100, 100))) > 245  # type: ignore[arg-type]


def test_png_output() -> None:
    data, content_type = make_thumbnail(encode(Image.new("RGB", (512, 512))), fmt="png")

    assert content_type == "image/png"
    assert decode(data).format == "PNG"


def test_exif_orientation_is_applied_and_metadata_stripped() -> None:
    img = Image.new("RGB", (200, 100), (250, 250, 250))
    img.paste((10, 10, 10), (0, 0, 20, 100))  # a dark stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90° clockwise to view
    exif[0x010F] = "TestCam"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    thumb = decode(make_thumbnail(encode(img, "JPEG", exif=exif, icc_profile=icc))[0])

    assert thumb.size == (100, 200)
    assert sum(thumb.getpixel((50, 5))) < 200  # type: ignore[arg-type]  # the stripe is now on top
    assert "exif" not in thumb.info
    assert "icc_profile" not in thumb.info
    assert len(thumb.getexif()) == 0


def test_same_input_gives_identical_thumbnail() -> None:
    data = encode(Image.radial_gradient("L").resize((900, 700)).convert("RGB"))

    assert make_thumbnail(data) == make_thumbnail(data)


@pytest.mark.parametrize("data", [b"", b"definitely not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_garbage_bytes_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="image"):
        make_thumbnail(data)


def test_truncated_image_raises_value_error() -> None:
    whole = encode(Image.effect_noise((512, 512), 60).convert("RGB"))

    with pytest.raises(ValueError, match="decoded"):
        make_thumbnail(whole[: len(whole) // 2])


@pytest.mark.parametrize(("width", "height"), [(10_000, 6_000), (40_000, 40_000)])
def test_pixel_bombs_are_rejected_from_the_header(width: int, height: int) -> None:
    with pytest.raises(ValueError, match=r"too large|limit"):
        make_thumbnail(png_claiming(width, height))


def test_pixel_limit_is_configurable() -> None:
    data = encode(Image.new("RGB", (100, 100)))

    with pytest.raises(ValueError, match="limit"):
        make_thumbnail(data, max_pixels=9_999)
    assert decode(make_thumbnail(data, max_pixels=10_000)[0]).size == (100, 100)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"fmt": "gif"}, "format"),
        ({"max_side": 0}, "max_side"),
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
    ],
    ids=str,
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        make_thumbnail(encode(Image.new("RGB", (10, 10))), **kwargs)  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None, database=None)
@given(width=st.integers(1, 700), height=st.integers(1, 700), max_side=st.integers(1, 300))
def test_longest_side_is_max_side_or_smaller_and_aspect_is_kept(
    width: int, height: int, max_side: int
) -> None:
    thumb = decode(make_thumbnail(encode(Image.new("RGB", (width, height))), max_side=max_side, fmt="png")[0])
    w, h = thumb.size

    assert max(w, h) == min(max_side, max(width, height))
    assert min(w, h) >= 1
    if min(w, h) > 10:
        assert abs(w / h - width / height) < 0.1 * width / height
