"""Export presets (the file, its validation and reload) and the variants rendered from them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from atelier_contracts.presets import Preset, PresetRegistry, PresetsInvalid, parse_presets
from atelier_media.domain.variant import render, target_size
from tests.hostile_uploads import image


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_the_packaged_presets_hold_web_and_marketplace_ones() -> None:
    presets = PresetRegistry().presets()
    assert presets["web-1080"].format == "webp"
    assert presets["web-1080"].long_edge == 1080
    assert presets["market-1500"].format == "jpeg"
    assert presets["market-1500"].long_edge == 1500
    assert presets["market-1500"].png_when_transparent


@pytest.mark.parametrize(
    ("size", "preset", "expected"),
    [
        ((3000, 2000), Preset(format="webp", long_edge=1080), (1080, 720)),
        ((2000, 3000), Preset(format="webp", long_edge=1080), (720, 1080)),
        ((1001, 333), Preset(format="jpeg", long_edge=500), (500, 166)),
        ((800, 600), Preset(format="jpeg", long_edge=1500), (800, 600)),  # never enlarged by default
        ((800, 600), Preset(format="jpeg", long_edge=1500, upscale=True), (1500, 1125)),
    ],
)
def test_variants_have_exact_dimensions(
    size: tuple[int, int], preset: Preset, expected: tuple[int, int]
) -> None:
    assert target_size(*size, preset) == expected
    made = render(image("PNG", size), preset)
    assert (made.width, made.height) == expected
    assert opened(made.data).size == expected


def test_each_preset_writes_its_format_and_png_where_transparent() -> None:
    opaque, see_through = image("PNG", (400, 300)), image("PNG", (400, 300), mode="RGBA")
    web = Preset(format="webp", long_edge=200, quality=80)
    market = Preset(format="jpeg", long_edge=200, quality=90)
    assert opened(render(opaque, web).data).format == "WEBP"
    assert opened(render(opaque, market).data).format == "JPEG"
    kept = render(see_through, market)  # JPEG has no alpha: the preset says PNG then
    assert kept.format == "png"
    assert opened(kept.data).mode == "RGBA"
    flattened = render(see_through, Preset(format="jpeg", long_edge=200, png_when_transparent=False))
    assert flattened.format == "jpeg"
    assert opened(flattened.data).mode == "RGB"
    assert opened(render(see_through, web).data).mode == "RGBA"  # WebP keeps alpha


def test_the_digest_names_the_rendering_not_the_description() -> None:
    a = Preset(format="webp", long_edge=1080, quality=82, description="one")
    assert a.digest() == Preset(format="webp", long_edge=1080, quality=82, description="two").digest()
    assert a.digest() != Preset(format="webp", long_edge=1080, quality=83).digest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[presets.x]\nformat = 'gif'\nlong_edge = 10", "format"),
        ("[presets.x]\nformat = 'webp'\nlong_edge = 5", "long_edge"),
        ("[presets.x]\nformat = 'webp'\nlong_edge = 100\nsize = 3", "unknown field"),
        ("[presets.'Bad Name']\nformat = 'webp'\nlong_edge = 100", "presets"),
        ("presets = {}", "no preset"),
        ("[presets", "invalid"),
    ],
)
def test_an_invalid_presets_file_is_refused_with_why(text: str, message: str) -> None:
    with pytest.raises(PresetsInvalid, match=message):
        parse_presets(text, ".toml")


def test_a_json_presets_file_is_read_too() -> None:
    found = parse_presets('{"presets": {"square": {"format": "png", "long_edge": 800}}}', ".json")
    assert found["square"] == Preset(format="png", long_edge=800)


def test_the_file_is_read_again_when_it_changes_and_a_bad_edit_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "presets.toml"
    path.write_text("[presets.a]\nformat = 'webp'\nlong_edge = 100\n")
    registry = PresetRegistry(path)
    assert sorted(registry.presets()) == ["a"]

    path.write_text(
        "[presets.a]\nformat = 'webp'\nlong_edge = 100\n[presets.b]\nformat = 'jpeg'\nlong_edge = 200\n"
    )
    os.utime(path, ns=(1, 2_000_000_000))  # a new modification time, whatever the clock's resolution
    assert sorted(registry.presets()) == ["a", "b"]

    path.write_text("[presets.a]\nformat = 'bmp'\n")
    os.utime(path, ns=(1, 3_000_000_000))
    assert sorted(registry.presets()) == ["a", "b"]  # the typo is logged; exports go on

    path.write_text("[presets.c]\nformat = 'png'\nlong_edge = 300\n")
    os.utime(path, ns=(1, 4_000_000_000))
    assert sorted(registry.presets()) == ["c"]


def test_a_presets_file_invalid_at_start_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "presets.toml"
    path.write_text("[presets.a]\nformat = 'bmp'\nlong_edge = 100\n")
    with pytest.raises(PresetsInvalid):
        PresetRegistry(path)
