"""The studio's vocabulary: the look in a session's context as canonical text, a shop owner's
refine words as exactly one change, the inverse of the light's colour gains, the ``studio`` kind's
rules and steps, and the catalogue file (its validation and its reload)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.kinds import KINDS
from atelier_contracts.kinds.base import InvalidInput
from atelier_contracts.sessions import SessionContext
from atelier_contracts.studio import (
    Background,
    ContextUnreadable,
    Lighting,
    LogoAnchor,
    Recipe,
    RefineUnclear,
    Tone,
    context_of,
    interpret,
    kelvin_gains,
    kelvin_of_ratio,
    recipe_of,
)
from atelier_contracts.studio_catalog import (
    Catalog,
    CatalogInvalid,
    StudioCatalog,
    default_text,
    parse_catalog,
)

UPLOAD = "upl_" + "a" * 24
LOGO = "upl_" + "b" * 24
WITH_LOGO = SessionContext(extra={"source": UPLOAD, "logo": LOGO})
NO_LOGO = SessionContext(extra={"source": UPLOAD})


def settled(recipe: Recipe) -> Recipe:
    """What of a recipe is the look (the context's fields), as ``recipe_of`` makes it."""
    return msgspec.structs.replace(
        recipe, operation="refine", variant=0, prompt="", fill=None, size=None, square=False, format="png"
    )


# --- the context in canonical text ------------------------------------------------------------

LOOKS = [
    pytest.param(Recipe(operation="refine", logo=LogoAnchor()), WITH_LOGO, id="defaults"),
    pytest.param(
        Recipe(
            operation="bg_replace",
            background=Background(kind="texture", texture="marble"),
            lighting=Lighting(direction_deg=135, kelvin=5200, strength=0.25),
            tone=Tone(saturation=1.1),
            logo=LogoAnchor(x=0.82, y=0.12, scale=0.16),
            perspective="three-quarter, from slightly above",
            shadow=0.3,
            variant=3,
            prompt="on pale marble",
        ),
        WITH_LOGO,
        id="marble",
    ),
    pytest.param(
        Recipe(
            operation="bg_replace",
            background=Background(kind="gradient", colors=("#f5efe6", "#d8c8ad")),
            lighting=Lighting(direction_deg=0, kelvin=2000, strength=0.0),
            tone=Tone(saturation=0.3),
            shadow=0.9,
        ),
        NO_LOGO,
        id="gradient-no-logo",
    ),
    pytest.param(
        Recipe(
            operation="optimize",
            background=Background(kind="keep", colors=()),
            lighting=Lighting(direction_deg=359, kelvin=12000, strength=0.6),
            tone=Tone(saturation=2.0),
            logo=LogoAnchor(x=0.0, y=1.0, scale=0.5),
            shadow=0.0,
        ),
        WITH_LOGO,
        id="extremes",
    ),
    pytest.param(
        Recipe(
            operation="bg_replace",
            background=Background(kind="solid", colors=("#0a1b2c",)),
            logo=LogoAnchor(x=0.135, y=0.875, scale=0.03),
            fill=0.85,
            size=800,
            square=True,
            format="jpeg",
        ),
        WITH_LOGO,
        id="framed",
    ),
]


@pytest.mark.parametrize(("recipe", "base"), LOOKS)
def test_the_context_says_the_look_and_reads_back_as_the_same_look(
    recipe: Recipe, base: SessionContext
) -> None:
    context = context_of(recipe, base)
    assert recipe_of(context, "refine") == settled(recipe)
    assert recipe_of(context, "bg_replace") == msgspec.structs.replace(
        settled(recipe), operation="bg_replace"
    )
    assert {k: v for k, v in context.extra.items() if k in ("source", "logo")} == base.extra, (
        "the uploads stay named"
    )
    assert context_of(recipe_of(context, "refine"), base) == context, "the text is a fixed point"


def test_the_context_text_is_the_canonical_form() -> None:
    recipe = Recipe(
        operation="bg_replace",
        background=Background(kind="texture", texture="wood"),
        lighting=Lighting(direction_deg=135, kelvin=5200, strength=0.25),
        tone=Tone(saturation=1.1),
        logo=LogoAnchor(x=0.82, y=0.12, scale=0.16),
        shadow=0.45,
    )
    context = context_of(recipe, WITH_LOGO)
    assert context.lighting == "from 135°, 5200 K, strength 0.250"
    assert context.color_tone == "saturation 1.100"
    assert context.logo_anchor == "at 0.8200, 0.1200, scale 0.1600"
    assert context.perspective == "front"
    assert context.extra == {
        "background": "texture wood",
        "logo": LOGO,
        "shadow": "0.450",
        "source": UPLOAD,
    }
    assert list(context.extra) == sorted(context.extra)


def test_a_context_written_by_a_person_in_the_canonical_words_is_read() -> None:
    context = SessionContext(
        lighting="key light from 200 °, 4300 K",
        color_tone="a touch more: saturation 1.25",
        logo_anchor="AT 0.5, 0.25, SCALE 0.2",
        extra={"background": "Gradient #FFFFFF #EEDDCC", "shadow": "0.2", "logo": LOGO},
    )
    recipe = recipe_of(context, "refine")
    assert recipe.lighting == Lighting(direction_deg=200, kelvin=4300, strength=0.2)
    assert recipe.tone == Tone(saturation=1.25)
    assert recipe.logo == LogoAnchor(x=0.5, y=0.25, scale=0.2)
    assert recipe.background == Background(kind="gradient", colors=("#ffffff", "#eeddcc"))
    assert recipe.shadow == 0.2
    assert recipe_of(SessionContext(), "refine") == Recipe(operation="refine"), "an empty context: defaults"
    assert recipe_of(SessionContext(logo_anchor="at 0.5, 0.5, scale 0.2"), "refine").logo is None, (
        "no logo upload, no logo"
    )


@pytest.mark.parametrize(
    "context",
    [
        SessionContext(lighting="soft window light"),
        SessionContext(lighting="from 90°, 1500 K"),
        SessionContext(lighting="from 90°, 5200 K, strength 0.9"),
        SessionContext(color_tone="vivid"),
        SessionContext(color_tone="saturation 3.5"),
        SessionContext(logo_anchor="top right", extra={"logo": LOGO}),
        SessionContext(logo_anchor="at 1.5, 0.1, scale 0.1", extra={"logo": LOGO}),
        SessionContext(extra={"background": "marble"}),
        SessionContext(extra={"background": "solid"}),
        SessionContext(extra={"background": "texture velvet"}),
        SessionContext(extra={"background": "gradient #aaaaaa #bbbbbb #cccccc"}),
        SessionContext(extra={"shadow": "dark"}),
    ],
    ids=lambda c: repr(msgspec.to_builtins(c)),
)
def test_a_context_not_in_the_studios_form_is_unreadable(context: SessionContext) -> None:
    with pytest.raises(ContextUnreadable):
        recipe_of(context, "refine")


@pytest.mark.parametrize(
    "context",
    [
        SessionContext(color_tone="saturation 1.2.3"),
        SessionContext(lighting="from 90°, 5200 K, strength 0.2.2"),
        SessionContext(logo_anchor="at 0.8.5, 0.1, scale 0.1", extra={"logo": LOGO}),
        SessionContext(extra={"background": "   "}),
    ],
    ids=["tone", "lighting", "logo", "background"],
)
def test_a_malformed_number_or_a_blank_background_is_unreadable(context: SessionContext) -> None:
    with pytest.raises(ContextUnreadable):
        recipe_of(context, "refine")


def test_a_shadow_that_is_not_a_number_is_unreadable() -> None:
    try:
        shadow = recipe_of(SessionContext(extra={"shadow": "nan"}), "refine").shadow
    except ContextUnreadable:
        return
    assert 0.0 <= shadow <= 0.9, shadow


# --- refine words -------------------------------------------------------------------------------

START = Recipe(
    operation="refine",
    lighting=Lighting(direction_deg=90, kelvin=6500, strength=0.2),
    tone=Tone(saturation=1.0),
    logo=LogoAnchor(x=0.85, y=0.12, scale=0.14),
    shadow=0.45,
)
ATTRIBUTE = {
    "lighting": "lighting",
    "color_tone": "tone",
    "logo_anchor": "logo",
    "background": "background",
    "shadow": "shadow",
    "perspective": "perspective",
}


def without_change(recipe: Recipe, field: str) -> Recipe:
    """``recipe`` with the changed field put back as it was, and its variant number cleared."""
    attribute = ATTRIBUTE[field]
    return msgspec.structs.replace(recipe, **{attribute: getattr(START, attribute)}, variant=0)


Check = Callable[[list[Recipe]], None]


def warmer(made: list[Recipe]) -> None:
    kelvins = [r.lighting.kelvin for r in made]
    assert all(k < START.lighting.kelvin for k in kelvins), kelvins
    assert kelvins == sorted(kelvins, reverse=True), "each candidate carries it further"
    assert {(r.lighting.direction_deg, r.lighting.strength) for r in made} == {(90, 0.2)}


def cooler(made: list[Recipe]) -> None:
    kelvins = [r.lighting.kelvin for r in made]
    assert all(k > START.lighting.kelvin for k in kelvins), kelvins
    assert kelvins == sorted(kelvins)
    assert {(r.lighting.direction_deg, r.lighting.strength) for r in made} == {(90, 0.2)}


def from_the_left(made: list[Recipe]) -> None:
    distances = [abs(180 - r.lighting.direction_deg) for r in made]
    assert all(d < abs(180 - START.lighting.direction_deg) for d in distances), distances
    assert distances == sorted(distances, reverse=True)
    assert made[-1].lighting.direction_deg == 180, "the farthest turns all the way"
    assert {(r.lighting.kelvin, r.lighting.strength) for r in made} == {(6500, 0.2)}


def lower(made: list[Recipe]) -> None:
    assert START.logo is not None
    assert all(r.logo is not None and r.logo.y > START.logo.y for r in made)
    assert {(r.logo.x, r.logo.scale) for r in made if r.logo is not None} == {(0.85, 0.14)}


def more_saturated(made: list[Recipe]) -> None:
    assert all(r.tone.saturation > 1.0 for r in made), [r.tone for r in made]


def wood(made: list[Recipe]) -> None:
    assert {r.background for r in made} == {Background(kind="texture", texture="wood")}


def softer_shadow(made: list[Recipe]) -> None:
    shadows = [r.shadow for r in made]
    assert all(0 <= s < START.shadow for s in shadows), shadows
    assert shadows == sorted(shadows, reverse=True)


def no_shadow(made: list[Recipe]) -> None:
    assert {r.shadow for r in made} == {0.0}


ASKS = [
    ("warmer light", "lighting", warmer),
    ("cooler", "lighting", cooler),
    ("Make the light COOLER please", "lighting", cooler),
    ("light from the left", "lighting", from_the_left),
    ("logo a little lower", "logo_anchor", lower),
    ("logo lower", "logo_anchor", lower),
    ("more saturated", "color_tone", more_saturated),
    ("wood-grain table background", "background", wood),
    ("softer shadow", "shadow", softer_shadow),
    ("no shadow", "shadow", no_shadow),
]


@pytest.mark.parametrize(("words", "field", "check"), ASKS, ids=[a[0] for a in ASKS])
def test_each_known_phrase_changes_exactly_one_field(words: str, field: str, check: Check) -> None:
    change = interpret(words, START, 4)
    assert change.field == field
    assert change.said in " ".join(words.lower().split())
    assert [r.variant for r in change.recipes] == [0, 1, 2, 3]
    for made in change.recipes:
        assert without_change(made, field) == START, f"{words!r} touched more than {field}"
        assert getattr(made, ATTRIBUTE[field]) != getattr(START, ATTRIBUTE[field]), "it changed"
    check(change.recipes)
    assert interpret(words, START, 4) == change, "the same words make the same candidates"
    assert interpret(words, START, 2).recipes == change.recipes[:2]


def test_a_little_lower_moves_the_logo_less_than_lower() -> None:
    little = interpret("logo a little lower", START, 4).recipes
    more = interpret("logo lower", START, 4).recipes
    for a, b in zip(little, more, strict=True):
        assert a.logo is not None
        assert b.logo is not None
        assert START.logo is not None
        assert START.logo.y < a.logo.y < b.logo.y, (a.logo, b.logo)


@pytest.mark.parametrize(
    "words",
    [
        "warmer light and logo lower",
        "more saturated, softer shadow",
        "light from the left and a wood-grain table background",
        "no shadow; cooler",
    ],
)
def test_two_asks_in_one_round_are_refused(words: str) -> None:
    with pytest.raises(RefineUnclear) as refused:
        interpret(words, START, 4)
    assert refused.value.code == "refine_one_change"


@pytest.mark.parametrize("words", ["make it pop", "asdf qwerty", "better, please", "", "shadow softer"])
def test_words_that_name_no_change_are_not_understood(words: str) -> None:
    with pytest.raises(RefineUnclear) as refused:
        interpret(words, START, 4)
    assert refused.value.code == "refine_not_understood"
    assert "warmer light" in str(refused.value), "the refusal says what the studio understands"


@pytest.mark.parametrize("words", ["bigger logo", "lower the logo", "light from the window"])
def test_words_that_change_nothing_are_not_a_change(words: str) -> None:
    try:
        change = interpret(words, START, 4)
    except RefineUnclear as refused:
        outcome = refused.code
    else:
        changed = any(msgspec.structs.replace(r, variant=0) != START for r in change.recipes)
        outcome = "changed" if changed else f"{change.field} unchanged"
    assert outcome in ("refine_not_understood", "changed")


@pytest.mark.parametrize(
    ("little", "plain"),
    [
        ("a little warmer light", "warmer light"),
        ("slightly more saturated", "more saturated"),
        ("a little softer shadow", "softer shadow"),
    ],
)
def test_a_little_before_the_words_changes_less(little: str, plain: str) -> None:
    less, usual = interpret(little, START, 4), interpret(plain, START, 4)
    attribute = ATTRIBUTE[usual.field]
    assert less.field == usual.field
    assert [getattr(r, attribute) for r in less.recipes] != [getattr(r, attribute) for r in usual.recipes]


@pytest.mark.parametrize("words", ["logo bigger", "logo a little smaller", "softer shadow"])
def test_every_refine_candidate_reads_back_from_the_context_it_settles(words: str) -> None:
    for made in interpret(words, START, 8).recipes:
        assert recipe_of(context_of(made, WITH_LOGO), "refine") == settled(made), made


@pytest.mark.parametrize("words", [a[0] for a in ASKS])
def test_the_usual_refine_candidates_read_back_from_the_context_they_settle(words: str) -> None:
    for made in interpret(words, START, 4).recipes:
        assert recipe_of(context_of(made, WITH_LOGO), "refine") == settled(made), made


# --- the light's colour ------------------------------------------------------------------------

PLATEAU = range(6601, 6689)
"""Where red over blue of ``kelvin_gains`` stays the same (Tanner Helland's fit clamps red at 1
just above 6600 K): no inverse can tell these apart."""


def red_over_blue(kelvin: float) -> float:
    red, _, blue = kelvin_gains(kelvin)
    return red / blue


def test_kelvin_of_ratio_inverts_kelvin_gains_within_one_kelvin() -> None:
    off = {
        k: round(kelvin_of_ratio(red_over_blue(k)) - k, 2)
        for k in range(2500, 10001, 5)
        if k not in PLATEAU and abs(kelvin_of_ratio(red_over_blue(k)) - k) > 1.0
    }
    assert off == {}
    assert kelvin_gains(6500) == (1.0, 1.0, 1.0), "neutral light changes nothing"
    assert red_over_blue(3000) > 1.0 > red_over_blue(9000), "warm is redder, cool is bluer"


def test_kelvin_of_ratio_inverts_kelvin_gains_just_above_6600_k() -> None:
    off = {k: round(kelvin_of_ratio(red_over_blue(k)) - k, 1) for k in range(6600, 6700, 5)}
    assert all(abs(e) <= 1.0 for e in off.values()), off


# --- the kind -----------------------------------------------------------------------------------

KIND = KINDS["studio"]


def artifact(name: str, key: str) -> dict[str, Any]:
    blob = BlobRef(key=key * 64, size=10, content_type="image/png")
    return dict(msgspec.to_builtins(Artifact(name=name, kind="image", blob=blob)))


ATTACHED = {UPLOAD: artifact("original", "1"), LOGO: artifact("logo", "2")}


def catalog() -> Catalog:
    return parse_catalog(default_text())


def platforms(**logo: bool) -> dict[str, Any]:
    """The packaged platforms as the gateway puts them in an export's input, ``logo`` overriding
    a platform's rule."""
    return {
        name: msgspec.to_builtins(msgspec.structs.replace(p, logo=logo.get(name.replace("-", "_"), p.logo)))
        for name, p in catalog().platforms.items()
    }


EDIT = {
    "operation": "bg_replace",
    "upload": UPLOAD,
    "recipes": [{"operation": "bg_replace", "variant": i} for i in range(3)],
}
LOOK = msgspec.to_builtins(
    Recipe(
        operation="refine",
        background=Background(kind="texture", texture="wood"),
        lighting=Lighting(direction_deg=180, kelvin=5600),
        logo=LogoAnchor(x=0.2, y=0.8, scale=0.1),
        shadow=0.6,
    )
)


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ({"operation": "bg_replace", "upload": UPLOAD}, ("recipes",)),
        ({"operation": "refine", "upload": UPLOAD, "recipes": []}, ("recipes",)),
        (
            {
                "operation": "bg_replace",
                "upload": UPLOAD,
                "recipes": [{"operation": "bg_replace"}, {"operation": "refine"}],
            },
            ("recipes", 1, "operation"),
        ),
        ({"operation": "export", "upload": UPLOAD}, ("presets",)),
        ({"operation": "export", "upload": UPLOAD, "platforms": platforms()}, ("recipe",)),
        ({"operation": "export", "upload": UPLOAD, "presets": ["web-1080", "web-1080"]}, ("presets",)),
    ],
    ids=["no-recipes", "empty-recipes", "other-operation", "export-nothing", "platform-no-recipe", "twice"],
)
def test_the_kind_refuses_what_its_schema_cannot_say(raw: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    with pytest.raises(InvalidInput) as refused:
        KIND.parse({**raw, "attached": ATTACHED})
    assert refused.value.code == "validation_failed"
    assert [i.loc for i in refused.value.issues] == [loc]


def test_the_schema_refuses_a_recipe_out_of_range_and_a_bad_upload_id() -> None:
    bad_recipe = {**EDIT, "recipes": [{"operation": "bg_replace", "shadow": 1.5}]}
    with pytest.raises(InvalidInput) as refused:
        KIND.parse(bad_recipe)
    assert refused.value.issues[0].loc == ("recipes", 0, "shadow")
    with pytest.raises(InvalidInput) as refused:
        KIND.parse({**EDIT, "upload": "upl_nope"})
    assert refused.value.issues[0].loc == ("upload",)


def test_an_edit_round_is_a_candidate_step_per_recipe_from_the_original() -> None:
    steps = KIND.steps({**EDIT, "prompt": "on a table", "seed": 7, "attached": ATTACHED})
    assert [(s.name, s.capability, s.needs) for s in steps] == [
        ("original", "upload", ()),
        ("candidate-1", "image.bg_replace", ("original",)),
        ("candidate-2", "image.bg_replace", ("original",)),
        ("candidate-3", "image.bg_replace", ("original",)),
    ]
    assert [a.blob.key for a in steps[0].given] == ["1" * 64]
    for i, step in enumerate(steps[1:]):
        assert step.params["recipe"] == {"operation": "bg_replace", **({"variant": i} if i else {})}
        assert step.params["prompt"] == "on a table"
        assert step.params["seed"] == 7


def test_a_refine_round_with_a_logo_gives_every_candidate_the_logo() -> None:
    recipes = [msgspec.to_builtins(r) for r in interpret("warmer light", START, 2).recipes]
    steps = KIND.steps(
        {"operation": "refine", "upload": UPLOAD, "logo": LOGO, "recipes": recipes, "attached": ATTACHED}
    )
    assert [(s.name, s.capability, s.needs) for s in steps] == [
        ("original", "upload", ()),
        ("logo", "upload", ()),
        ("candidate-1", "image.refine", ("original", "logo")),
        ("candidate-2", "image.refine", ("original", "logo")),
    ]
    assert [a.blob.key for a in steps[1].given] == ["2" * 64]
    assert [s.params["recipe"] for s in steps[2:]] == recipes


def test_a_plan_without_the_uploads_files_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        KIND.steps({**EDIT, "logo": LOGO, "attached": {UPLOAD: ATTACHED[UPLOAD]}})
    assert refused.value.code == "upload_not_found"
    assert refused.value.issues[0].loc == ("logo",)


def test_an_export_renders_presets_from_the_source_and_each_platform_from_the_original() -> None:
    steps = KIND.steps(
        {
            "operation": "export",
            "upload": UPLOAD,
            "logo": LOGO,
            "presets": ["web-1080", "market-1500"],
            "platforms": platforms(),
            "recipe": LOOK,
            "attached": ATTACHED,
        }
    )
    assert [(s.name, s.capability, s.needs) for s in steps] == [
        ("original", "upload", ()),
        ("logo", "upload", ()),
        ("source", "upload", ()),
        ("variant-web-1080", "image.variant", ("source",)),
        ("variant-market-1500", "image.variant", ("source",)),
        ("platform-amazon-main", "image.platform", ("original", "logo")),
        ("platform-taobao-main", "image.platform", ("original", "logo")),
    ]
    assert [a.blob.key for a in steps[2].given] == ["1" * 64], "no adopted candidate: the original"
    assert steps[3].params["preset"] == "web-1080"
    by_name = {s.name: s for s in steps}
    for name, platform in catalog().platforms.items():
        params = by_name[f"platform-{name}"].params
        assert params["platform_name"] == name
        assert params["platform"] == msgspec.to_builtins(platform)
        framed = msgspec.convert(params["recipe"], Recipe)
        assert platform.background is not None
        assert framed.background == Background(kind="solid", colors=(platform.background,))
        assert framed.shadow == 0.0
        assert (framed.fill, framed.size, framed.square, framed.format) == (
            platform.fill,
            platform.long_side,
            platform.square,
            platform.format,
        )
        assert framed.logo is None, f"{name} does not allow the logo on its main image"
        assert framed.lighting == Lighting(direction_deg=180, kelvin=5600), "the adopted light is kept"


def test_a_platform_that_allows_the_logo_keeps_it_at_the_adopted_anchor() -> None:
    steps = KIND.steps(
        {
            "operation": "export",
            "upload": UPLOAD,
            "logo": LOGO,
            "platforms": platforms(taobao_main=True),
            "recipe": LOOK,
            "attached": ATTACHED,
        }
    )
    logos = {s.name: msgspec.convert(s.params["recipe"], Recipe).logo for s in steps if "recipe" in s.params}
    assert logos == {
        "platform-amazon-main": None,
        "platform-taobao-main": LogoAnchor(x=0.2, y=0.8, scale=0.1),
    }
    assert "source" not in {s.name for s in steps}, "no presets, no source step"


def test_a_platform_with_no_plain_background_keeps_the_adopted_background_and_shadow() -> None:
    [(name, raw)] = list(platforms().items())[:1]
    free = {name: {**raw, "background": None}}
    steps = KIND.steps(
        {"operation": "export", "upload": UPLOAD, "platforms": free, "recipe": LOOK, "attached": ATTACHED}
    )
    framed = msgspec.convert(steps[-1].params["recipe"], Recipe)
    assert framed.background == Background(kind="texture", texture="wood")
    assert framed.shadow == 0.6


def test_the_kinds_example_plans() -> None:
    steps = KIND.example_steps()
    assert [s.capability for s in steps] == ["upload", "image.bg_replace"]


# --- the catalogue ------------------------------------------------------------------------------


def packaged() -> dict[str, Any]:
    return dict(json.loads(default_text()))


def test_the_packaged_catalogue_parses() -> None:
    parsed = catalog()
    assert set(parsed.default_chips) == {"optimize", "bg_replace"}
    for operation, name in parsed.default_chips.items():
        assert parsed.chips[name].operation == operation
    assert {"white-soft-shadow", "wood-table", "clean-up"} <= set(parsed.chips)
    assert parsed.platforms["amazon-main"].logo is False
    taobao = parsed.platforms["taobao-main"]
    assert (taobao.width, taobao.height, taobao.format) == (800, 800, "jpeg")
    assert StudioCatalog().current() == parsed


def edited(change: Callable[[dict[str, Any]], None]) -> str:
    raw = packaged()
    change(raw)
    return json.dumps(raw)


def unknown_placeholder(raw: dict[str, Any]) -> None:
    raw["templates"]["refine"] = "Change {prompt} in {colour}."


def wrong_default(raw: dict[str, Any]) -> None:
    raw["default_chips"]["optimize"] = "white-soft-shadow"


def missing_default(raw: dict[str, Any]) -> None:
    raw["default_chips"]["bg_replace"] = "no-such-chip"


def fill_above(raw: dict[str, Any]) -> None:
    raw["platforms"]["amazon-main"]["fill"] = 0.95


def fill_below(raw: dict[str, Any]) -> None:
    raw["platforms"]["taobao-main"]["fill"] = 0.6


def unreadable_chip(raw: dict[str, Any]) -> None:
    raw["chips"]["wood-table"]["lighting"] = "golden hour"


def unknown_field(raw: dict[str, Any]) -> None:
    raw["platforms"]["amazon-main"]["colour"] = "#ffffff"


def bad_name(raw: dict[str, Any]) -> None:
    raw["chips"]["Wood Table"] = raw["chips"].pop("wood-table")


@pytest.mark.parametrize(
    "change",
    [
        unknown_placeholder,
        wrong_default,
        missing_default,
        fill_above,
        fill_below,
        unreadable_chip,
        unknown_field,
        bad_name,
    ],
)
def test_an_invalid_catalogue_is_refused(change: Callable[[dict[str, Any]], None]) -> None:
    text = edited(change)
    with pytest.raises(CatalogInvalid):
        parse_catalog(text)


def test_a_catalogue_that_is_not_json_is_refused() -> None:
    with pytest.raises(CatalogInvalid):
        parse_catalog("{not json")


def write(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(1, tick * 1_000_000_000))  # a new modification time, whatever the clock's


def test_the_catalogue_file_is_read_again_when_it_changes_and_a_bad_edit_keeps_the_last_good(
    tmp_path: Path,
) -> None:
    path = tmp_path / "studio.json"
    write(path, default_text(), 1)
    studio = StudioCatalog(path)
    assert "marble-luxe" in studio.current().chips

    def drop_marble(raw: dict[str, Any]) -> None:
        del raw["chips"]["marble-luxe"]

    write(path, edited(drop_marble), 2)
    assert "marble-luxe" not in studio.current().chips
    assert "wood-table" in studio.current().chips
    good = studio.current()

    write(path, edited(fill_above), 3)
    assert studio.current() == good, "a bad edit is logged; the last good catalogue stays"
    write(path, "{", 4)
    assert studio.current() == good

    def one_platform(raw: dict[str, Any]) -> None:
        del raw["platforms"]["taobao-main"]

    write(path, edited(one_platform), 5)
    assert sorted(studio.current().platforms) == ["amazon-main"]
    assert "marble-luxe" in studio.current().chips


def test_a_catalogue_file_invalid_at_start_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "studio.json"
    path.write_text(edited(wrong_default))
    with pytest.raises(CatalogInvalid):
        StudioCatalog(path)
    assert StudioCatalog.from_env({"ATELIER_STUDIO_FILE": ""}).current() == catalog()
    good = tmp_path / "good.json"
    good.write_text(edited(fill_below).replace('"fill": 0.6', '"fill": 0.75'))
    assert (
        StudioCatalog.from_env({"ATELIER_STUDIO_FILE": str(good)}).current().platforms["taobao-main"].fill
        == 0.75
    )


@pytest.mark.parametrize("field", ["chip-background", "template-index"])
def test_every_bad_edit_keeps_the_last_good_catalogue(tmp_path: Path, field: str) -> None:
    path = tmp_path / "studio.json"
    write(path, default_text(), 1)
    studio = StudioCatalog(path)
    good = studio.current()

    def blank(raw: dict[str, Any]) -> None:
        if field == "chip-background":
            raw["chips"]["wood-table"]["background"] = " "
        else:
            raw["templates"]["refine"] = "{background[x]}"

    write(path, edited(blank), 2)
    assert studio.current() == good
