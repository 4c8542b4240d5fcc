"""GET /v1/jobs/{id}/package: a job's files in one streamed ZIP, chosen by kind, with a manifest."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import msgspec
import pytest

from atelier_contracts import ids
from atelier_contracts.common import Artifact
from atelier_contracts.snapshot import JobView, StepView
from tests.hostile_uploads import image, wav
from tests.integration.test_gateway_api import T0, Gateway, assert_problem, insert_job

pytestmark = pytest.mark.integration


def episode(gw: Gateway) -> JobView:
    def made(step: str, name: str, kind: str, data: bytes, content_type: str) -> StepView:
        blob = gw.blobs.put_bytes(data, content_type)
        out = Artifact(name=name, kind=kind, blob=blob)
        return StepView(name=step, capability="x", status="succeeded", outputs=[out])

    steps = [
        made("script", "out", "text", b"INT. LIGHTHOUSE - NIGHT", "text/plain"),
        made("shot_001", "out", "image", image("PNG", (320, 180)), "image/png"),
        made("shot_002", "out", "image", image("JPEG", (320, 180)), "image/jpeg"),
        made("voice", "out", "audio", wav(0.2), "audio/wav"),
        made("../../etc", "pass\x07wd", "image", image("WEBP"), "image/webp"),  # hostile names
        StepView(name="clip", capability="video.from_image", status="failed"),
    ]
    job = JobView(
        id=ids.new_job_id(),
        tenant="default",
        kind="task",
        title="Episode 1: The Lamp",
        input={"prompt": "p"},
        status="failed",
        steps={s.name: s for s in steps},
        created_at=T0,
        updated_at=T0,
    )
    return job


def opened(body: bytes) -> tuple[zipfile.ZipFile, dict[str, object]]:
    archive = zipfile.ZipFile(io.BytesIO(body))
    return archive, json.loads(archive.read("manifest.json"))


async def test_a_package_holds_every_file_of_the_job_with_its_hash(gateway: Gateway) -> None:
    job = episode(gateway)
    await insert_job(gateway.engine, job)
    got = await gateway.client.get(f"/v1/jobs/{job.id}/package")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    assert int(got.headers["content-length"]) == len(got.content), "the size was known up front"
    assert got.headers["content-disposition"] == 'attachment; filename="Episode_1_The_Lamp.zip"'
    archive, manifest = opened(got.content)
    assert archive.namelist()[0] == "manifest.json"
    assert archive.testzip() is None
    names = archive.namelist()[1:]
    assert names == [
        "script/out.txt",
        "shot_001/out.png",
        "shot_002/out.jpg",
        "voice/out.wav",
        ".._.._etc/pass_wd.webp",  # separators and control characters of a name become _
    ]
    assert manifest["schema"] == "atelier.package/1"
    assert manifest["job_id"] == job.id
    files = manifest["files"]
    assert isinstance(files, list)
    assert [f["path"] for f in files] == names
    for entry in files:
        data = archive.read(entry["path"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size"]
    assert "clip" not in {f["step"] for f in files}, "a failed step made nothing to package"


async def test_kinds_choose_the_files_and_etags_and_head_answer(gateway: Gateway) -> None:
    job = episode(gateway)
    await insert_job(gateway.engine, job)
    url = f"/v1/jobs/{job.id}/package"
    images = await gateway.client.get(url, params=[("kind", "image")])
    _, manifest = opened(images.content)
    assert {f["kind"] for f in manifest["files"]} == {"image"}  # type: ignore[union-attr]
    both = await gateway.client.get(url, params=[("kind", "image"), ("kind", "audio")])
    _, manifest = opened(both.content)
    assert {f["kind"] for f in manifest["files"]} == {"image", "audio"}  # type: ignore[union-attr]

    etag = images.headers["etag"]
    assert etag != both.headers["etag"]
    again = await gateway.client.get(url, params=[("kind", "image")], headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    head = await gateway.client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    whole = await gateway.client.get(url)
    assert head.headers["content-length"] == str(len(whole.content))

    assert_problem(await gateway.client.get(url, params=[("kind", "../x")]), 422, "validation_failed")
    assert_problem(await gateway.client.get(f"/v1/jobs/{ids.new_job_id()}/package"), 404, "job_not_found")


async def test_a_package_whose_file_was_released_says_which(gateway: Gateway) -> None:
    job = episode(gateway)
    await insert_job(gateway.engine, job)
    gateway.blobs.delete(job.steps["voice"].outputs[0].blob.key)
    gone = await gateway.client.get(f"/v1/jobs/{job.id}/package")
    body = assert_problem(gone, 404, "file_not_found")
    assert "voice/out.wav" in body["detail"]
    ok = await gateway.client.get(f"/v1/jobs/{job.id}/package", params=[("kind", "image")])
    assert ok.status_code == 200
    assert msgspec.json.decode(zipfile.ZipFile(io.BytesIO(ok.content)).read("manifest.json"))["files"]
