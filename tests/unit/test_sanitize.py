"""The media service's upload sanitiser on the hostile-upload set, and what it makes of what it takes."""

from __future__ import annotations

import io
import wave

import pytest
from PIL import Image

from atelier_contracts.uploads import allowed_types, sniff
from atelier_media.domain.sanitize import CleanAudio, CleanImage, Limits, Refused, sanitize
from tests.hostile_uploads import (
    CASES,
    PHP,
    Case,
    image,
    jpeg_with_exif,
    png_with_text,
    swapped_rgb_profile,
    wav,
)


def clean(data: bytes, limits: Limits | None = None) -> CleanImage:
    _, made = sanitize(io.BytesIO(data), limits or Limits())
    assert isinstance(made, CleanImage)
    return made


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_hostile_upload_gets_its_answer(case: Case) -> None:
    if case.answer is None:
        sanitize(io.BytesIO(case.data), Limits())
        return
    with pytest.raises(Refused) as refused:
        sanitize(io.BytesIO(case.data), Limits())
    assert (refused.value.status, refused.value.code) == case.answer
    assert refused.value.detail


def test_what_rode_along_in_a_polyglot_is_not_in_what_is_stored() -> None:
    made = clean(image("GIF") + PHP)
    assert PHP not in made.data
    assert b"<?php" not in made.data
    assert made.format == "png"  # a GIF is stored as PNG: its first frame, losslessly
    assert opened(made.data).format == "PNG"


def test_orientation_is_applied_and_every_metadata_block_dropped() -> None:
    made = clean(jpeg_with_exif(orientation=6, size=(80, 40)))
    assert (made.width, made.height) == (40, 80)  # turned upright, as EXIF said
    out = opened(made.data)
    assert out.size == (40, 80)
    assert not out.getexif()
    assert not set(out.info) & {"exif", "icc_profile", "comment", "xmp", "gps"}
    for marker in (b"Exif", b"SpyCam", b"taken at home", b"GPS"):
        assert marker not in made.data


def test_text_and_xmp_chunks_are_dropped() -> None:
    made = clean(png_with_text())
    assert b"secret location" not in made.data
    assert b"xmpmeta" not in made.data
    assert opened(made.data).info == {}


def test_a_colour_profile_is_converted_to_srgb_and_not_kept() -> None:
    source = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(source, "PNG", icc_profile=swapped_rgb_profile())
    out = opened(clean(source.getvalue()).data)
    red, green, blue = out.getpixel((0, 0))  # type: ignore[misc]
    assert blue > 150
    assert red < 40
    assert green < 40
    assert "icc_profile" not in out.info


def test_the_long_edge_is_capped_and_alpha_kept() -> None:
    made = clean(image("PNG", (5000, 1000), mode="RGBA"), Limits(max_edge=4096))
    assert (made.width, made.height) == (4096, 819)
    assert made.has_alpha
    assert opened(made.data).mode == "RGBA"
    small = clean(image("PNG", (300, 200), mode="RGBA"), Limits(max_edge=100))
    assert (small.width, small.height) == (100, 67)


def test_an_alpha_channel_that_is_all_opaque_is_dropped() -> None:
    opaque = io.BytesIO()
    Image.new("RGBA", (20, 10), (1, 2, 3, 255)).save(opaque, "PNG")
    made = clean(opaque.getvalue())
    assert not made.has_alpha
    assert opened(made.data).mode == "RGB"


def test_the_thumbnail_is_a_256_px_webp() -> None:
    made = clean(image("JPEG", (1200, 600)))
    thumb = opened(made.thumbnail)
    assert (thumb.format, thumb.size) == ("WEBP", (256, 128))


def test_the_same_file_makes_the_same_bytes() -> None:
    data = jpeg_with_exif()
    assert clean(data).data == clean(data).data  # so its blob (and upload id) is the same


def test_the_pixel_limit_is_read_from_the_header_and_configurable() -> None:
    with pytest.raises(Refused) as refused:
        clean(image("PNG", (200, 100)), Limits(max_pixels=19_999))
    assert refused.value.code == "image_too_large"
    assert clean(image("PNG", (200, 100)), Limits(max_pixels=20_000)).width == 200


def test_audio_becomes_a_wav_master() -> None:
    found, made = sanitize(io.BytesIO(wav(seconds=0.5, rate=22050)), Limits())
    assert found == "audio/wav"
    assert isinstance(made, CleanAudio)
    assert (made.sample_rate, made.channels) == (22050, 1)
    assert made.duration_s == pytest.approx(0.5, abs=0.01)
    with wave.open(io.BytesIO(made.data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)


def test_audio_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        sanitize(io.BytesIO(wav(seconds=1.0)), Limits(max_audio_s=0.5))
    assert (refused.value.status, refused.value.code) == (413, "input_too_large")


def test_only_configured_types_pass() -> None:
    only_png = allowed_types({"ATELIER_UPLOAD_TYPES": "image/png"})
    with pytest.raises(Refused) as refused:
        sanitize(io.BytesIO(image("JPEG")), Limits(types=only_png))
    assert refused.value.code == "unsupported_media"
    with pytest.raises(ValueError, match="no decoder"):
        allowed_types({"ATELIER_UPLOAD_TYPES": "image/svg+xml"})


def test_a_png_is_named_by_its_bytes_not_its_name() -> None:
    assert sniff(image("PNG")) == "image/png"
    assert sniff(b"") is None
    assert sniff(b"\x00\x01garbage") is None
