"""The offline painter: a deterministic PNG whose scene follows the prompt, titled on a banner."""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import os
import struct
import subprocess
import sys

import pytest
from PIL import Image, ImageChops, ImageStat

from atelier_provider_router.adapters.offline.image import MODEL, render_illustration

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMPTS = [
    "a brave fox explores the moon",
    "a whale sings in the ocean",
    "a shy robot learns to paint",
    "a penguin in the snow",
    "two friends at a picnic",
    "a bear in the forest",
]


@functools.cache
def render(prompt: str, title: str = "A Title", seed: int = 0, size: int = 1024) -> bytes:
    return render_illustration(prompt, title, seed, size)


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0 (same) to 255."""
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def chunk_types(data: bytes) -> list[bytes]:
    types, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def test_model_name() -> None:
    assert MODEL == "offline-painter-1"


def test_renders_a_1024_png_by_default() -> None:
    data = render(PROMPTS[0])
    img = decode(data)

    assert data.startswith(PNG_SIGNATURE)
    assert img.format == "PNG"
    assert img.size == (1024, 1024)
    assert img.mode == "RGB"


def test_size_is_honoured() -> None:
    assert decode(render(PROMPTS[0], size=256)).size == (256, 256)


@pytest.mark.parametrize("size", [0, 63, 4097])
def test_unreasonable_sizes_are_rejected(size: int) -> None:
    with pytest.raises(ValueError, match="size"):
        render_illustration("a fox", "Fox", size=size)


def test_png_carries_no_metadata_chunks() -> None:
    # Only image data: no tEXt/tIME/eXIf chunks that would make bytes depend on when or where we ran.
    assert set(chunk_types(render(PROMPTS[1]))) == {b"IHDR", b"IDAT", b"IEND"}


def test_same_inputs_give_identical_bytes() -> None:
    assert render_illustration(PROMPTS[2], "Paint", seed=4) == render_illustration(
        PROMPTS[2], "Paint", seed=4
    )


def test_bytes_are_identical_across_processes() -> None:
    code = (
        "import hashlib;"
        "from atelier_provider_router.adapters.offline.image import render_illustration;"
        f"print(hashlib.sha256(render_illustration({PROMPTS[3]!r}, 'Snow', 2, 256)).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
            timeout=60,
        ).stdout.strip()
        for hash_seed in (1, 2)
    }
    assert digests == {hashlib.sha256(render(PROMPTS[3], "Snow", 2, 256)).hexdigest()}


def test_different_prompts_look_substantially_different() -> None:
    images = {p: decode(render(p)) for p in PROMPTS}

    for a, b in itertools.combinations(PROMPTS, 2):
        assert mean_difference(images[a], images[b]) > 15, (a, b)


def test_theme_words_choose_the_palette() -> None:
    # The sky's top rows: deep blue at night, light blue over the sea.
    night = decode(render("an owl awake at night under the stars")).crop((0, 0, 1024, 40))
    sea = decode(render("a dolphin jumps in the sea")).crop((0, 0, 1024, 40))
    night_rgb, sea_rgb = ImageStat.Stat(night).mean, ImageStat.Stat(sea).mean

    assert sum(night_rgb) / 3 < 70
    assert sum(sea_rgb) / 3 > 110


def test_seed_changes_the_layout() -> None:
    assert mean_difference(decode(render(PROMPTS[4], seed=1)), decode(render(PROMPTS[4], seed=2))) > 5


def test_title_is_drawn_on_the_banner_only() -> None:
    a = decode(render(PROMPTS[0], title="The Fox"))
    b = decode(render(PROMPTS[0], title="A Moon Adventure"))
    banner = (0, 880, 1024, 1024)
    scene = (0, 0, 1024, 800)

    assert mean_difference(a.crop(banner), b.crop(banner)) > 3
    assert ImageChops.difference(a.crop(scene), b.crop(scene)).getbbox() is None


def test_title_text_is_dark_on_a_light_banner() -> None:
    img = decode(render(PROMPTS[0], title="The Fox")).convert("L")
    banner = img.crop((40, 900, 984, 990))
    dark = sum(banner.histogram()[:80])
    light = sum(banner.histogram()[200:])

    assert dark > 500  # glyph strokes
    assert light > dark  # on a pale background


def test_long_titles_wrap_onto_a_taller_banner() -> None:
    untitled = decode(render(PROMPTS[5], title=""))
    short = decode(render(PROMPTS[5], title="Bear"))
    long = decode(
        render(PROMPTS[5], title="The Bear Who Wanted To See Every Single Tree In The Whole Forest")
    )

    short_box = ImageChops.difference(untitled, short).getbbox()
    long_box = ImageChops.difference(untitled, long).getbbox()
    assert short_box is not None
    assert long_box is not None
    assert long_box[1] < short_box[1] - 60  # at least one more line of text
