"""Helpers of the end-to-end tests: the platform to run, a small synchronous client (submit, wait,
download), and the rebuild check."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
from httpx_sse import connect_sse
from PIL import Image

from atelier_devstack.stack import Stack
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


def composite_progress(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The first progress tick of the job's composite, followed live on its stream (while it
    encodes: the moment a test kills the export service in)."""
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/stream") as source:
        for sse in source.iter_sse():
            if sse.event == "progress" and json.loads(sse.data)["step"] == "composite":
                return dict(json.loads(sse.data))
    raise AssertionError(f"the stream of {job_id} ended with no composite progress")


def all_events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = client.get(f"/v1/jobs/{job_id}/events", params=params).json()
        events += page["events"]
        if not page.get("next"):
            return events
        params["after"] = page["next"]


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
    elif kind == "audio":  # WAV (the speech, its master) or the format it was delivered as
        with av.open(io.BytesIO(data)) as container:
            assert container.streams.audio
            assert (container.duration or 0) / 1e6 > 1.0
    elif kind == "bundle":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            assert names[0] == "manifest.json"
            assert {"story.md", "cover.png", "thumbnail.webp", "audio.mp3", "audio-master.wav"} <= set(names)
            assert z.testzip() is None
    else:
        raise AssertionError(f"unexpected asset kind {kind}")


def verify_rebuild(stack: Stack, tmp_path: Path) -> None:
    """``atelier-orchestrator rebuild --verify`` into a fresh database equals the live read model."""
    rebuilt = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "atelier-orchestrator"), "rebuild", "--into", rebuilt, "--verify"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert '"equal": true' in result.stdout


def e2e_stack(tmp_path: Path, **extra_env: str) -> Stack:
    """The platform for an end-to-end test: short ack waits, so messages held by a killed process
    come back within seconds."""
    defaults = {
        "ATELIER_WORK_ACK_WAIT_S": "4",
        "ATELIER_ORCHESTRATOR_ACK_WAIT_S": "3",
        "ATELIER_SWEEP_INTERVAL_S": "0.5",
        "ATELIER_PROVIDER_ROUTER_CONCURRENCY": "8",
        "ATELIER_PROGRESS_EVERY_S": "0.1",
    }
    return Stack.with_free_ports(tmp_path / "state", **{**defaults, **extra_env})


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
