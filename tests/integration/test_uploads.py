"""POST /v1/uploads through the gateway and a media ingest responder, over a real nats-server.

The hostile-upload set goes through HTTP as a client would send it (multipart, a lying file
name and declared type); limits answer as soon as they are passed; nothing is left in staging.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest
from PIL import Image

from atelier_contracts.blobstore import FileBlobStore
from atelier_devstack.natsserver import NatsServer
from atelier_gateway.app.uploads import clean_filename
from atelier_media.app.ingest import IngestResponder
from atelier_media.domain.sanitize import Limits
from tests.hostile_uploads import CASES, Case, image, jpeg_with_exif
from tests.integration.test_gateway_api import Gateway, assert_problem, open_gateway

pytestmark = pytest.mark.integration


async def media(nats_url: str, blob_dir: Path) -> AsyncIterator[None]:
    nc = await nats.connect(nats_url)
    stop = asyncio.Event()
    responder = IngestResponder(nc, FileBlobStore(blob_dir), Limits())
    task = asyncio.create_task(responder.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await nc.close()


@pytest.fixture
async def gateway(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(nats_server.url, database_url, tmp_path, upload_max_bytes=2 << 20) as gw:
        async for _ in media(nats_server.url, tmp_path / "blobs"):
            yield gw


def staged(gw: Gateway) -> list[str]:
    return sorted(p.name for p in (gw.settings.blob_dir / "tmp").iterdir())


async def upload(
    gw: Gateway, data: bytes, filename: str = "photo.png", declared: str = "image/png"
) -> httpx.Response:
    return await gw.client.post("/v1/uploads", files={"file": (filename, data, declared)})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_each_hostile_upload_gets_its_answer_over_http(gateway: Gateway, case: Case) -> None:
    response = await upload(gateway, case.data, case.filename, case.declared)
    if case.answer is None:
        assert response.status_code == 201, response.text
        body = response.json()
        stored = gateway.blobs.read_bytes(body["sha256"])
        if body["kind"] == "image":
            assert Image.open(io.BytesIO(stored)).format.lower() == body["format"]
        assert b"<?php" not in stored, "what rode along is gone"
        assert b"<script" not in stored
    else:
        status, code = case.answer
        assert_problem(response, status, code)
    assert staged(gateway) == [], "nothing is left in staging"


async def test_an_upload_is_answered_with_its_files_and_the_same_file_is_the_same_upload(
    gateway: Gateway,
) -> None:
    first = await upload(gateway, jpeg_with_exif(size=(1200, 600)), "..\\..\\holiday.jpg", "text/plain")
    assert first.status_code == 201, first.text
    body = first.json()
    assert first.headers["location"] == f"/v1/uploads/{body['id']}"
    assert {k: body[k] for k in ("kind", "format", "source_type", "width", "height", "has_alpha")} == {
        "kind": "image",
        "format": "jpeg",
        "source_type": "image/jpeg",
        "width": 600,  # turned upright: EXIF said so
        "height": 1200,
        "has_alpha": False,
    }
    assert body["filename"] == "holiday.jpg", "a label, not a path"
    assert clean_filename("../a/b\x07c\x00.png") == "bc.png"
    original = await gateway.client.get(body["links"]["original"])
    assert original.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(original.content)).size == (600, 1200)
    thumb = await gateway.client.get(body["links"]["thumbnail"])
    assert Image.open(io.BytesIO(thumb.content)).size == (128, 256)
    read = (await gateway.client.get(f"/v1/uploads/{body['id']}")).json()
    assert {k: v for k, v in read.items() if k != "links"} == {k: v for k, v in body.items() if k != "links"}

    again = await upload(gateway, jpeg_with_exif(size=(1200, 600)), "again.jpg")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    listed = (await gateway.client.get("/v1/uploads")).json()["uploads"]
    assert [u["id"] for u in listed] == [body["id"]]
    assert_problem(await gateway.client.get("/v1/uploads/upl_" + "0" * 24), 404, "upload_not_found")


async def test_a_file_over_the_limit_is_refused_as_soon_as_it_is_passed(gateway: Gateway) -> None:
    big = image("BMP", (1100, 1000))  # ~3.3 MB, over the 2 MiB this gateway takes
    declared = await upload(gateway, big, "big.png")
    assert_problem(declared, 413, "input_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        yield image("PNG")[:64]
        for _ in range(100):
            yield b"\0" * 65536
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = await gateway.client.post(
        "/v1/uploads", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )
    assert_problem(streamed, 413, "input_too_large")
    assert staged(gateway) == []


async def test_a_disguised_file_is_refused_from_its_first_bytes(gateway: Gateway) -> None:
    sent = 0

    async def executable() -> AsyncIterator[bytes]:
        nonlocal sent
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="cat.jpg"\r\n'
        yield b"Content-Type: image/jpeg\r\n\r\n"
        for _ in range(20):
            sent += 1
            yield b"MZ" + b"\x90" * 65534
        yield b"\r\n" + boundary + b"--\r\n"

    response = await gateway.client.post(
        "/v1/uploads",
        content=executable(),
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert_problem(response, 415, "unsupported_media")
    assert response.headers["connection"] == "close"
    assert sent < 20, "refused before the rest was read"
    assert staged(gateway) == []


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b'{"file": "x"}', "application/json", "validation_failed"),
        (
            b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            "upload_empty",
        ),
        (b"not multipart at all", "multipart/form-data; boundary=b", "validation_failed"),
    ],
)
async def test_a_body_without_a_file_part_says_so(
    gateway: Gateway, body: bytes, content_type: str, code: str
) -> None:
    response = await gateway.client.post("/v1/uploads", content=body, headers={"Content-Type": content_type})
    assert response.status_code in (400, 422)
    assert response.json()["code"] == code
    assert staged(gateway) == []


async def test_with_no_media_service_an_upload_is_503_and_nothing_stays(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with open_gateway(nats_server.url, database_url, tmp_path, upload_timeout_s=1.0) as gw:
        response = await upload(gw, image("PNG"))
        assert_problem(response, 503, "service_unavailable")
        assert response.headers["retry-after"]
        assert staged(gw) == []
        assert (await gw.client.get("/v1/uploads")).json() == {"uploads": []}


async def test_an_upload_while_the_store_refuses_writes_is_a_503(gateway: Gateway) -> None:
    temp = gateway.settings.blob_dir / "tmp"
    shutil.rmtree(temp)
    temp.write_bytes(b"")  # every write fails with a real OS error (ENOTDIR)
    try:
        response = await upload(gateway, image("PNG"))
        assert_problem(response, 503, "service_unavailable")
    finally:
        temp.unlink()
        temp.mkdir()
    assert (await upload(gateway, image("PNG"))).status_code == 201, "and fine once it is back"


async def test_no_request_can_name_blobs_for_a_job_itself(gateway: Gateway) -> None:
    """``input.attached`` is the gateway's to fill from real uploads: a client naming any blob
    there (another tenant's, one never made safe) is refused, however the job would be made."""
    forged = {
        "upload": "upl_" + "0" * 24,
        "presets": ["web-1080"],
        "attached": {
            "upl_" + "0" * 24: {
                "name": "original",
                "kind": "image",
                "blob": {"key": "a" * 64, "size": 1, "content_type": "text/html"},
            }
        },
    }
    job = await gateway.client.post("/v1/jobs", json={"kind": "export", "input": forged})
    assert_problem(job, 422, "validation_failed")
    schedule = await gateway.client.post(
        "/v1/schedules", json={"cron": "0 9 * * *", "template": {"kind": "export", "input": forged}}
    )
    assert_problem(schedule, 422, "validation_failed")
    assert ["body", "input", "attached"] in [e["loc"] for e in job.json()["errors"]]
    assert any(e["loc"][-1] == "attached" for e in schedule.json()["errors"]), schedule.json()


async def test_a_body_cut_before_its_closing_boundary_is_refused(gateway: Gateway) -> None:
    cut = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + image("PNG")
    response = await gateway.client.post(
        "/v1/uploads", content=cut, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert_problem(response, 422, "validation_failed")
    assert staged(gateway) == []


async def test_the_same_file_uploaded_twice_at_once_is_one_upload(gateway: Gateway) -> None:
    data = jpeg_with_exif(size=(400, 300))
    first, second = await asyncio.gather(upload(gateway, data, "a.jpg"), upload(gateway, data, "b.jpg"))
    assert sorted([first.status_code, second.status_code]) in ([200, 201], [201, 201])
    assert first.json()["id"] == second.json()["id"]
    assert len((await gateway.client.get("/v1/uploads")).json()["uploads"]) == 1
