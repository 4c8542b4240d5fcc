"""A reel through the five services: six shots made from prompts, each line spoken, composited
into one MP4 checked with PyAV (FFmpeg's own reader: duration, streams, subtitle cues); and the
export service killed -9 while it encodes: the step is done again and the job ends right."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import composite_progress, step_successes, wait_terminal

pytestmark = pytest.mark.e2e

SHOTS = [
    {"prompt": "a lighthouse at dusk, waves below", "line": "The lamp was lit at six.", "duration_s": 2.0},
    {
        "prompt": "a cat on a spiral staircase",
        "line": "The cat climbed up.",
        "duration_s": 1.5,
        "move": "pan_up",
    },
    {
        "prompt": "a ship far out at sea",
        "line": "A ship came close.",
        "duration_s": 2.25,
        "move": "pan_right",
    },
    {
        "prompt": "the keeper with a lantern",
        "line": "The keeper waved.",
        "duration_s": 1.75,
        "move": "zoom_out",
    },
    {"prompt": "the ship turning away", "line": "", "duration_s": 1.0, "move": "pan_left"},
    {
        "prompt": "morning light on the rocks",
        "line": "And then it was day.",
        "duration_s": 2.5,
        "move": "static",
    },
]


def submit_reel(client: httpx.Client, width: int = 320, height: int = 180) -> str:
    body = {
        "kind": "reel",
        "title": "The Lighthouse",
        "input": {"shots": SHOTS, "width": width, "height": height},
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def check_episode(client: httpx.Client, job: dict[str, Any]) -> None:
    [episode] = [a for a in job["assets"] if a["step"] == "composite" and a["name"] == "episode"]
    data = client.get(episode["url"]).content
    frames = sum(round(s["duration_s"] * 24) for s in SHOTS)  # type: ignore[operator]
    with av.open(io.BytesIO(data)) as container:
        assert {s.type: s.codec_context.name for s in container.streams} == {
            "video": "h264",
            "audio": "aac",
            "subtitle": "mov_text",
        }
        video = container.streams.video[0]
        assert float(video.duration * video.time_base) == pytest.approx(frames / 24, abs=1e-9)
        assert sum(1 for _ in container.decode(video=0)) == frames, "to the frame"
        container.seek(0)
        cues = [bytes(p)[2:].decode() for p in container.demux(container.streams.subtitles[0]) if p.size > 2]
    assert cues == [s["line"] for s in SHOTS if s["line"]]


def test_a_reel_of_six_shots_is_one_episode(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        job = wait_terminal(client, submit_reel(client), within=240)
        assert job["status"] == "succeeded", job
        check_episode(client, job)
        clips = [a for a in job["assets"] if a["kind"] == "video" and a["step"].startswith("shot_")]
        assert len(clips) == 6
        assert len({a["url"].split("?")[0] for a in clips}) == 6, "every shot differs"


def test_the_export_service_killed_while_it_encodes(stack: Stack, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        job_id = submit_reel(client, 960, 540)  # a longer encode: a wider window to kill it in
        # Followed live: the encode's progress shows on the job's stream, and it is killed then.
        tick = composite_progress(client, job_id)
        assert 0 < tick["fraction"] < 1
        assert tick["message"].startswith("shot ")
        stack.kill("export")
        stack.restart("export")
        job = wait_terminal(client, job_id, within=240)
        assert job["status"] == "succeeded", job
        assert step_successes(client, job_id)["composite"] == 1, "done again, recorded once"
        check_episode(client, job)
