"""The studio's image operations, for real and deterministically, with Pillow alone.

``segment`` cuts a studio-style product photo from its background by colour distance from the
background's colour (taken at the border), closes small gaps, fills holes from outside in and
feathers the edge. ``render`` makes a candidate from the original photo and a ``Recipe``: clean-up
(grey-world white balance, exposure, a touch of contrast), colour tone, relight (a key light's
direction as a gain across the product and its colour temperature as per-channel gains), a new
background (solid, gradient or a procedural texture) with a soft contact shadow from the mask,
framed as the recipe says. ``place_logo`` puts a logo at its anchor, to the pixel, on any
provider's output. ``check_platform`` measures a marketplace's rules on the encoded file, and
``measure_light`` and ``find_logo`` read back what the tests and the golden run hold a session to.

Every candidate is rendered from the original, so what a round did not change comes out the same.
"""

from __future__ import annotations

import io
import math
import random
import statistics
from typing import Any

import msgspec
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageMath, ImageOps

from atelier_contracts.studio import (
    NEUTRAL_KELVIN,
    Background,
    Lighting,
    LogoAnchor,
    Recipe,
    kelvin_gains,
    kelvin_of_ratio,
    light_vector,
)

MAX_SIDE = 2048
"""A candidate's long side when the recipe names none (the original's, up to this)."""
WORK_SIDE = 384
"""The segmentation's working resolution: the mask is found here and scaled up, feathered."""
MODEL = "offline-studio-1"


def open_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.convert("RGB")


def open_rgba(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.convert("RGBA")


def encode(img: Image.Image, fmt: str, quality: int = 92) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        img.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
    else:
        img.save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()


# --- segmentation -----------------------------------------------------------------------------


def border_colour(img: Image.Image, strip: int = 3) -> tuple[int, int, int]:
    """The median colour of the outermost pixels: a studio photo's backdrop."""
    w, h = img.size
    pixels: list[tuple[int, int, int]] = []
    for box in ((0, 0, w, strip), (0, h - strip, w, h), (0, 0, strip, h), (w - strip, 0, w, h)):
        pixels.extend(img.crop(box).get_flattened_data())  # type: ignore[arg-type]
    return (
        int(statistics.median(p[0] for p in pixels)),
        int(statistics.median(p[1] for p in pixels)),
        int(statistics.median(p[2] for p in pixels)),
    )


def _distance(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    r, g, b = ImageChops.difference(img, Image.new("RGB", img.size, colour)).split()
    return ImageChops.lighter(ImageChops.lighter(r, g), b)


def segment(img: Image.Image) -> Image.Image:
    """The product's mask (mode L, 255 inside, feathered at the edge) at the image's size."""
    w, h = img.size
    scale = WORK_SIDE / max(w, h)
    small = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    backdrop = border_colour(small)
    distance = _distance(small, backdrop)
    edge = [v for v in _border_values(distance)]
    noise = sorted(edge)[int(len(edge) * 0.98)] if edge else 0
    threshold = max(18, noise + 10)
    fg = distance.point(lambda v: 255 if v > threshold else 0)
    fg = fg.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(5))  # close gaps
    fg = fg.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))  # drop specks
    # holes: whatever the outside cannot reach is the product (a white label on a white shoe)
    framed = ImageOps.expand(fg, border=1, fill=0)
    ImageDraw.floodfill(framed, (0, 0), 128)
    inside = framed.crop((1, 1, framed.width - 1, framed.height - 1)).point(lambda v: 0 if v == 128 else 255)
    return inside.resize((w, h), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1.0))


def _border_values(img: Image.Image, strip: int = 2) -> list[int]:
    w, h = img.size
    values: list[int] = []
    for box in ((0, 0, w, strip), (0, h - strip, w, h), (0, 0, strip, h), (w - strip, 0, w, h)):
        values.extend(img.crop(box).get_flattened_data())  # type: ignore[arg-type]
    return values


def mask_png(mask: Image.Image) -> bytes:
    """The mask as an image-edit API takes it: transparent where the model may paint (the
    background), opaque over the product."""
    rgba = Image.new("RGBA", mask.size, (0, 0, 0, 255))
    rgba.putalpha(mask.point(lambda v: 255 if v >= 128 else 0))
    return encode(rgba, "png")


# --- clean-up, tone and light -----------------------------------------------------------------


def clean_up(img: Image.Image, mask: Image.Image) -> Image.Image:
    """White balance from the backdrop (a studio's backdrop is meant to be neutral: its cast is
    the light's, and comes off the product too), exposure from the product's pixels, and a
    little contrast."""
    backdrop = border_colour(img)
    grey = sum(backdrop) / 3 or 1.0
    balanced = Image.merge(
        "RGB", [ch.point(_scale(grey / max(c, 1))) for ch, c in zip(img.split(), backdrop, strict=True)]
    )
    level = masked_mean(balanced.convert("L"), mask)
    gain = min(max(118.0 / max(level, 1.0), 0.8), 1.35)
    exposed = balanced.point(_scale(gain) * 3)
    return ImageEnhance.Contrast(exposed).enhance(1.08)


def _scale(k: float) -> list[int]:
    """A lookup table that multiplies a channel by ``k``."""
    return [min(255, round(v * k)) for v in range(256)]


def masked_mean(channel: Image.Image, mask: Image.Image) -> float:
    hist = channel.histogram(mask.point(lambda v: 255 if v >= 128 else 0))
    total = sum(hist)
    return sum(i * n for i, n in enumerate(hist)) / total if total else 128.0


def gain_field(size: tuple[int, int], bbox: tuple[int, int, int, int], lighting: Lighting) -> Image.Image:
    """Mode F: 1 + strength x how far towards the light a pixel is, across the product's box."""
    w, h = size
    x0, y0, x1, y1 = bbox
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    reach = max(math.hypot(x1 - x0, y1 - y0) / 2, 1.0)
    dx, dy = light_vector(lighting.direction_deg)
    grid = 64
    field = Image.new("F", (grid, grid))
    field.putdata(
        [
            1.0
            + lighting.strength
            * ((gx * (w - 1) / (grid - 1) - cx) * dx + (gy * (h - 1) / (grid - 1) - cy) * dy)
            / reach
            for gy in range(grid)
            for gx in range(grid)
        ]
    )
    return field.resize((w, h), Image.Resampling.BILINEAR)


def relight(img: Image.Image, gain: Image.Image, kelvin: int) -> Image.Image:
    """Each channel times the light's gain there and its colour temperature's gain."""
    gains = kelvin_gains(kelvin)
    channels = []
    for ch, k in zip(img.split(), gains, strict=True):
        # + 0.5: rounded, not truncated; truncation darkens a dim blue more than a bright red,
        # and a red product read back 160 K warmer than it was lit
        lit = ImageMath.lambda_eval(lambda a: a["c"] * a["g"] * a["k"] + 0.5, c=ch.convert("F"), g=gain, k=k)
        assert isinstance(lit, Image.Image)
        channels.append(lit.convert("L"))
    return Image.merge("RGB", channels)


# --- backgrounds ------------------------------------------------------------------------------


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _noise_row(rng: random.Random, length: int, smooth: int) -> list[float]:
    raw = [rng.random() for _ in range(length + smooth)]
    return [sum(raw[i : i + smooth]) / smooth for i in range(length)]


def background(size: tuple[int, int], spec: Background, variant: int) -> Image.Image:
    w, h = size
    if spec.kind == "gradient":
        top, bottom = (_hex(c) for c in (list(spec.colors) * 2)[:2])
        ramp = Image.linear_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
        return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)
    if spec.kind == "texture":
        return _texture(size, spec.texture, variant)
    return Image.new("RGB", size, _hex(spec.colors[0]) if spec.colors else (255, 255, 255))


_TEXTURES: dict[str, tuple[str, str]] = {
    "wood": ("#6e4526", "#c99a62"),
    "marble": ("#b9bcc4", "#f6f6f8"),
    "linen": ("#cfc4b0", "#ece5d6"),
}


def _texture(size: tuple[int, int], name: str, variant: int) -> Image.Image:
    """A procedural surface, the same for the same (name, variant, size)."""
    rng = random.Random(f"{name}:{variant}")
    gw, gh = 256, 256
    wobble = _noise_row(rng, gh, 9)
    grain = _noise_row(rng, gw, 3)
    values: list[float] = []
    phase = rng.random() * math.tau
    slow = _noise_row(rng, gw, 48)
    for y in range(gh):
        for x in range(gw):
            if name == "wood":  # planks' rings along the table, gently warped, fine grain across
                ring = y * 0.11 + 4 * math.sin(x * 0.02 + phase) + 14 * slow[x]
                v = 0.55 + 0.25 * math.sin(ring) + 0.06 * (grain[y] - 0.5) + 0.06 * math.sin(ring * 3.1)
            elif name == "marble":  # pale stone, thin dark veins
                v = 1.0 - 0.6 * abs(math.sin((x * 0.7 + y * 0.4 + 60 * wobble[y]) * 0.05)) ** 8
            else:  # linen: a fine weave
                v = 0.6 + 0.2 * math.sin(x * 1.3) * math.sin(y * 1.3) + 0.2 * grain[(x + y) % gw]
            values.append(min(max(v, 0.0), 1.0) * 255)
    field = Image.new("L", (gw, gh))
    field.putdata(values)
    dark, light = _TEXTURES.get(name, _TEXTURES["wood"])
    coloured = ImageOps.colorize(field, dark, light)
    return coloured.resize(size, Image.Resampling.BICUBIC)


def contact_shadow(canvas: tuple[int, int], mask: Image.Image, opacity: float) -> Image.Image:
    """Mode L, 255 = full shade: the product's footprint squashed under it and blurred."""
    bbox = mask.getbbox()
    shade = Image.new("L", canvas, 0)
    if bbox is None or opacity <= 0:
        return shade
    x0, y0, x1, y1 = bbox
    height = max(2, round((y1 - y0) * 0.12))
    foot = mask.crop(bbox).resize((x1 - x0, height), Image.Resampling.BILINEAR)
    shade.paste(foot.point(lambda v: round(v * opacity)), (x0, y1 - height // 2))
    return shade.filter(ImageFilter.GaussianBlur(max(2.0, (x1 - x0) * 0.03)))


# --- a candidate ------------------------------------------------------------------------------


def canvas_of(original: tuple[int, int], recipe: Recipe) -> tuple[int, int]:
    w, h = original
    long_side = recipe.size or min(max(w, h), MAX_SIDE)
    if recipe.square:
        return long_side, long_side
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def placement(
    original: tuple[int, int], bbox: tuple[int, int, int, int], canvas: tuple[int, int], recipe: Recipe
) -> tuple[float, tuple[int, int]]:
    """How the original is scaled and where its top-left corner lands on the canvas."""
    w, h = original
    cw, ch = canvas
    if recipe.fill is not None:
        x0, y0, x1, y1 = bbox
        scale = recipe.fill * max(cw, ch) / max(x1 - x0, y1 - y0, 1)
        cx, cy = (x0 + x1) / 2 * scale, (y0 + y1) / 2 * scale
        return scale, (round(cw / 2 - cx), round(ch / 2 - cy))
    scale = min(cw / w, ch / h)
    return scale, (round((cw - w * scale) / 2), round((ch - h * scale) / 2))


def render(original: Image.Image, mask: Image.Image, recipe: Recipe) -> tuple[Image.Image, Image.Image]:
    """A candidate and the product's mask on it, from the original photo and its mask."""
    bbox = mask.point(lambda v: 255 if v >= 128 else 0).getbbox() or (0, 0, *original.size)
    product = clean_up(original, mask)
    if recipe.tone.saturation != 1.0:
        product = ImageEnhance.Color(product).enhance(recipe.tone.saturation)
    keep = recipe.background.kind == "keep"
    gain = gain_field(original.size, bbox, recipe.lighting)
    product = relight(product, gain, recipe.lighting.kelvin)
    canvas = canvas_of(original.size, recipe)
    scale, (ox, oy) = placement(original.size, bbox, canvas, recipe)
    scaled = (max(1, round(original.width * scale)), max(1, round(original.height * scale)))
    product = product.resize(scaled, Image.Resampling.LANCZOS)
    placed_mask = Image.new("L", canvas, 0)
    placed_mask.paste(mask.resize(scaled, Image.Resampling.BILINEAR), (ox, oy))
    if keep:
        out = Image.new("RGB", canvas, border_colour(product))
        out.paste(product, (ox, oy))
        return out, placed_mask
    out = background(canvas, recipe.background, recipe.variant)
    shade = contact_shadow(canvas, placed_mask, recipe.shadow)
    out = Image.composite(Image.new("RGB", canvas, (20, 16, 12)), out, shade)
    layer = Image.new("RGB", canvas)
    layer.paste(product, (ox, oy))
    out = Image.composite(layer, out, placed_mask)
    return out, placed_mask


def neutral(recipe: Recipe) -> Recipe:
    """``recipe`` under flat neutral light: the reference ``measure_light`` compares with."""
    flat = Lighting(direction_deg=recipe.lighting.direction_deg, kelvin=NEUTRAL_KELVIN, strength=0.0)
    return msgspec.structs.replace(recipe, lighting=flat, logo=None)


# --- the logo ---------------------------------------------------------------------------------


def logo_box(canvas: tuple[int, int], logo: tuple[int, int], anchor: LogoAnchor) -> tuple[int, int, int, int]:
    """Where a logo of this size lands: its width ``scale`` of the frame's, centred on the anchor,
    kept inside the frame. Integer arithmetic on the same inputs: the same pixels every round."""
    cw, ch = canvas
    width = max(4, round(cw * anchor.scale))
    height = max(1, round(width * logo[1] / max(logo[0], 1)))
    if height > ch:  # a tall logo: as tall as the frame, no taller
        width, height = max(1, round(width * ch / height)), ch
    left = min(max(round(cw * anchor.x - width / 2), 0), max(cw - width, 0))
    top = min(max(round(ch * anchor.y - height / 2), 0), max(ch - height, 0))
    return left, top, left + width, top + height


def place_logo(img: Image.Image, logo: Image.Image, anchor: LogoAnchor) -> Image.Image:
    box = logo_box(img.size, logo.size, anchor)
    sized = logo.convert("RGBA").resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)
    out = img.convert("RGB").copy()
    out.paste(sized, box[:2], sized)
    return out


def find_logo(
    img: Image.Image, colour: tuple[int, int, int], tolerance: int = 40
) -> tuple[int, int, int, int] | None:
    """The box of the pixels of the logo's colour (the tests' logo is a magenta no product has)."""
    near = _distance(img.convert("RGB"), colour).point(lambda v: 255 if v <= tolerance else 0)
    return near.getbbox()


# --- reading a result back --------------------------------------------------------------------


def measure_light(result: Image.Image, reference: Image.Image, mask: Image.Image) -> dict[str, float]:
    """The key light's direction and colour temperature on ``result``, against the same product
    under flat neutral light (``reference``): per product pixel, red over blue of the two images'
    ratio gives the temperature (``kelvin_of_ratio``); a plane fitted to green's ratio across the
    product points at the light."""
    w, h = result.size
    step = max(1, round(math.sqrt(w * h / 40000)))
    inner = mask.filter(ImageFilter.MinFilter(5))
    rs, ref, m = result.load(), reference.load(), inner.load()
    if rs is None or ref is None or m is None:
        raise ValueError("the images could not be read")
    points: list[tuple[float, float, float]] = []
    red_blue, blue_red = 0.0, 0.0
    for y in range(0, h, step):
        for x in range(0, w, step):
            if m[x, y] < 250:  # type: ignore[operator]
                continue
            a, b = rs[x, y], ref[x, y]
            if not isinstance(a, tuple) or not isinstance(b, tuple):
                raise ValueError("RGB images only")
            if min(b) < 8 or max(a) > 250 or b[1] < 24:
                continue  # clipped, or too dark to divide by
            # R and B share the light's gain at a pixel, so Σ aR·bB / Σ bR·aB is exactly the
            # temperature's red/blue ratio, weighted by brightness rather than spoilt by dark pixels
            red_blue += a[0] * b[2]
            blue_red += b[0] * a[2]
            points.append((x / w, y / h, a[1] / b[1]))
    if len(points) < 30:
        raise ValueError("too few product pixels to measure the light on")
    kelvin = kelvin_of_ratio(red_blue / max(blue_red, 1e-9))
    gx, gy = _plane(points)
    direction = math.degrees(math.atan2(-gy, gx)) % 360
    return {
        "kelvin": kelvin,
        "direction_deg": direction,
        "gradient": math.hypot(gx, gy),
        "samples": len(points),
    }


def _plane(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """The slope in x and y of the least-squares plane through (x, y, v)."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    mv = sum(p[2] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    syy = sum((p[1] - my) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    sxv = sum((p[0] - mx) * (p[2] - mv) for p in points)
    syv = sum((p[1] - my) * (p[2] - mv) for p in points)
    det = sxx * syy - sxy * sxy or 1e-12
    return (sxv * syy - syv * sxy) / det, (syv * sxx - sxv * sxy) / det


def check_platform(data: bytes, rules: Any) -> list[dict[str, Any]]:
    """Each of a platform's rules (``atelier_contracts.studio_catalog.Platform``) measured on the
    file: its size, its format, how white its border is and how much of the frame the product fills."""
    with Image.open(io.BytesIO(data)) as img:
        fmt = (img.format or "").lower()
        rgb = img.convert("RGB")
    w, h = rgb.size
    checks: list[dict[str, Any]] = []

    def rule(name: str, ok: bool, measured: object, expected: object) -> None:
        checks.append({"rule": name, "ok": ok, "measured": measured, "expected": expected})

    rule("format", fmt == rules.format, fmt, rules.format)
    if rules.width and rules.height:
        rule("size", (w, h) == (rules.width, rules.height), f"{w}x{h}", f"{rules.width}x{rules.height}")
    if rules.min_long_side:
        rule("long_side", max(w, h) >= rules.min_long_side, max(w, h), f">= {rules.min_long_side}")
    if rules.background:
        white = _hex(rules.background)
        edge = _border_values(_distance(rgb, white), strip=max(2, min(w, h) // 100))
        share = sum(1 for v in edge if v <= rules.background_tolerance) / max(len(edge), 1)
        rule(
            "background",
            share >= 0.99,
            round(share, 4),
            f"{rules.background} within {rules.background_tolerance}",
        )
        product = _distance(rgb, white).point(lambda v: 255 if v > rules.background_tolerance * 2 else 0)
        bbox = product.filter(ImageFilter.MinFilter(3)).getbbox()
        fill = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / max(w, h) if bbox else 0.0
        low, high = rules.fill_min, rules.fill_max
        rule("fill", low <= fill <= high, round(fill, 3), f"{low:.2f}..{high:.2f}")
    return checks
