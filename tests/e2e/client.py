"""A small synchronous client for the end-to-end tests: submit, wait, download."""

from __future__ import annotations

import io
import wave
import zipfile
from collections import Counter
from typing import Any

import httpx
from PIL import Image

from tests.support import eventually_sync

TERMINAL = {"succeeded", "failed", "cancelled"}


def submit_story(client: httpx.Client, title: str, prompt: str) -> dict[str, Any]:
    r = client.post(
        "/v1/jobs", json={"kind": "story", "title": title, "input": {"prompt": prompt}, "tags": ["e2e"]}
    )
    assert r.status_code == 202, r.text
    assert r.headers["location"].endswith(f"/v1/jobs/{r.json()['id']}")
    return dict(r.json())


def wait_terminal(client: httpx.Client, job_id: str, within: float = 120) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        r = client.get(f"/v1/jobs/{job_id}")
        if r.status_code == 200 and r.json()["status"] in TERMINAL:
            return dict(r.json())
        return None

    return eventually_sync(probe, within=within, every=0.2)


def step_successes(client: httpx.Client, job_id: str) -> Counter[str]:
    r = client.get(f"/v1/jobs/{job_id}/events")
    assert r.status_code == 200, r.text
    return Counter(e["data"]["step"] for e in r.json()["events"] if e["type"] == "step_succeeded")


def check_asset(kind: str, content_type: str, data: bytes) -> None:
    """Each asset is what it says it is, judged by its bytes."""
    if kind == "text":
        assert content_type.startswith("text/markdown")
        assert len(data.decode().split()) > 50
    elif kind == "image":
        img = Image.open(io.BytesIO(data))
        assert img.format == "PNG"
        assert min(img.size) >= 1024
    elif kind == "thumbnail":
        img = Image.open(io.BytesIO(data))
        assert img.format == "WEBP"
        assert max(img.size) == 256
    elif kind == "audio":
        with wave.open(io.BytesIO(data)) as w:
            assert w.getnframes() / w.getframerate() > 1.0
    elif kind == "bundle":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            assert names[0] == "manifest.json"
            assert {"story.md", "cover.png", "thumbnail.webp", "narration.wav"} <= set(names)
            assert z.testzip() is None
    else:
        raise AssertionError(f"unexpected asset kind {kind}")
