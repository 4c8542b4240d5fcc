"""The product-photo studio's vocabulary: what a candidate is made with (a ``Recipe``), how a
session's context says it, and how a shop owner's words change it.

A studio session's context holds the settled look in canonical text, one field each:
``lighting`` = ``"from 135°, 5200 K, strength 0.25"``, ``color_tone`` = ``"saturation 1.10"``,
``logo_anchor`` = ``"at 0.82, 0.12, scale 0.16"``, ``perspective`` free text, and in ``extra``:
``background`` (``"solid #ffffff"``, ``"gradient #f5efe6 #d8c8ad"``, ``"texture wood"``),
``shadow`` (``"0.45"``), ``source`` and ``logo`` (upload ids). Every candidate is rendered from the
*original* upload with a whole recipe, never from the previous round's pixels, so five rounds of
refinement do not compound: what a round did not change is rendered exactly as before.

Pure and deterministic: the gateway turns a request into recipes here, the kind plans a step per
recipe, and a worker renders one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from atelier_contracts.sessions import SessionContext

Operation = Literal["optimize", "bg_replace", "refine"]
OPERATIONS: tuple[str, ...] = ("optimize", "bg_replace", "refine")
NEUTRAL_KELVIN = 6500
DEFAULT_SHADOW = 0.45
Hex = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-f]{6}$")]


class Lighting(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    direction_deg: Annotated[int, msgspec.Meta(ge=0, le=359)] = 90
    """Where the key light comes from, counter-clockwise from the right: 90 is from above, 180
    from the left."""
    kelvin: Annotated[int, msgspec.Meta(ge=2000, le=12000)] = NEUTRAL_KELVIN
    strength: Annotated[float, msgspec.Meta(ge=0, le=0.6)] = 0.2
    """How much brighter the lit side is than the middle (0: flat light)."""

    def text(self) -> str:
        return f"from {self.direction_deg}°, {self.kelvin} K, strength {self.strength:.3f}"


class Tone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    saturation: Annotated[float, msgspec.Meta(ge=0.3, le=2.0)] = 1.0

    def text(self) -> str:
        return f"saturation {self.saturation:.3f}"


class LogoAnchor(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the logo's centre sits, as fractions of the frame, and its width as one of the frame's."""

    x: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.85
    y: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.12
    scale: Annotated[float, msgspec.Meta(ge=0.03, le=0.5)] = 0.14

    def text(self) -> str:
        return f"at {self.x:.4f}, {self.y:.4f}, scale {self.scale:.4f}"


class Background(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["keep", "solid", "gradient", "texture"] = "solid"
    """``keep``: the photo's own background, cleaned up (``optimize``)."""
    colors: Annotated[tuple[Hex, ...], msgspec.Meta(max_length=2)] = ("#ffffff",)
    texture: Literal["wood", "marble", "linen"] = "wood"

    def text(self) -> str:
        if self.kind == "texture":
            return f"texture {self.texture}"
        if self.kind == "keep":
            return "keep"
        return " ".join([self.kind, *self.colors])


class Recipe(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Everything one candidate is rendered with, from the original photo."""

    operation: Operation
    background: Background = Background()
    lighting: Lighting = Lighting()
    tone: Tone = Tone()
    logo: LogoAnchor | None = None
    """None: no logo (or none uploaded)."""
    perspective: Annotated[str, msgspec.Meta(max_length=200)] = "front"
    shadow: Annotated[float, msgspec.Meta(ge=0, le=0.9)] = DEFAULT_SHADOW
    """The contact shadow's opacity under the product."""
    variant: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    """Which of a round's candidates: textures and framing differ by it, nothing else."""
    prompt: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    """What a remote model is asked (the template filled in); the offline editor reads the rest."""
    fill: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    """Scale and centre the product to fill this share of the frame's long side (a platform's rule)."""
    size: Annotated[int, msgspec.Meta(ge=64, le=4096)] | None = None
    """The output's long side (default: the original's, at most 2048)."""
    square: bool = False
    format: Literal["png", "jpeg"] = "png"


# --- the context in canonical text ----------------------------------------------------------

_LIGHTING = re.compile(r"from\s+(\d{1,3})\s*°?\s*,\s*(\d{4,5})\s*K(?:\s*,\s*strength\s+([\d.]+))?", re.I)
_TONE = re.compile(r"saturation\s+([\d.]+)", re.I)
_LOGO = re.compile(r"at\s+([\d.]+)\s*,\s*([\d.]+)\s*,\s*scale\s+([\d.]+)", re.I)
_HEX = re.compile(r"#[0-9a-fA-F]{6}")


class ContextUnreadable(ValueError):
    """A context field is not in the studio's canonical form."""


T = TypeVar("T")


def _number(text: str, field: str) -> float:
    """A finite number, or ``ContextUnreadable`` naming the field ("1.2.3", "nan")."""
    try:
        value = float(text)
    except ValueError:
        raise ContextUnreadable(f"{field}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ContextUnreadable(f"{field}: {text!r} is not a number")
    return value


def _convert(raw: Mapping[str, object], kind: type[T], field: str) -> T:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise ContextUnreadable(f"{field}: {exc}") from None


def parse_lighting(text: str | None) -> Lighting:
    if not text:
        return Lighting()
    found = _LIGHTING.search(text)
    if found is None:
        raise ContextUnreadable(f"lighting: say it as 'from 135°, 5200 K', not {text!r}")
    raw: dict[str, object] = {"direction_deg": int(found[1]) % 360, "kelvin": int(found[2])}
    if found[3]:
        raw["strength"] = _number(found[3], "lighting")
    return _convert(raw, Lighting, "lighting")


def parse_tone(text: str | None) -> Tone:
    if not text:
        return Tone()
    found = _TONE.search(text)
    if found is None:
        raise ContextUnreadable(f"color_tone: say it as 'saturation 1.10', not {text!r}")
    return _convert({"saturation": _number(found[1], "color_tone")}, Tone, "color_tone")


def parse_logo(text: str | None) -> LogoAnchor:
    if not text:
        return LogoAnchor()
    found = _LOGO.search(text)
    if found is None:
        raise ContextUnreadable(f"logo_anchor: say it as 'at 0.85, 0.12, scale 0.14', not {text!r}")
    raw = {name: _number(found[i], "logo_anchor") for i, name in enumerate(("x", "y", "scale"), start=1)}
    return _convert(raw, LogoAnchor, "logo_anchor")


def parse_background(text: str | None) -> Background:
    if not text:
        return Background()
    words = text.strip().lower().split()
    if not words:
        raise ContextUnreadable("background: blank; say it as 'solid #ffffff' or 'texture wood'")
    if words[0] == "texture" and len(words) > 1:
        return _convert({"kind": "texture", "texture": words[1]}, Background, "background")
    if words[0] == "keep":
        return Background(kind="keep", colors=())
    colors = [c.lower() for c in _HEX.findall(text)]
    if words[0] in ("solid", "gradient") and colors:
        return _convert({"kind": words[0], "colors": colors}, Background, "background")
    raise ContextUnreadable(f"background: say it as 'solid #ffffff' or 'texture wood', not {text!r}")


def recipe_of(context: SessionContext, operation: Operation) -> Recipe:
    """The look a session's context has settled, as the recipe of a new candidate."""
    extra = context.extra
    shadow = _number(extra["shadow"], "shadow") if extra.get("shadow") else DEFAULT_SHADOW
    return Recipe(
        operation=operation,
        background=parse_background(extra.get("background")),
        lighting=parse_lighting(context.lighting),
        tone=parse_tone(context.color_tone),
        logo=parse_logo(context.logo_anchor) if extra.get("logo") else None,
        perspective=context.perspective or "front",
        shadow=min(max(shadow, 0.0), 0.9),
    )


def context_of(recipe: Recipe, base: SessionContext) -> SessionContext:
    """``base`` with the look ``recipe`` was made with: what adopting its candidate settles."""
    extra = dict(base.extra)
    extra["background"] = recipe.background.text()
    extra["shadow"] = f"{recipe.shadow:.3f}"
    return SessionContext(
        lighting=recipe.lighting.text(),
        perspective=recipe.perspective,
        color_tone=recipe.tone.text(),
        logo_anchor=recipe.logo.text() if recipe.logo is not None else base.logo_anchor,
        extra=dict(sorted(extra.items())),
    )


# --- what a shop owner says in a refine round ----------------------------------------------

ContextField = Literal["lighting", "color_tone", "logo_anchor", "perspective", "background", "shadow"]


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """The one context field a refine round changes, and its value in each candidate."""

    field: ContextField
    said: str
    """The words that asked for it."""
    recipes: list[Recipe]


class RefineUnclear(ValueError):
    """A refine prompt that names no change the studio knows, or more than one."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_LITTLE = re.compile(r"\b(a (little|bit|touch)|slightly|a tad|subtly)\b")
_MUCH = re.compile(r"\b(much|a lot|way|far|very)\b")
_DIRECTIONS = {
    "top left": 135,
    "upper left": 135,
    "top right": 45,
    "upper right": 45,
    "bottom left": 225,
    "lower left": 225,
    "bottom right": 315,
    "lower right": 315,
    "left": 180,
    "right": 0,
    "above": 90,
    "top": 90,
    "below": 270,
    "bottom": 270,
}
_SPREAD = (0.5, 1.0, 1.5, 2.0, 0.75, 1.25, 1.75, 2.5)
"""How far each candidate of a round carries the change asked for (the first four are the usual)."""


def _step(prompt: str) -> float:
    return 0.5 if _LITTLE.search(prompt) else 2.0 if _MUCH.search(prompt) else 1.0


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


_WORDS = r"(?:(?! and )[^,.;])*"
"""The words that follow, up to a comma, a full stop or an "and": one ask's words."""
_ASK_WORDS: tuple[tuple[ContextField, str], ...] = (
    ("logo_anchor", r"(?:\b(?!and\b)[a-z]+\s+){0,3}?\blogo\b{W}"),
    ("lighting", r"\b(warmer|cooler|colder|warm|cool)\b{W}|\blight(ing)?\b{W}\bfrom\b{W}"),
    ("lighting", r"\b(brighter|dimmer|stronger|softer|harder|flatter)\b\s+(light|lighting)\b"),
    (
        "color_tone",
        r"\b(more|less)\s+(saturat\w*|vivid|vibrant|colou?rful|muted)\b|\b(muted|desaturat\w*)\b",
    ),
    (
        "background",
        r"\b(white|wood(en)?|wood-grain|marble|linen|gradient)\b{W}\b(background|table|surface)\b",
    ),
    ("shadow", r"\b(stronger|softer|lighter|darker|no|more|less)\s+shadow\b"),
    ("perspective", r"\b(perspective|angle|view from|seen from|camera)\b{W}"),
)
_ASKS = tuple((field, re.compile(words.replace("{W}", _WORDS))) for field, words in _ASK_WORDS)


def _asks(prompt: str) -> dict[ContextField, str]:
    """The context fields a prompt touches, each with the words that did."""
    said: dict[ContextField, str] = {}
    for field, pattern in _ASKS:
        found = pattern.search(prompt)
        if found and field not in said:
            said[field] = found[0].strip()
    if "logo_anchor" in said:  # "the logo a little warmer" is not a thing; a logo's words are its own
        said = {k: v for k, v in said.items() if k == "logo_anchor" or v not in said["logo_anchor"]}
    return said


def interpret(prompt: str, recipe: Recipe, count: int) -> Change:
    """The one change a refine prompt asks of ``recipe``, as ``count`` candidate recipes that
    carry it differently far (or ``RefineUnclear``). Deterministic: the same words on the same
    recipe make the same candidates."""
    text = " ".join(prompt.lower().split())
    asks = _asks(text)
    if not asks:
        raise RefineUnclear(
            "refine_not_understood",
            "We could not tell what to change. Try: 'warmer light', 'light from the left', "
            "'logo a little lower', 'more saturated', 'wood-grain table background' or 'softer shadow'.",
        )
    if len(asks) > 1:
        raise RefineUnclear(
            "refine_one_change",
            f"One change per round, please: this asks for {' and '.join(repr(v) for v in asks.values())}.",
        )
    [(field, said)] = asks.items()
    step = _step(text)  # one change per round: "a little" anywhere in it is about that change
    spread = _SPREAD[:count]
    make = _CHANGES[field]
    recipes = [msgspec.structs.replace(make(recipe, said, step * s), variant=i) for i, s in enumerate(spread)]
    if all(msgspec.structs.replace(r, variant=recipe.variant) == recipe for r in recipes):
        raise RefineUnclear(
            "refine_not_understood",
            f"{said!r} changes nothing in the look as it is: it may be so already, or the words do "
            "not say which way. Try e.g. 'logo a little lower', 'bigger logo' or 'warmer light'.",
        )
    return Change(field=field, said=said, recipes=recipes)


def _lighting(recipe: Recipe, said: str, amount: float) -> Recipe:
    light = recipe.lighting
    if re.search(r"\b(warmer|warm)\b", said):
        light = msgspec.structs.replace(light, kelvin=int(_clamp(light.kelvin - 600 * amount, 2000, 12000)))
    elif re.search(r"\b(cooler|colder|cool)\b", said):
        light = msgspec.structs.replace(light, kelvin=int(_clamp(light.kelvin + 600 * amount, 2000, 12000)))
    elif re.search(r"\b(brighter|stronger|harder)\b", said):
        light = msgspec.structs.replace(
            light, strength=round(_clamp(light.strength + 0.08 * amount, 0, 0.6), 3)
        )
    elif re.search(r"\b(dimmer|softer|flatter)\b", said):
        light = msgspec.structs.replace(
            light, strength=round(_clamp(light.strength - 0.08 * amount, 0, 0.6), 3)
        )
    else:  # from a side: the candidates turn towards it, the farthest all the way
        target = next((deg for words, deg in _DIRECTIONS.items() if words in said), light.direction_deg)
        turn = ((target - light.direction_deg + 180) % 360) - 180
        share = min(amount / 2.0, 1.0) if turn else 0.0
        light = msgspec.structs.replace(light, direction_deg=round(light.direction_deg + turn * share) % 360)
    return msgspec.structs.replace(recipe, lighting=light)


def _tone(recipe: Recipe, said: str, amount: float) -> Recipe:
    sign = -1.0 if re.search(r"\b(less|muted|desaturat\w*)\b", said) else 1.0
    saturation = round(_clamp(recipe.tone.saturation + sign * 0.12 * amount, 0.3, 2.0), 3)
    return msgspec.structs.replace(recipe, tone=Tone(saturation=saturation))


def _logo(recipe: Recipe, said: str, amount: float) -> Recipe:
    logo = recipe.logo or LogoAnchor()
    move = 0.04 * amount
    if re.search(r"\b(lower|down|downwards)\b", said):
        logo = msgspec.structs.replace(logo, y=round(_clamp(logo.y + move, 0, 1), 4))
    elif re.search(r"\b(higher|up|upwards|raise)\b", said):
        logo = msgspec.structs.replace(logo, y=round(_clamp(logo.y - move, 0, 1), 4))
    elif re.search(r"\bleft\b", said):
        logo = msgspec.structs.replace(logo, x=round(_clamp(logo.x - move, 0, 1), 4))
    elif re.search(r"\bright\b", said):
        logo = msgspec.structs.replace(logo, x=round(_clamp(logo.x + move, 0, 1), 4))
    elif re.search(r"\b(bigger|larger)\b", said):
        logo = msgspec.structs.replace(
            logo, scale=round(_clamp(logo.scale * (1 + 0.15 * amount), 0.03, 0.5), 4)
        )
    elif re.search(r"\bsmaller\b", said):
        logo = msgspec.structs.replace(
            logo, scale=round(_clamp(logo.scale / (1 + 0.15 * amount), 0.03, 0.5), 4)
        )
    return msgspec.structs.replace(recipe, logo=logo)


def _background(recipe: Recipe, said: str, amount: float) -> Recipe:
    if "wood" in said:
        background = Background(kind="texture", texture="wood")
    elif "marble" in said:
        background = Background(kind="texture", texture="marble")
    elif "linen" in said:
        background = Background(kind="texture", texture="linen")
    elif "gradient" in said:
        background = Background(kind="gradient", colors=("#f7f3ee", "#d9cfc2"))
    else:
        background = Background(kind="solid", colors=("#ffffff",))
    return msgspec.structs.replace(recipe, background=background)


def _shadow(recipe: Recipe, said: str, amount: float) -> Recipe:
    if re.search(r"\bno\s+shadow\b", said):
        return msgspec.structs.replace(recipe, shadow=0.0)
    sign = -1.0 if re.search(r"\b(softer|lighter|less)\b", said) else 1.0
    return msgspec.structs.replace(
        recipe, shadow=round(_clamp(recipe.shadow + sign * 0.1 * amount, 0, 0.9), 3)
    )


def _perspective(recipe: Recipe, said: str, amount: float) -> Recipe:
    return msgspec.structs.replace(recipe, perspective=said[:200])


_CHANGES = {
    "lighting": _lighting,
    "color_tone": _tone,
    "logo_anchor": _logo,
    "background": _background,
    "shadow": _shadow,
    "perspective": _perspective,
}

# --- an edit round's candidates --------------------------------------------------------------

_EDIT_LIGHTS = (135, 45, 90, 180, 0, 120, 60, 150)
"""The key light of each of an edit round's candidates: the shop owner picks one."""


def edit_recipes(base: Recipe, count: int) -> list[Recipe]:
    """``count`` candidates of an edit: the same background and tone, each lit from another side
    (adopting one settles the light; an edit always offers the sides again)."""
    out = []
    for i in range(count):
        light = msgspec.structs.replace(base.lighting, direction_deg=_EDIT_LIGHTS[i % len(_EDIT_LIGHTS)])
        out.append(msgspec.structs.replace(base, lighting=light, variant=i))
    return out


def light_vector(direction_deg: int) -> tuple[float, float]:
    """The unit vector towards the light in image coordinates (x right, y down)."""
    angle = math.radians(direction_deg)
    return math.cos(angle), -math.sin(angle)


def kelvin_rgb(kelvin: float) -> tuple[float, float, float]:
    """The colour of a black body at ``kelvin`` in linear sRGB, Y = 1: the Planckian locus by Kim et
    al.'s cubic fit (1667-25000 K, within 0.0003 in xy), which is smooth and moves monotonically
    from red to blue (Tanner Helland's popular fit clamps red at 6600 K and cannot be inverted
    just above it)."""
    t = min(max(kelvin, 1667.0), 25000.0)
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    big_x, big_z = x / y, (1 - x - y) / y
    r = 3.2406 * big_x - 1.5372 - 0.4986 * big_z
    g = -0.9689 * big_x + 1.8758 + 0.0415 * big_z
    b = 0.0557 * big_x - 0.2040 + 1.0570 * big_z
    return r, g, b


def kelvin_gains(kelvin: float) -> tuple[float, float, float]:
    """Per-channel gains, on gamma-encoded pixels (the 2.2 power of the linear light's), that turn
    neutral (6500 K) light into light of ``kelvin``, green kept."""
    r, g, b = kelvin_rgb(kelvin)
    r0, g0, b0 = kelvin_rgb(NEUTRAL_KELVIN)
    gr, gg, gb = (r / r0) ** _GAMMA, (g / g0) ** _GAMMA, (b / b0) ** _GAMMA
    return gr / gg, 1.0, gb / gg


_GAMMA = 1 / 2.2


def kelvin_of_ratio(red_over_blue: float) -> float:
    """The temperature whose gains give this red/blue ratio (the inverse of ``kelvin_gains``)."""
    low, high = 2000.0, 12000.0
    for _ in range(40):  # red/blue falls as the light gets cooler
        mid = (low + high) / 2
        gr, _, gb = kelvin_gains(mid)
        if gr / gb > red_over_blue:
            low = mid
        else:
            high = mid
    return (low + high) / 2


# --- the public view (``/v1/studio/sessions/{id}``) --------------------------------------------


class StudioCandidate(msgspec.Struct, frozen=True, kw_only=True):
    asset_id: str
    url: str
    """A signed, expiring download link."""
    model_used: str
    note: str = ""
    """A fallback in plain words ("the first model was busy, so we used X instead")."""
    width: int = 0
    height: int = 0
    checks: list[dict[str, Any]] = []
    """An export for a platform: each of its rules, measured on the file."""
    recipe: dict[str, Any] = {}


class StudioRound(msgspec.Struct, frozen=True, kw_only=True):
    round: int
    job_id: str
    operation: str
    said: str
    status: str
    candidates: list[StudioCandidate]
    adopted: str | None = None
    error: str = ""
    """What went wrong, for a shop owner."""
    error_code: str = ""


class StudioLook(msgspec.Struct, frozen=True, kw_only=True):
    """The context in force, read as the studio uses it."""

    lighting: Lighting
    color_tone: Tone
    logo_anchor: LogoAnchor | None
    perspective: str
    background: str
    shadow: float


class StudioView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    status: str
    upload: str
    logo: str | None
    look: StudioLook | None
    """None while the context is not in the studio's form (changed by hand)."""
    rounds: list[StudioRound]
    adopted: StudioCandidate | None
    created_at: datetime
    updated_at: datetime
