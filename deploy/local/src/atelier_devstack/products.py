"""Studio-style product photos, drawn procedurally: the golden set's cases and the tests' photos.

Each is a product on a pale seamless backdrop (a faint vertical falloff and a little sensor noise,
as a real studio shot has), the same bytes for the same (name, size). No product uses the
tests' logo colour (``LOGO_COLOUR``), so a logo is found on a result by its colour alone.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageChops, ImageDraw, ImageFilter

LOGO_COLOUR = (230, 0, 126)
Draw = Callable[[ImageDraw.ImageDraw, int, tuple[int, int, int], tuple[int, int, int]], None]


def _shoe(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.polygon(
        [
            (0.18 * s, 0.62 * s),
            (0.30 * s, 0.40 * s),
            (0.50 * s, 0.42 * s),
            (0.82 * s, 0.58 * s),
            (0.84 * s, 0.68 * s),
            (0.18 * s, 0.68 * s),
        ],
        fill=a,
    )
    d.rectangle([0.17 * s, 0.68 * s, 0.85 * s, 0.72 * s], fill=b)
    for i in range(4):
        d.line(
            [(0.34 * s + i * 0.04 * s, 0.45 * s), (0.40 * s + i * 0.04 * s, 0.52 * s)],
            fill=b,
            width=max(2, s // 150),
        )


def _watch(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.rounded_rectangle([0.43 * s, 0.12 * s, 0.57 * s, 0.88 * s], radius=s // 40, fill=b)
    d.ellipse([0.32 * s, 0.32 * s, 0.68 * s, 0.68 * s], fill=a)
    d.ellipse([0.36 * s, 0.36 * s, 0.64 * s, 0.64 * s], fill=(236, 234, 226))
    d.line([(0.5 * s, 0.5 * s), (0.5 * s, 0.40 * s)], fill=(30, 30, 30), width=max(2, s // 120))
    d.line([(0.5 * s, 0.5 * s), (0.58 * s, 0.5 * s)], fill=(30, 30, 30), width=max(2, s // 160))


def _cup(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.ellipse([0.62 * s, 0.40 * s, 0.80 * s, 0.62 * s], outline=a, width=s // 30)
    d.polygon(
        [(0.28 * s, 0.32 * s), (0.68 * s, 0.32 * s), (0.64 * s, 0.76 * s), (0.32 * s, 0.76 * s)], fill=a
    )
    d.rectangle([0.30 * s, 0.46 * s, 0.66 * s, 0.54 * s], fill=b)


def _shirt(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.polygon(
        [
            (0.35 * s, 0.2 * s),
            (0.65 * s, 0.2 * s),
            (0.85 * s, 0.35 * s),
            (0.76 * s, 0.45 * s),
            (0.68 * s, 0.4 * s),
            (0.68 * s, 0.82 * s),
            (0.32 * s, 0.82 * s),
            (0.32 * s, 0.4 * s),
            (0.24 * s, 0.45 * s),
            (0.15 * s, 0.35 * s),
        ],
        fill=a,
    )
    d.ellipse([0.43 * s, 0.17 * s, 0.57 * s, 0.27 * s], fill=b)


def _phone(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.rounded_rectangle([0.34 * s, 0.14 * s, 0.66 * s, 0.86 * s], radius=s // 18, fill=a)
    d.rounded_rectangle([0.36 * s, 0.18 * s, 0.64 * s, 0.80 * s], radius=s // 40, fill=b)


def _bottle(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.rectangle([0.45 * s, 0.12 * s, 0.55 * s, 0.26 * s], fill=b)
    d.rounded_rectangle([0.36 * s, 0.26 * s, 0.64 * s, 0.86 * s], radius=s // 14, fill=a)
    d.rectangle([0.36 * s, 0.48 * s, 0.64 * s, 0.64 * s], fill=b)


def _box(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.polygon(
        [(0.25 * s, 0.35 * s), (0.55 * s, 0.25 * s), (0.78 * s, 0.33 * s), (0.48 * s, 0.44 * s)], fill=b
    )
    d.polygon(
        [(0.25 * s, 0.35 * s), (0.48 * s, 0.44 * s), (0.48 * s, 0.80 * s), (0.25 * s, 0.70 * s)], fill=a
    )
    d.polygon(
        [(0.48 * s, 0.44 * s), (0.78 * s, 0.33 * s), (0.78 * s, 0.68 * s), (0.48 * s, 0.80 * s)],
        fill=tuple(max(0, c - 40) for c in a),
    )


def _round(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.ellipse([0.25 * s, 0.25 * s, 0.75 * s, 0.75 * s], fill=a)
    d.ellipse([0.40 * s, 0.33 * s, 0.52 * s, 0.43 * s], fill=b)


def _headphones(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.arc([0.25 * s, 0.18 * s, 0.75 * s, 0.70 * s], 180, 360, fill=b, width=s // 28)
    d.rounded_rectangle([0.20 * s, 0.42 * s, 0.34 * s, 0.70 * s], radius=s // 30, fill=a)
    d.rounded_rectangle([0.66 * s, 0.42 * s, 0.80 * s, 0.70 * s], radius=s // 30, fill=a)


def _lamp(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.polygon(
        [(0.35 * s, 0.18 * s), (0.65 * s, 0.18 * s), (0.75 * s, 0.42 * s), (0.25 * s, 0.42 * s)], fill=a
    )
    d.rectangle([0.48 * s, 0.42 * s, 0.52 * s, 0.78 * s], fill=b)
    d.ellipse([0.36 * s, 0.76 * s, 0.64 * s, 0.84 * s], fill=b)


def _bag(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.arc([0.36 * s, 0.16 * s, 0.64 * s, 0.46 * s], 180, 360, fill=b, width=s // 40)
    d.rounded_rectangle([0.26 * s, 0.30 * s, 0.74 * s, 0.82 * s], radius=s // 16, fill=a)
    d.rectangle([0.26 * s, 0.44 * s, 0.74 * s, 0.48 * s], fill=b)


def _glasses(d: ImageDraw.ImageDraw, s: int, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    d.ellipse([0.18 * s, 0.40 * s, 0.46 * s, 0.60 * s], fill=a, outline=b, width=s // 60)
    d.ellipse([0.54 * s, 0.40 * s, 0.82 * s, 0.60 * s], fill=a, outline=b, width=s // 60)
    d.line([(0.46 * s, 0.47 * s), (0.54 * s, 0.47 * s)], fill=b, width=s // 60)


PRODUCTS: dict[str, tuple[Draw, tuple[int, int, int], tuple[int, int, int]]] = {
    "shoe": (_shoe, (196, 64, 44), (245, 245, 240)),
    "sneaker": (_shoe, (40, 92, 170), (250, 250, 250)),
    "watch": (_watch, (120, 120, 128), (44, 40, 36)),
    "cup": (_cup, (40, 120, 110), (240, 226, 190)),
    "mug": (_cup, (210, 150, 40), (60, 40, 30)),
    "shirt": (_shirt, (70, 110, 160), (230, 230, 235)),
    "tshirt": (_shirt, (150, 40, 50), (30, 30, 30)),
    "phone": (_phone, (30, 30, 34), (60, 90, 140)),
    "tablet": (_phone, (180, 180, 186), (20, 24, 30)),
    "bottle": (_bottle, (60, 140, 70), (240, 240, 232)),
    "perfume": (_bottle, (200, 170, 90), (90, 60, 40)),
    "box": (_box, (170, 120, 70), (215, 175, 120)),
    "speaker": (_box, (50, 52, 60), (110, 112, 120)),
    "ball": (_round, (230, 120, 30), (255, 220, 180)),
    "orange": (_round, (240, 150, 20), (255, 240, 200)),
    "headphones": (_headphones, (35, 35, 40), (90, 90, 96)),
    "lamp": (_lamp, (240, 200, 90), (60, 60, 64)),
    "backpack": (_bag, (90, 120, 60), (40, 50, 30)),
    "handbag": (_bag, (120, 50, 30), (200, 160, 90)),
    "sunglasses": (_glasses, (30, 40, 50), (170, 130, 60)),
    "candle": (_bottle, (245, 235, 215), (180, 140, 100)),
    "vase": (_cup, (70, 90, 150), (220, 220, 230)),
}


def photo(name: str, size: int = 1200) -> bytes:
    """A product photo as PNG bytes (a studio backdrop, soft daylight, a little noise)."""
    draw, main, accent = PRODUCTS[name]
    rng = random.Random(name)
    backdrop = Image.linear_gradient("L").resize((size, size)).point(lambda v: 238 - v // 24)
    img = Image.merge("RGB", [backdrop.point(lambda v, t=t: v + t) for t in (0, -1, -4)])
    product = Image.new("RGB", (size, size))
    draw(ImageDraw.Draw(product), size, main, accent)
    silhouette = Image.new("RGB", (size, size))
    draw(ImageDraw.Draw(silhouette), size, (255, 255, 255), (255, 255, 255))
    mask = silhouette.convert("L").point(lambda v: 255 if v else 0)
    # soft daylight from above: the product's lower part a little darker
    falloff = Image.linear_gradient("L").resize((size, size)).point(lambda v: 255 - v // 2)
    product = Image.composite(product, product.point(lambda v: v * 82 // 100), falloff)
    img.paste(product, (0, 0), mask.filter(ImageFilter.GaussianBlur(1.2)))
    grain = bytes(rng.randrange(124, 133) for _ in range((size // 4) ** 2))
    noise = Image.frombytes("L", (size // 4, size // 4), grain).resize((size, size), Image.Resampling.NEAREST)
    img = ImageChops.add(img, Image.merge("RGB", [noise] * 3), offset=-128)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def logo(size: int = 256) -> bytes:
    """The tests' logo: a magenta disc with a white bar, on transparency."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse([0, 0, size - 1, size - 1], fill=(*LOGO_COLOUR, 255))
    d.rectangle([size * 0.25, size * 0.44, size * 0.75, size * 0.56], fill=(255, 255, 255, 255))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()
