"""A shop owner's first export, through the five services: upload a photo, export it for the web
and a marketplace, download every file and check it by its content; a changed presets file is
used without a restart."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from minio import Minio
from moto.server import ThreadedMotoServer
from PIL import Image

from atelier_contracts.kinds.export import variant_step
from atelier_devstack.stack import Stack
from tests.e2e.client import e2e_stack, running, step_successes, wait_terminal
from tests.hostile_uploads import jpeg_with_exif
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e


def product_photo() -> bytes:
    """A 3000 by 2000 studio photo: a dark product on a light, transparent-free background."""
    img = Image.new("RGB", (3000, 2000), (235, 235, 230))
    img.paste((40, 60, 120), (1000, 500, 2000, 1500))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_upload_then_export_in_two_presets(tmp_path: Path) -> None:
    presets = tmp_path / "presets.toml"
    presets.write_text(
        "[presets.web-1080]\nformat = 'webp'\nlong_edge = 1080\nquality = 82\n"
        "[presets.market-1500]\nformat = 'jpeg'\nlong_edge = 1500\nquality = 90\n"
    )
    stack: Stack
    with (
        running(e2e_stack(tmp_path, ATELIER_PRESETS_FILE=str(presets))) as stack,
        httpx.Client(base_url=stack.gateway_url, timeout=30) as client,
    ):
        sent = client.post("/v1/uploads", files={"file": ("chair.jpg", product_photo(), "image/jpeg")})
        assert sent.status_code == 201, sent.text
        upload = sent.json()
        assert (upload["width"], upload["height"], upload["format"]) == (3000, 2000, "jpeg")
        thumb = Image.open(io.BytesIO(client.get(upload["links"]["thumbnail"]).content))
        assert (thumb.format, thumb.size) == ("WEBP", (256, 171))

        job = client.post(
            "/v1/jobs",
            json={
                "kind": "export",
                "input": {"upload": upload["id"], "presets": ["web-1080", "market-1500"]},
            },
        )
        assert job.status_code == 202, job.text
        done = wait_terminal(client, job.json()["id"])
        assert done["status"] == "succeeded", done
        files = {a["name"]: a for a in done["assets"]}
        assert set(files) == {"original", "web-1080", "market-1500"}
        expected = {"web-1080": ("WEBP", (1080, 720)), "market-1500": ("JPEG", (1500, 1000))}
        for name, (fmt, size) in expected.items():
            got = client.get(files[name]["url"])
            assert got.status_code == 200
            img = Image.open(io.BytesIO(got.content))
            assert (img.format, img.size) == (fmt, size)
            red, _, blue = img.convert("RGB").getpixel((size[0] // 2, size[1] // 2))  # type: ignore[misc]
            assert blue > red, "the product is where it was, in its colour"
            assert blue > 90

        # The export as one package: every file in it, each checked by its content and hash.
        package = client.get(f"/v1/jobs/{done['id']}/package", params=[("kind", "image")])
        assert package.status_code == 200
        with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            sizes = {}
            for entry in manifest["files"]:
                data = archive.read(entry["path"])
                assert hashlib.sha256(data).hexdigest() == entry["sha256"]
                sizes[entry["name"]] = Image.open(io.BytesIO(data)).size
        assert sizes == {"original": (3000, 2000), "web-1080": (1080, 720), "market-1500": (1500, 1000)}

        # A new preset, added while everything runs: the next export uses it.
        presets.write_text(presets.read_text() + "[presets.square-800]\nformat = 'png'\nlong_edge = 800\n")
        names = {p["name"] for p in client.get("/v1/presets").json()["presets"]}
        assert "square-800" in names
        again = client.post(
            "/v1/jobs", json={"kind": "export", "input": {"upload": upload["id"], "presets": ["square-800"]}}
        )
        done = wait_terminal(client, again.json()["id"])
        assert done["status"] == "succeeded", done
        [square] = [a for a in done["assets"] if a["name"] == "square-800"]
        img = Image.open(io.BytesIO(client.get(square["url"]).content))
        assert (img.format, img.size) == ("PNG", (800, 533))

        refused = client.post("/v1/uploads", files={"file": ("x.jpg", b"MZ" + b"\0" * 5000, "image/jpeg")})
        assert (refused.status_code, refused.json()["code"]) == (415, "unsupported_media")
        turned = client.post("/v1/uploads", files={"file": ("p.jpg", jpeg_with_exif(), "image/jpeg")}).json()
        assert (turned["width"], turned["height"]) == (40, 80)


def test_the_same_on_an_s3_blob_store_every_machine_could_reach(tmp_path: Path) -> None:
    """Each service with its own local cache of one S3 bucket (moto's server speaks S3): the
    upload staged by the gateway is read by media, the variants made by media are packaged by
    the gateway, and a story runs through all five services."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "ATELIER_BLOB_STORE": "s3",
        "ATELIER_S3_ENDPOINT": f"{host}:{port}",
        "ATELIER_S3_BUCKET": "atelier-e2e",
        "ATELIER_S3_ACCESS_KEY": "test",
        "ATELIER_S3_SECRET_KEY": "test-secret",
    }
    try:
        with (
            running(e2e_stack(tmp_path, **env)) as stack,
            httpx.Client(base_url=stack.gateway_url, timeout=30) as client,
        ):
            sent = client.post("/v1/uploads", files={"file": ("chair.jpg", product_photo(), "image/jpeg")})
            assert sent.status_code == 201, sent.text
            body = {"kind": "export", "input": {"upload": sent.json()["id"], "presets": ["web-1080"]}}
            done = wait_terminal(client, client.post("/v1/jobs", json=body).json()["id"])
            assert done["status"] == "succeeded", done
            package = client.get(f"/v1/jobs/{done['id']}/package")
            with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
                names = archive.namelist()
            assert names == ["manifest.json", "source/original.jpg", "variant-web-1080/web-1080.webp"]
            story = client.post(
                "/v1/jobs", json={"kind": "story", "title": "S3", "input": {"prompt": "a fox on a cloud"}}
            )
            assert wait_terminal(client, story.json()["id"])["status"] == "succeeded"
        in_bucket = bucket_keys(f"http://{host}:{port}")
        assert len([k for k in in_bucket if len(k) == 64]) >= 8, "the blobs are in the bucket"
        assert not [k for k in in_bucket if k.startswith("staging/")], "no staged upload left behind"
    finally:
        server.stop()


def bucket_keys(endpoint: str) -> list[str]:
    client = Minio(
        endpoint.removeprefix("http://"), access_key="test", secret_key="test-secret", secure=False
    )
    return [o.object_name or "" for o in client.list_objects("atelier-e2e")]


def noisy_photo(width: int, height: int) -> bytes:
    """A photo of grain: slow to encode losslessly, as a big poster is."""
    img = Image.merge("RGB", [Image.effect_noise((width, height), 80) for _ in range(3)])
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def test_the_media_service_killed_while_it_encodes_a_variant(tmp_path: Path) -> None:
    presets = tmp_path / "presets.toml"
    presets.write_text("[presets.poster]\nformat = 'png'\nlong_edge = 4000\n")
    with (
        running(e2e_stack(tmp_path, ATELIER_PRESETS_FILE=str(presets))) as stack,
        httpx.Client(base_url=stack.gateway_url, timeout=30) as client,
    ):
        sent = client.post(
            "/v1/uploads", files={"file": ("grain.jpg", noisy_photo(4000, 3000), "image/jpeg")}
        )
        assert sent.status_code == 201, sent.text
        job = client.post(
            "/v1/jobs", json={"kind": "export", "input": {"upload": sent.json()["id"], "presets": ["poster"]}}
        )
        job_id = job.json()["id"]
        step = variant_step("poster")

        def encoding() -> bool:
            steps = {s["name"]: s for s in client.get(f"/v1/jobs/{job_id}").json()["steps"]}
            return steps[step]["status"] == "running"

        eventually_sync(encoding, within=60, every=0.02)
        stack.kill("media")  # kill -9 while the PNG is being written
        stack.restart("media")
        done = wait_terminal(client, job_id, within=120)
        assert done["status"] == "succeeded", done
        assert step_successes(client, job_id)[step] == 1, "done again, recorded once"
        [poster] = [a for a in done["assets"] if a["name"] == "poster"]
        img = Image.open(io.BytesIO(client.get(poster["url"]).content))
        assert (img.format, img.size) == ("PNG", (4000, 3000))
