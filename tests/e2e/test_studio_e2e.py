"""The product-photo studio through the services: upload, bg_replace with four candidates, adopt,
five refine rounds, export in presets and for a marketplace. The consistency the studio promises
is measured on the images: the key light's direction and colour temperature read back from the
final candidate's pixels match the session's look, and the logo sits on the same pixels as in the
round that placed it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from PIL import Image

from atelier_contracts.studio import Recipe
from atelier_devstack import products
from atelier_devstack.stack import Stack
from atelier_provider_router import studio_image
from tests.e2e.client import e2e_stack, running, wait_terminal
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e

KELVIN_TOLERANCE = 150.0
DIRECTION_TOLERANCE_DEG = 5.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running(e2e_stack(tmp_path)) as s:
        yield s


def upload(client: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    sent = client.post("/v1/uploads", files={"file": (name, data, "image/png")})
    assert sent.status_code == 201, sent.text
    return dict(sent.json())


def round_done(client: httpx.Client, session_id: str, number: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        view = client.get(f"/v1/studio/sessions/{session_id}").json()
        rounds = view["rounds"]
        return view if len(rounds) >= number and rounds[number - 1]["status"] != "running" else None

    view = eventually_sync(probe, within=120, every=0.2)
    assert view["rounds"][number - 1]["status"] == "succeeded", view["rounds"][number - 1]
    return view


def image_at(client: httpx.Client, url: str) -> Image.Image:
    got = client.get(url)
    assert got.status_code == 200, got.text
    return Image.open(io.BytesIO(got.content))


def adopt(client: httpx.Client, session_id: str, candidate: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/v1/studio/sessions/{session_id}/adopt", json={"asset_id": candidate["asset_id"]})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_upload_bg_replace_adopt_refine_five_times_and_export(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        photo = upload(client, "shoe.png", products.photo("shoe", 1600))
        logo = upload(client, "logo.png", products.logo())
        created = client.post(
            "/v1/studio/sessions",
            json={"title": "Red shoe", "upload": photo["id"], "logo": logo["id"]},
            headers={"Idempotency-Key": "studio-e2e-1"},
        )
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]

        edit = client.post(
            f"/v1/studio/sessions/{session_id}/edit",
            json={"operation": "bg_replace"},  # no prompt, no chip: the operation's default chip
            headers={"Idempotency-Key": "studio-e2e-edit"},
        )
        assert edit.status_code == 202, edit.text
        view = round_done(client, session_id, 1)
        first = view["rounds"][0]
        assert first["operation"] == "bg_replace"
        assert first["said"] == "white background, soft shadow", "the default chip's words"
        corner = image_at(client, first["candidates"][0]["url"]).convert("RGB").getpixel((2, 2))
        assert corner == (255, 255, 255), "the default chip's white background"
        assert len(first["candidates"]) == 4
        assert {c["model_used"] for c in first["candidates"]} == {"offline-studio-1"}
        lights = [c["recipe"]["lighting"]["direction_deg"] for c in first["candidates"]]
        assert len(set(lights)) == 4, "the four candidates are lit from four sides"
        view = adopt(client, session_id, first["candidates"][1])
        assert view["look"]["lighting"]["direction_deg"] == lights[1], "adoption settles the light"

        refinements = [
            "warmer light",
            "logo a little lower",
            "more saturated",
            "wood-grain table background",
            "softer shadow",
        ]
        placed: tuple[int, int, int, int] | None = None
        for number, words in enumerate(refinements, start=2):
            before = view["look"]
            r = client.post(
                f"/v1/studio/sessions/{session_id}/refine",
                json={"prompt": words, "candidates": 2},
                headers={"Idempotency-Key": f"studio-e2e-refine-{number}"},
            )
            assert r.status_code == 202, r.text
            view = round_done(client, session_id, number)
            made = view["rounds"][number - 1]
            assert made["said"] == words
            assert len(made["candidates"]) == 2
            view = adopt(client, session_id, made["candidates"][1])
            changed = {k for k in before if before[k] != view["look"][k]}
            assert len(changed) == 1, f"{words!r} changed one field of the look, not {changed}"
            if words.startswith("logo"):
                placed = studio_image.find_logo(
                    image_at(client, view["adopted"]["url"]).convert("RGB"), products.LOGO_COLOUR
                )
        assert placed is not None
        assert view["look"]["lighting"]["kelvin"] < 6500
        assert view["look"]["background"] == "texture wood"

        # measured on the final image, against the same photo under flat neutral light
        final = image_at(client, view["adopted"]["url"]).convert("RGB")
        original = image_at(client, photo["links"]["original"]).convert("RGB")
        recipe = msgspec.convert(view["adopted"]["recipe"], Recipe)
        reference, product = studio_image.render(
            original, studio_image.segment(original), studio_image.neutral(recipe)
        )
        measured = studio_image.measure_light(final, reference, product)
        look = view["look"]["lighting"]
        assert abs(measured["kelvin"] - look["kelvin"]) <= KELVIN_TOLERANCE, (measured, look)
        turn = (measured["direction_deg"] - look["direction_deg"] + 180) % 360 - 180
        assert abs(turn) <= DIRECTION_TOLERANCE_DEG, (measured, look)
        assert studio_image.find_logo(final, products.LOGO_COLOUR) == placed, "the logo has not moved a pixel"

        exported = client.post(
            f"/v1/studio/sessions/{session_id}/export",
            json={"presets": ["web-1080", "market-1500"], "platforms": ["amazon-main"]},
            headers={"Idempotency-Key": "studio-e2e-export"},
        )
        assert exported.status_code == 202, exported.text
        view = round_done(client, session_id, 7)
        assert len(view["rounds"][6]["candidates"]) == 3
        job = wait_terminal(client, view["rounds"][6]["job_id"])
        by_step = {a["step"]: a for a in job["assets"]}
        sizes = {
            "variant-web-1080": (1080, 1080),
            "variant-market-1500": (1500, 1500),
            "platform-amazon-main": (2000, 2000),
        }
        for step, size in sizes.items():
            assert image_at(client, by_step[step]["url"]).size == size, step
        [amazon] = [c for c in view["rounds"][6]["candidates"] if c["checks"]]
        assert {c["rule"]: c["ok"] for c in amazon["checks"]} == {
            "format": True,
            "long_side": True,
            "background": True,
            "fill": True,
        }, amazon["checks"]

        # the gallery: every file of the session's rounds, once, through cursor pages
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {
                "session": session_id,
                "limit": 5,
                **({"cursor": cursor} if cursor else {}),
            }
            page = client.get("/v1/gallery", params=params)
            assert page.status_code == 200, page.text
            seen += [item["id"] for item in page.json()["items"]]
            cursor = page.json()["next"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 4 + 5 * 2 + 3
        exports = client.get("/v1/gallery", params={"session": session_id, "q": "export"}).json()["items"]
        assert {i["step"] for i in exports} == set(sizes)
        assert client.get("/v1/gallery", params={"job_kind": "clip"}).json()["items"] == []
        assert client.get("/v1/gallery", params={"cursor": "nonsense"}).status_code == 422

        # prompt history and saved templates
        recent = client.get("/v1/studio/prompts").json()
        assert [p["prompt"] for p in recent["recent"][:2]] == ["softer shadow", "wood-grain table background"]
        saved = client.put(
            "/v1/studio/templates/my shoes",
            json={"operation": "bg_replace", "prompt": "on wood", "chip": "wood-table"},
        )
        assert saved.status_code == 200, saved.text
        assert [t["name"] for t in client.get("/v1/studio/templates").json()["templates"]] == ["my shoes"]
        assert client.delete("/v1/studio/templates/my shoes").status_code == 204
        gone = client.delete("/v1/studio/templates/my shoes")
        assert (gone.status_code, gone.json()["code"]) == (404, "template_not_found")
