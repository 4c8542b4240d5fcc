"""A deterministic procedural painter: a storybook landscape chosen from the prompt, titled on a banner.

The scene (palette, sky, hills or sea, trees, sun or moon) depends only on the prompt and seed, so
two titles over one prompt differ only in the banner. Everything is drawn with whole-shape Pillow
operations; per-pixel Python loops would take seconds at 1024 px.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
from dataclasses import dataclass, replace

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

MODEL = "offline-painter-1"

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    sky_top: RGB
    sky_bottom: RGB
    hills: tuple[RGB, RGB, RGB]  # far to near: far hills are paler, as in real air
    light: RGB  # sun or moon
    foliage: RGB
    night: bool = False
    flowers: bool = True


def _palette(hexes: str, night: bool = False, flowers: bool = True) -> Palette:
    """Seven colours as hex: sky top, sky bottom, far, middle and near hills, sun or moon, foliage."""
    c = [(int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)) for h in hexes.split()]
    return Palette(c[0], c[1], (c[2], c[3], c[4]), c[5], c[6], night, flowers)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PALETTES: dict[str, Palette] = {
    "meadow": _palette("60a8ee ceecff a0cd8c 68ac5c 3a8246 ffec8c 286e3c"),
    "dawn": _palette("ffaa96 ffeeba c896aa 967096 62527c fff8d6 4c6050"),
    "dusk": _palette("402e76 fa946c 965a82 683e6e 3c2850 ffd278 281e3c"),
    "night": _palette("080e30 303e80 2c3868 1e2850 101834 f6f2d2 0c1e28", night=True),
    "ocean": _palette("50a4e6 c4e8fa ecd6a0 208caa 10608c fff096 327846"),
    "forest": _palette("96cec4 e8f6dc 78aa82 46825a 1e5638 fff4be 144628"),
    "desert": _palette("f6be6e ffecbe ecbe82 d8965a b46e42 fffadc 50783c"),
    "winter": _palette("a0c0e2 ecf4ff dce6f4 c4d2e6 f4f8ff fffae6 285a50", flowers=False),
    "candy": _palette("ffa0ce ffe8f6 beecd6 a0d6ec ceb0ec ffffd2 e66ea0"),
}
# Theme words steer the palette so a prompt about the sea looks like the sea.
THEMES: dict[str, frozenset[str]] = {
    "night": _words(
        "night moon star stars dream dreams sleep bedtime owl space planet astronaut rocket ghost"
    ),
    "ocean": _words(
        "sea ocean beach whale dolphin fish mermaid boat ship island pirate shell crab lighthouse"
    ),
    "forest": _words("forest woods tree trees jungle bear deer squirrel hedgehog"),
    "winter": _words("snow winter ice arctic penguin snowman frozen sled snowflake"),
    "desert": _words("desert sand camel dune pyramid cactus"),
    "dusk": _words("sunset evening dusk autumn lantern"),
    "dawn": _words("morning dawn sunrise spring bird"),
    "candy": _words("candy cake sweet unicorn fairy princess party cupcake rainbow"),
}
_WORD = re.compile(r"[a-z]+")


def render_illustration(
    prompt: str, title: str, seed: int = 0, size: int = 1024, look: str = "plain"
) -> bytes:
    """Paint a ``size`` pixel square PNG for the prompt, titled on a banner; same inputs, same bytes."""
    if not 64 <= size <= 4096:
        raise ValueError(f"size must be between 64 and 4096 pixels, got {size}")
    words = set(_WORD.findall(prompt.lower()))
    key = json.dumps([prompt, seed], ensure_ascii=False).encode()
    rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    palette = _jitter(PALETTES[_theme(words, rng)], rng)
    img = _gradient(size, size, palette.sky_top, palette.sky_bottom)
    horizon = int(size * rng.uniform(0.5, 0.66))
    _sky_features(img, palette, horizon, rng, rainbow="rainbow" in words or rng.random() < 0.25)
    if words & THEMES["ocean"]:
        _sea(img, palette, horizon, rng)
    else:
        _hills(img, palette, horizon, rng)
    img = finish(img, look)
    _banner(img, title)
    out = io.BytesIO()
    # Fixed options and no pnginfo: Pillow then writes no timestamp or text chunks.
    img.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def finish(img: Image.Image, look: str) -> Image.Image:
    """A style's finish (``atelier_contracts.styles``): flat cel colours with dark outlines, soft
    rendered light, pencil on paper, or ink washes; ``plain`` leaves the painting as it is."""
    if look == "cel":
        flat = ImageOps.posterize(img.filter(ImageFilter.ModeFilter(5)), 3)
        edges = img.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 24 else 0)
        return Image.composite(
            Image.new("RGB", img.size, (28, 22, 30)), flat, edges.filter(ImageFilter.MaxFilter(3))
        )
    if look == "soft":
        glow = img.filter(ImageFilter.GaussianBlur(max(2, img.width // 120)))
        return ImageEnhance.Contrast(Image.blend(img, glow, 0.55)).enhance(1.1)
    if look == "sketch":
        lines = ImageOps.invert(img.convert("L").filter(ImageFilter.FIND_EDGES)).point(
            lambda v: min(255, v + 30)
        )
        paper = Image.new("RGB", img.size, (246, 238, 222))
        wash = Image.blend(paper, img, 0.35)
        return ImageChops.multiply(wash, Image.merge("RGB", [lines] * 3))
    if look == "ink":
        grey = ImageOps.autocontrast(img.convert("L").filter(ImageFilter.GaussianBlur(1.5)))
        return ImageOps.colorize(ImageOps.posterize(grey, 3), (24, 24, 28), (242, 236, 224))
    return img


def _theme(words: set[str], rng: random.Random) -> str:
    for theme, cues in THEMES.items():
        if words & cues:
            return theme
    return rng.choice(["meadow", "dawn", "dusk", "forest", "candy"])


def _jitter(p: Palette, rng: random.Random) -> Palette:
    """Nudge every colour a little, so prompts that share a theme still get their own light."""
    shift = (rng.randint(-18, 18), rng.randint(-18, 18), rng.randint(-18, 18))

    def j(c: RGB) -> RGB:
        return (_clamp(c[0] + shift[0]), _clamp(c[1] + shift[1]), _clamp(c[2] + shift[2]))

    hills = (j(p.hills[0]), j(p.hills[1]), j(p.hills[2]))
    return replace(p, sky_top=j(p.sky_top), sky_bottom=j(p.sky_bottom), hills=hills, foliage=j(p.foliage))


def _clamp(v: int) -> int:
    return max(0, min(255, v))


def _gradient(width: int, height: int, top: RGB, bottom: RGB) -> Image.Image:
    mask = Image.linear_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    return Image.composite(
        Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), mask
    )


def _sky_features(img: Image.Image, p: Palette, horizon: int, rng: random.Random, rainbow: bool) -> None:
    size = img.width
    draw = ImageDraw.Draw(img, "RGBA")
    if p.night:
        for _ in range(rng.randint(80, 220)):
            x, y, r = rng.randrange(size), rng.randrange(horizon), rng.uniform(0.6, 2.6) * size / 1024
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 230, rng.randint(120, 255)))
    cx, cy = rng.uniform(0.15, 0.85) * size, rng.uniform(0.12, 0.32) * size
    r = rng.uniform(0.06, 0.11) * size
    for k in range(6, 0, -1):  # a soft halo from wide faint rings
        g = r * (1 + 0.18 * k)
        draw.ellipse((cx - g, cy - g, cx + g, cy + g), fill=(*p.light, 18))
    disc = Image.new("L", img.size)
    shape = ImageDraw.Draw(disc)
    shape.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    if p.night and rng.random() < 0.6:  # a crescent: the moon minus a disc shifted to one side
        off = r * rng.uniform(0.35, 0.6) * rng.choice([-1, 1])
        shape.ellipse((cx - r + off, cy - r - abs(off) / 3, cx + r + off, cy + r - abs(off) / 3), fill=0)
    img.paste(p.light, mask=disc)
    if not p.night:
        if rainbow:
            _rainbow(draw, rng.uniform(0.2, 0.8) * size, horizon, rng.uniform(0.25, 0.45) * size)
        for _ in range(rng.randint(1, 5)):
            _cloud(
                draw, rng.uniform(0, size), rng.uniform(0.08, 0.4) * size, size * rng.uniform(0.05, 0.09), rng
            )


def _rainbow(draw: ImageDraw.ImageDraw, cx: float, base: float, r: float) -> None:
    colours = [(230, 60, 60), (245, 150, 50), (245, 220, 70), (90, 190, 90), (70, 130, 220), (140, 90, 200)]
    band = r * 0.06
    for i, colour in enumerate(colours):
        g = r - i * band
        draw.arc((cx - g, base - g, cx + g, base + g), 180, 360, fill=(*colour, 150), width=int(band) + 1)


def _cloud(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, rng: random.Random) -> None:
    for _ in range(rng.randint(3, 6)):
        dx, dy, rr = rng.uniform(-2, 2) * r, rng.uniform(-0.4, 0.4) * r, r * rng.uniform(0.7, 1.3)
        draw.ellipse(
            (x + dx - rr, y + dy - rr * 0.7, x + dx + rr, y + dy + rr * 0.7), fill=(255, 255, 255, 200)
        )


def _ridge(size: int, base: float, amp: float, rng: random.Random) -> list[tuple[float, float]]:
    f1, f2 = rng.uniform(0.6, 2.2), rng.uniform(2.5, 5.0)
    ph1, ph2 = rng.uniform(0, math.tau), rng.uniform(0, math.tau)
    step = max(4, size // 64)
    turns = [math.tau * x / size for x in range(0, size + step, step)]
    return [
        (t * size / math.tau, base + amp * (math.sin(f1 * t + ph1) + 0.3 * math.sin(f2 * t + ph2)))
        for t in turns
    ]


def _hills(img: Image.Image, p: Palette, horizon: int, rng: random.Random) -> None:
    size = img.width
    draw = ImageDraw.Draw(img, "RGBA")
    layers = rng.randint(2, 3)
    ridge: list[tuple[float, float]] = []
    for i in range(layers):
        base = horizon + i * size * 0.09
        ridge = _ridge(size, base, size * rng.uniform(0.03, 0.08), rng)
        draw.polygon([*ridge, (size, size), (0, size)], fill=p.hills[i + 3 - layers])
    if p.flowers and not p.night:  # flowers speckle the nearest slope
        for _ in range(rng.randint(0, 60)):
            x, y = ridge[rng.randrange(len(ridge))]
            y += rng.uniform(0.02, 0.3) * (size - y)
            d = size * 0.005
            colour = rng.choice([(255, 255, 255), (255, 214, 80), (250, 130, 170), (190, 150, 255)])
            draw.ellipse((x - d, y - d, x + d, y + d), fill=colour)
    # Trees stand on the nearest ridge; their count and kind vary the layout most visibly.
    pine = rng.random() < 0.5
    for _ in range(rng.randint(2, 9)):
        x, y = ridge[rng.randrange(len(ridge))]
        _tree(draw, x, y + size * 0.01, size * rng.uniform(0.05, 0.1), p.foliage, pine)


def _tree(draw: ImageDraw.ImageDraw, x: float, y: float, h: float, colour: RGB, pine: bool) -> None:
    trunk = (96, 64, 40)
    draw.rectangle((x - h * 0.06, y - h * 0.4, x + h * 0.06, y), fill=trunk)
    if pine:
        for k in range(3):
            top, w = y - h * (1.1 - k * 0.22), h * (0.28 + k * 0.08)
            draw.polygon([(x, top), (x - w, top + h * 0.45), (x + w, top + h * 0.45)], fill=colour)
    else:
        r = h * 0.38
        draw.ellipse((x - r, y - h * 0.4 - 1.6 * r, x + r, y - h * 0.4 + 0.2 * r), fill=colour)


def _sea(img: Image.Image, p: Palette, horizon: int, rng: random.Random) -> None:
    size = img.width
    water = _gradient(size, size - horizon, p.hills[1], p.hills[2])
    img.paste(water, (0, horizon))
    draw = ImageDraw.Draw(img, "RGBA")
    if rng.random() < 0.7:  # an island with a tree or two
        cx, w = rng.uniform(0.2, 0.8) * size, rng.uniform(0.12, 0.25) * size
        draw.ellipse((cx - w, horizon - w * 0.25, cx + w, horizon + w * 0.25), fill=p.hills[0])
        _tree(draw, cx, horizon - w * 0.1, size * 0.09, p.foliage, pine=False)
    for _ in range(rng.randint(12, 30)):  # wave marks
        x, y = rng.uniform(0, size), rng.uniform(horizon + 10, size)
        w = size * rng.uniform(0.02, 0.05)
        draw.arc(
            (x - w, y - w / 3, x + w, y + w / 3),
            200,
            340,
            fill=(255, 255, 255, 150),
            width=max(1, size // 400),
        )


def _banner(img: Image.Image, title: str) -> None:
    text = " ".join(title.split())
    if not text:
        return
    size = img.width
    font_size = max(12, size // 16)
    font = ImageFont.load_default(size=font_size)
    lines = _wrap(text, font, size * 0.84)
    line_h = font_size * 1.25
    pad = size * 0.03
    top = size - pad - len(lines) * line_h - pad * 1.2
    draw = ImageDraw.Draw(img, "RGBA")
    draw.rounded_rectangle(
        (pad, top, size - pad, size - pad),
        radius=int(pad),
        fill=(255, 250, 236, 228),
        outline=(80, 64, 72, 200),
        width=max(1, size // 300),
    )
    for i, line in enumerate(lines):
        draw.text((size / 2, top + pad * 0.6 + i * line_h), line, font=font, fill=(40, 32, 48), anchor="ma")


def _wrap(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float, max_lines: int = 3
) -> list[str]:
    """Greedy word wrap by rendered width; an overlong title is cut with an ellipsis."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += " …"
    for i, line in enumerate(lines):
        while font.getlength(line) > width and len(line) > 2:
            line = line[:-2] + "…"
        lines[i] = line
    return lines
