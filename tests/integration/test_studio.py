"""The product-photo studio's refusals over HTTP, through the gateway with the real orchestrator,
workers and media ingest on a real nats-server and SQL: what is refused before anything is
adopted, what a refinement's words are refused for once a candidate is, and the catalogue's
chips and platforms as listed. A refusal spends no round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.studio_catalog import StudioCatalog
from atelier_devstack import products
from atelier_devstack.natsserver import NatsServer
from atelier_media.app.ingest import IngestResponder
from atelier_media.domain.sanitize import Limits
from tests.integration.harness import Platform, platform
from tests.integration.test_gateway_api import Gateway, assert_problem, open_gateway
from tests.support import eventually

pytestmark = pytest.mark.integration

MISSING_UPLOAD = "upl_" + "0" * 24
MISSING_SESSION = "ses_" + "0" * 32


async def ingest(nats_url: str, blob_dir: Path) -> AsyncIterator[None]:
    """The media service's upload ingest, as ``POST /v1/uploads`` asks it."""
    nc = await nats.connect(nats_url)
    stop = asyncio.Event()
    task = asyncio.create_task(IngestResponder(nc, FileBlobStore(blob_dir), Limits()).run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await nc.close()


@pytest.fixture
async def stack(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Platform]]:
    async with (
        open_gateway(nats_server.url, database_url, tmp_path, command_wait_s=10.0) as gw,
        platform(nats_server.url, database_url, tmp_path) as p,
    ):
        p.workers()
        async for _ in ingest(nats_server.url, tmp_path / "blobs"):
            yield gw, p


async def upload(client: httpx.AsyncClient, name: str, data: bytes) -> str:
    sent = await client.post("/v1/uploads", files={"file": (name, data, "image/png")})
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


async def studio_session(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    photo = await upload(client, "box.png", products.photo("box", 320))
    created = await client.post("/v1/studio/sessions", json={"title": "Box", "upload": photo, **body})
    assert created.status_code == 201, created.text
    view: dict[str, Any] = created.json()
    assert view["upload"] == photo
    assert view["rounds"] == []
    assert view["adopted"] is None
    return view


async def read(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    got = await client.get(f"/v1/studio/sessions/{session_id}")
    assert got.status_code == 200, got.text
    return dict(got.json())


async def test_a_session_of_an_upload_that_does_not_exist_is_refused(stack: tuple[Gateway, Platform]) -> None:
    client = stack[0].client
    unknown = await client.post("/v1/studio/sessions", json={"title": "Shoe", "upload": MISSING_UPLOAD})
    assert MISSING_UPLOAD in assert_problem(unknown, 404, "upload_not_found")["detail"]
    photo = await upload(client, "shoe.png", products.photo("shoe", 320))
    no_logo = await client.post(
        "/v1/studio/sessions", json={"title": "Shoe", "upload": photo, "logo": MISSING_UPLOAD}
    )
    assert_problem(no_logo, 404, "upload_not_found")
    malformed = await client.post("/v1/studio/sessions", json={"title": "Shoe", "upload": "upl_nope"})
    assert_problem(malformed, 422, "validation_failed")
    assert (await client.get("/v1/sessions")).json()["items"] == [], "no session was made"


async def test_what_is_refused_before_anything_is_adopted(stack: tuple[Gateway, Platform]) -> None:
    client = stack[0].client
    session_id = (await studio_session(client))["id"]
    at = f"/v1/studio/sessions/{session_id}"

    refine = await client.post(f"{at}/refine", json={"prompt": "warmer light"})
    assert_problem(refine, 409, "nothing_adopted")
    export = await client.post(f"{at}/export", json={"platforms": ["amazon-main"]})
    assert_problem(export, 409, "nothing_adopted")
    unknown_platform = await client.post(f"{at}/export", json={"platforms": ["ebay-main"]})
    assert_problem(unknown_platform, 409, "nothing_adopted")

    chip = await client.post(f"{at}/edit", json={"operation": "bg_replace", "chip": "velvet-drape"})
    assert "white-soft-shadow" in assert_problem(chip, 404, "chip_not_found")["detail"], "it names the chips"
    other_operation = await client.post(f"{at}/edit", json={"operation": "bg_replace", "chip": "clean-up"})
    assert_problem(other_operation, 404, "chip_not_found")
    no_candidate = await client.post(f"{at}/adopt", json={"asset_id": "ast_nothing"})
    assert_problem(no_candidate, 404, "candidate_not_found")
    too_many = await client.post(f"{at}/edit", json={"chip": "wood-table", "candidates": 9})
    assert_problem(too_many, 422, "validation_failed")

    assert (await read(client, session_id))["rounds"] == [], "a refusal spends no round"
    for path, payload in [
        ("", None),
        ("/edit", {"chip": "wood-table"}),
        ("/refine", {"prompt": "warmer light"}),
        ("/export", {"presets": ["web-1080"]}),
    ]:
        missing = f"/v1/studio/sessions/{MISSING_SESSION}{path}"
        answer = await client.get(missing) if payload is None else await client.post(missing, json=payload)
        assert_problem(answer, 404, "session_not_found")


async def adopted_session(client: httpx.AsyncClient) -> dict[str, Any]:
    """A session with the one candidate of a white-background round adopted."""
    session_id = (await studio_session(client))["id"]
    edit = await client.post(
        f"/v1/studio/sessions/{session_id}/edit", json={"chip": "white-soft-shadow", "candidates": 1}
    )
    assert edit.status_code == 202, edit.text

    async def done() -> dict[str, Any] | None:
        view = await read(client, session_id)
        return view if view["rounds"][0]["status"] not in ("queued", "running") else None

    view = await eventually(done, within=60)
    assert view["rounds"][0]["status"] == "succeeded", view["rounds"][0]
    [candidate] = view["rounds"][0]["candidates"]
    adopted = await client.post(
        f"/v1/studio/sessions/{session_id}/adopt", json={"asset_id": candidate["asset_id"]}
    )
    assert adopted.status_code == 200, adopted.text
    view = dict(adopted.json())
    assert view["adopted"]["asset_id"] == candidate["asset_id"]
    assert view["look"]["background"] == "solid #ffffff"
    return view


async def test_a_refinement_is_one_change_the_studio_understands(stack: tuple[Gateway, Platform]) -> None:
    client = stack[0].client
    view = await adopted_session(client)
    at = f"/v1/studio/sessions/{view['id']}"

    for words in ("make it pop", "better, please"):
        unclear = await client.post(f"{at}/refine", json={"prompt": words})
        assert "warmer light" in assert_problem(unclear, 422, "refine_not_understood")["detail"]
    for words in ("warmer light and logo lower", "more saturated, softer shadow"):
        two = await client.post(f"{at}/refine", json={"prompt": words})
        assert_problem(two, 422, "refine_one_change")
    empty = await client.post(f"{at}/refine", json={"prompt": ""})
    assert_problem(empty, 422, "validation_failed")

    platform_unknown = await client.post(f"{at}/export", json={"platforms": ["amazon-main", "ebay-main"]})
    assert "amazon-main" in assert_problem(platform_unknown, 404, "platform_not_found")["detail"]
    preset_unknown = await client.post(f"{at}/export", json={"presets": ["poster-a0"]})
    assert_problem(preset_unknown, 422, "preset_not_found")

    after = await read(client, view["id"])
    assert len(after["rounds"]) == 1, "a refusal spends no round"
    assert after["look"] == view["look"], "nor changes the look"


async def test_the_chips_and_platforms_are_the_catalogues(stack: tuple[Gateway, Platform]) -> None:
    client = stack[0].client
    catalog = StudioCatalog().current()
    chips = await client.get("/v1/studio/chips")
    assert chips.status_code == 200, chips.text
    body = chips.json()
    assert sorted(body["chips"]) == sorted(catalog.chips)
    assert body["defaults"] == {"optimize": "clean-up", "bg_replace": "white-soft-shadow"}
    assert body["chips"]["wood-table"]["background"] == "texture wood"
    assert body["chips"]["clean-up"]["operation"] == "optimize"

    listed = await client.get("/v1/studio/platforms")
    assert listed.status_code == 200, listed.text
    platforms = listed.json()["platforms"]
    assert sorted(platforms) == ["amazon-main", "taobao-main"]
    assert platforms["taobao-main"]["width"] == platforms["taobao-main"]["height"] == 800
    assert platforms["amazon-main"]["logo"] is False
    assert platforms["amazon-main"]["background"] == "#ffffff"


async def test_a_context_changed_by_hand_out_of_the_studios_form_is_no_look(
    stack: tuple[Gateway, Platform],
) -> None:
    client = stack[0].client
    session_id = (await studio_session(client))["id"]
    patched = await client.patch(f"/v1/sessions/{session_id}", json={"context": {"lighting": "golden hour"}})
    assert patched.status_code == 200, patched.text
    view = await read(client, session_id)
    assert view["look"] is None
    edit = await client.post(f"/v1/studio/sessions/{session_id}/edit", json={"chip": "wood-table"})
    assert assert_problem(edit, 422, "validation_failed")["errors"][0]["loc"] == ["context"]
    assert (await read(client, session_id))["rounds"] == []


async def test_a_malformed_number_in_the_context_is_no_look_rather_than_an_error(
    stack: tuple[Gateway, Platform],
) -> None:
    client = stack[0].client
    session_id = (await studio_session(client))["id"]
    patched = await client.patch(
        f"/v1/sessions/{session_id}", json={"context": {"color_tone": "saturation 1.2.3"}}
    )
    assert patched.status_code == 200, patched.text
    got = await client.get(f"/v1/studio/sessions/{session_id}")
    assert got.status_code == 200, got.text
    assert got.json()["look"] is None
