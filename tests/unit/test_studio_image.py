"""The studio's image operations on the procedural product photos: the cut-out against each
product's true silhouette, renders that are the same bytes every time, the key light read back
from a render, the logo on the same pixels whatever it is placed on, and a marketplace's rules
measured on the file."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
import pytest
from PIL import Image, ImageChops, ImageDraw

from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.kinds import KINDS
from atelier_contracts.studio import Background, Lighting, LogoAnchor, Recipe, Tone
from atelier_contracts.studio_catalog import Platform, StudioCatalog
from atelier_devstack import products
from atelier_provider_router import studio_image

SIZE = 600
SEGMENTED = ("shoe", "watch", "cup", "shirt", "phone", "box")
"""Six products of six different shapes."""
IOU = 0.9


@cache
def photo(name: str) -> Image.Image:
    return studio_image.open_rgb(products.photo(name, SIZE))


@cache
def cut_out(name: str) -> Image.Image:
    return studio_image.segment(photo(name))


def silhouette(name: str) -> Image.Image:
    """The product's true shape: its drawing in white on black, as ``products.photo`` masks it."""
    draw, _, _ = products.PRODUCTS[name]
    img = Image.new("RGB", (SIZE, SIZE))
    white = (255, 255, 255)
    draw(ImageDraw.Draw(img), SIZE, white, white)
    return img.convert("L").point(lambda v: 255 if v else 0)


def count(binary: Image.Image) -> int:
    return binary.histogram()[255]


def iou(mask: Image.Image, truth: Image.Image) -> float:
    inside = mask.point(lambda v: 255 if v >= 128 else 0)
    both = ImageChops.multiply(inside, truth)
    either = ImageChops.lighter(inside, truth)
    return count(both) / max(count(either), 1)


def test_the_cut_out_matches_the_products_true_silhouette_for_most_products() -> None:
    scores = {name: round(iou(cut_out(name), silhouette(name)), 4) for name in SEGMENTED}
    good = [name for name, score in scores.items() if score >= IOU]
    assert len(good) >= 5, f"IoU per product: {scores}"
    for name in SEGMENTED:
        mask = cut_out(name)
        assert mask.mode == "L"
        assert mask.size == (SIZE, SIZE)


@pytest.mark.xfail(
    strict=True,
    reason="product limitation/bug: segment() drops near-white parts on the product's outline "
    "(the shoe's sole, the bottle's cap and label band) because they are the backdrop's colour "
    "and the outside reaches them: IoU 0.81 (shoe, sneaker), 0.66 (bottle)",
)
@pytest.mark.parametrize("name", ["shoe", "sneaker", "bottle"])
def test_a_near_white_part_on_the_outline_is_part_of_the_product(name: str) -> None:
    assert iou(studio_image.segment(photo(name)), silhouette(name)) >= IOU


def test_a_white_label_inside_the_product_is_part_of_the_product() -> None:
    """The cup's pale band sits inside its body: the hole filling keeps it."""
    band = (round(0.35 * SIZE), round(0.48 * SIZE), round(0.60 * SIZE), round(0.52 * SIZE))
    inside = cut_out("cup").crop(band).point(lambda v: 255 if v >= 128 else 0)
    assert count(inside) == inside.width * inside.height


def test_the_backdrop_is_not_the_product() -> None:
    for name in SEGMENTED:
        corners = [cut_out(name).getpixel(xy) for xy in ((2, 2), (SIZE - 3, 2), (2, SIZE - 3))]
        assert corners == [0, 0, 0], name


# --- renders ------------------------------------------------------------------------------------

LOOK = Recipe(
    operation="bg_replace",
    background=Background(kind="texture", texture="wood"),
    lighting=Lighting(direction_deg=135, kelvin=5200, strength=0.25),
    shadow=0.5,
    variant=2,
)


def png(img: Image.Image) -> bytes:
    return studio_image.encode(img, "png")


def test_a_render_is_the_same_bytes_every_time() -> None:
    original = photo("box")
    first, first_mask = studio_image.render(original, cut_out("box"), LOOK)
    again, again_mask = studio_image.render(original, studio_image.segment(original), LOOK)
    assert png(first) == png(again)
    assert png(first_mask) == png(again_mask)
    other, _ = studio_image.render(original, cut_out("box"), msgspec.structs.replace(LOOK, variant=3))
    assert png(other) != png(first), "the variant chooses the texture: the test can tell renders apart"


def test_what_a_recipe_did_not_change_is_rendered_the_same() -> None:
    """A tone change from the same original leaves the background's pixels as they were."""
    original, mask = photo("phone"), cut_out("phone")
    before, placed = studio_image.render(original, mask, LOOK)
    after, _ = studio_image.render(original, mask, msgspec.structs.replace(LOOK, tone=Tone(saturation=1.3)))
    changed = ImageChops.difference(before, after).convert("L").point(lambda v: 255 if v else 0)
    assert count(changed) > 0
    outside = ImageChops.multiply(changed, ImageChops.invert(placed.point(lambda v: 255 if v else 0)))
    assert count(outside) == 0, "only the product's pixels changed"


@pytest.mark.parametrize(
    ("name", "direction", "kelvin"),
    [
        ("box", 0, 5200),
        ("box", 135, 4000),
        ("box", 225, 7800),
        ("shirt", 300, 9000),
        ("shirt", 90, 3200),
        ("phone", 180, 6500),
        ("watch", 45, 5600),
    ],
)
def test_the_key_light_is_read_back_from_a_render(name: str, direction: int, kelvin: int) -> None:
    recipe = msgspec.structs.replace(
        LOOK, lighting=Lighting(direction_deg=direction, kelvin=kelvin, strength=0.25)
    )
    result, placed = studio_image.render(photo(name), cut_out(name), recipe)
    reference, _ = studio_image.render(photo(name), cut_out(name), studio_image.neutral(recipe))
    measured = studio_image.measure_light(result, reference, placed)
    turn = (measured["direction_deg"] - direction + 180) % 360 - 180
    assert abs(turn) <= 3.0, measured
    assert abs(measured["kelvin"] - kelvin) <= 100.0, measured
    assert measured["samples"] >= 1000, measured


def test_flat_neutral_light_reads_back_as_no_key_light() -> None:
    recipe = studio_image.neutral(LOOK)
    assert recipe.lighting == Lighting(direction_deg=135, kelvin=6500, strength=0.0)
    reference, placed = studio_image.render(photo("box"), cut_out("box"), recipe)
    lit, _ = studio_image.render(photo("box"), cut_out("box"), LOOK)
    flat = studio_image.measure_light(reference, reference, placed)
    assert flat["gradient"] < 1e-6
    assert abs(flat["kelvin"] - 6500) <= 1.0
    assert studio_image.measure_light(lit, reference, placed)["gradient"] > 0.1


# --- the logo -----------------------------------------------------------------------------------


@cache
def logo() -> Image.Image:
    return studio_image.open_rgba(products.logo())


def test_the_logo_lands_on_the_same_pixels_whatever_it_is_placed_on() -> None:
    anchor = LogoAnchor(x=0.8, y=0.15, scale=0.12)
    plain, _ = studio_image.render(photo("watch"), cut_out("watch"), Recipe(operation="bg_replace"))
    wood, _ = studio_image.render(
        photo("watch"),
        cut_out("watch"),
        msgspec.structs.replace(LOOK, lighting=Lighting(direction_deg=200, kelvin=4500, strength=0.4)),
    )
    boxes = []
    for render in (plain, wood):
        assert studio_image.find_logo(render, products.LOGO_COLOUR) is None, "no product has its colour"
        placed = studio_image.place_logo(render, logo(), anchor)
        boxes.append(studio_image.find_logo(placed, products.LOGO_COLOUR))
        touched = ImageChops.difference(placed, render).getbbox()
        box = studio_image.logo_box(render.size, logo().size, anchor)
        assert touched is not None
        assert box[0] <= touched[0], "nothing outside the logo's box changed"
        assert box[1] <= touched[1]
        assert touched[2] <= box[2]
        assert touched[3] <= box[3]
    assert boxes[0] == boxes[1] == studio_image.logo_box(plain.size, logo().size, anchor)
    assert boxes[0] == (444, 54, 516, 126)


@pytest.mark.parametrize("canvas", [(600, 600), (800, 450), (450, 800)])
@pytest.mark.parametrize("logo_size", [(256, 256), (300, 100)])
@pytest.mark.parametrize(("x", "y"), [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
@pytest.mark.parametrize("scale", [0.14, 0.5])
def test_the_logo_is_kept_inside_the_frame_at_the_corners(
    canvas: tuple[int, int], logo_size: tuple[int, int], x: float, y: float, scale: float
) -> None:
    w, h = canvas
    left, top, right, bottom = studio_image.logo_box(canvas, logo_size, LogoAnchor(x=x, y=y, scale=scale))
    assert 0 <= left < right <= w
    assert 0 <= top < bottom <= h
    assert right - left == round(w * scale), "its width is the anchor's share of the frame's"
    assert abs((bottom - top) - (right - left) * logo_size[1] / logo_size[0]) <= 1, "its shape is kept"
    assert (left == 0) if x == 0 else (right == w), "pushed against the corner it was put at"
    assert (top == 0) if y == 0 else (bottom == h)


def test_a_tall_logo_is_kept_inside_the_frame() -> None:
    left, top, right, bottom = studio_image.logo_box(
        (1000, 1000), (100, 300), LogoAnchor(x=0.5, y=0.5, scale=0.4)
    )
    assert 0 <= left < right <= 1000
    assert 0 <= top < bottom <= 1000


# --- a marketplace's rules ----------------------------------------------------------------------

UPLOAD = "upl_" + "a" * 24
PLATFORMS = StudioCatalog().current().platforms


def framed(name: str, look: Recipe) -> tuple[Recipe, Platform]:
    """The recipe the ``studio`` kind plans for a platform's render of ``look``."""
    stand_in = Artifact(
        name="original", kind="image", blob=BlobRef(key="0" * 64, size=1, content_type="image/png")
    )
    raw: dict[str, Any] = {
        "operation": "export",
        "upload": UPLOAD,
        "platforms": {name: msgspec.to_builtins(PLATFORMS[name])},
        "recipe": msgspec.to_builtins(look),
        "attached": {UPLOAD: msgspec.to_builtins(stand_in)},
    }
    [step] = [s for s in KINDS["studio"].steps(raw) if s.capability == "image.platform"]
    return msgspec.convert(step.params["recipe"], Recipe), PLATFORMS[name]


def rules(data: bytes, platform: Platform) -> dict[str, Any]:
    return {c["rule"]: c for c in studio_image.check_platform(data, platform)}


def rendered(name: str, recipe: Recipe) -> bytes:
    made, _ = studio_image.render(photo(name), cut_out(name), recipe)
    return studio_image.encode(made, recipe.format)


def test_a_white_background_render_at_the_platforms_fill_passes_its_rules() -> None:
    recipe, amazon = framed("amazon-main", LOOK)
    assert (recipe.fill, recipe.background.text(), recipe.format) == (0.85, "solid #ffffff", "jpeg")
    checks = rules(rendered("watch", recipe), amazon)
    assert {r: c["ok"] for r, c in checks.items()} == {
        "format": True,
        "long_side": True,
        "background": True,
        "fill": True,
    }, checks
    assert checks["long_side"]["measured"] == 2000
    assert abs(checks["fill"]["measured"] - 0.85) <= 0.02, checks["fill"]


def test_a_wood_texture_render_fails_the_white_background_rule() -> None:
    recipe, amazon = framed("amazon-main", LOOK)
    on_wood = msgspec.structs.replace(recipe, background=LOOK.background, shadow=LOOK.shadow, size=1000)
    checks = rules(rendered("watch", on_wood), amazon)
    assert checks["background"]["ok"] is False, checks
    assert checks["background"]["measured"] < 0.5
    assert checks["format"]["ok"] is True


def test_taobao_asks_for_exactly_800_by_800() -> None:
    recipe, taobao = framed("taobao-main", LOOK)
    exact = rules(rendered("shirt", recipe), taobao)
    assert exact["size"] == {"rule": "size", "ok": True, "measured": "800x800", "expected": "800x800"}
    assert all(c["ok"] for c in exact.values()), exact
    small = rules(rendered("shirt", msgspec.structs.replace(recipe, size=700)), taobao)
    assert small["size"]["ok"] is False
    assert small["size"]["measured"] == "700x700"
    as_png = rules(rendered("shirt", msgspec.structs.replace(recipe, format="png")), taobao)
    assert as_png["format"]["ok"] is False
    assert as_png["size"]["ok"] is True
