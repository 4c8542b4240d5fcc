"""An anime episode through the services: a 12-sentence script becomes a shot list (its length
from the script), every shot an image in the episode's style, a clip of it and its spoken line,
and one composited MP4 checked with PyAV — its duration the sum of the shots' to the frame,
audio, and a subtitle track whose cues are the lines — then the episode's package."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from typing import Any

import av
import httpx
import pytest

from atelier_devstack.scripts import LANTERN_BOAT as SCRIPT
from atelier_devstack.stack import Stack
from tests.e2e.client import all_events, composite_progress, step_successes, wait_terminal
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e


def episode_job(client: httpx.Client, **extra: Any) -> str:
    body = {
        "kind": "episode",
        "title": "The Lantern Boat",
        "input": {"script": SCRIPT, "style": "anime", "width": 320, "height": 180, **extra},
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_a_twelve_shot_episode_from_a_script(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        job = wait_terminal(client, episode_job(client), within=300)
        assert job["status"] == "succeeded", job
        assets = {a["step"]: a for a in job["assets"] if a["step"] != "package" and a["name"] != "poster"}
        assets["composite"] = next(a for a in job["assets"] if a["name"] == "episode")
        shotlist = json.loads(client.get(assets["shotlist"]["url"]).content)["shots"]
        assert len(shotlist) == 12, "one shot per sentence of the script"
        assert job["input"]["look"]["look"] == "cel", "the style preset's look, fixed at submission"
        successes = step_successes(client, job["id"])
        for i in range(1, 13):
            assert (
                successes[f"image_{i:03d}"] == successes[f"clip_{i:03d}"] == successes[f"voice_{i:03d}"] == 1
            )
        images = {a["url"].split("?")[0] for s, a in assets.items() if s.startswith("image_")}
        assert len(images) == 12, "shots that differ"
        spoken = {s: client.get(a["url"]).content for s, a in assets.items() if s.startswith("voice_")}
        assert len(set(spoken.values())) == len(spoken) == 12, "every shot speaks its own line"
        with av.open(io.BytesIO(spoken["voice_002"])) as voice:
            said = float(voice.duration or 0) / 1e6
        assert said < 8, f"one line, not the whole shot list ({said:.1f} s)"

        data = client.get(assets["composite"]["url"]).content
        frames = sum(round(s["duration_s"] * 24) for s in shotlist)
        with av.open(io.BytesIO(data)) as container:
            kinds = {s.type: s.codec_context.name for s in container.streams}
            assert kinds == {"video": "h264", "audio": "aac", "subtitle": "mov_text"}
            assert sum(1 for _ in container.decode(video=0)) == frames, "to the frame"
            container.seek(0)
            cues = [
                bytes(p)[2:].decode() for p in container.demux(container.streams.subtitles[0]) if p.size > 2
            ]
        assert cues == [s["line"] for s in shotlist]
        assert cues[1] == "Today the lantern boat sails", "dialogue is the quoted words"

        [package] = [a for a in job["assets"] if a["step"] == "package"]
        with zipfile.ZipFile(io.BytesIO(client.get(package["url"]).content)) as zf:
            names = zf.namelist()
            assert zf.testzip() is None, "every member's checksum is right"
        assert sum(1 for n in names if n.endswith(".mp4")) >= 13, "the episode and every clip"


def test_an_unknown_style_is_refused_at_the_door(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        r = client.post("/v1/jobs", json={"kind": "episode", "input": {"script": "A cat.", "style": "oil"}})
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "validation_failed"
        assert "anime" in r.text, "the refusal names the styles there are"


def test_a_project_renders_its_episodes_in_its_style_on_its_budget(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        bad = client.post("/v1/projects", json={"name": "x", "shot_template": "{scene} at night"})
        assert (bad.status_code, bad.json()["code"]) == (422, "validation_failed")
        r = client.post(
            "/v1/projects",
            json={
                "name": "Harbour Tales",
                "style": "ink-wash",
                "budget_usd": 5,
                "shot_template": "{description}, in the fishing town of Harbourside",
            },
        )
        assert r.status_code == 201, r.text
        project = r.json()
        pid = project["id"]
        assert (
            client.post("/v1/projects", json={"name": "x", "style": "oil"}).json()["code"]
            == "validation_failed"
        )
        r = client.post(
            f"/v1/projects/{pid}/episodes",
            json={"title": "Fog", "script": 'Fog rolls in. "Ring the bell," says Mika. The bell rings.'},
        )
        assert r.status_code == 201, r.text
        eid = r.json()["id"]
        rendered = client.post(f"/v1/projects/{pid}/episodes/{eid}/render")
        assert rendered.status_code == 202, rendered.text
        job = wait_terminal(client, rendered.json()["id"], within=120)
        assert job["status"] == "succeeded", job
        assert job["input"]["look"]["look"] == "ink"
        assert job["input"]["project"] == pid
        events = all_events(client, job["id"])
        prompts = [
            e["data"]["params"]["prompt"]
            for e in events
            if e["type"] == "step_dispatched" and e["data"]["step"].startswith("image_")
        ]
        assert len(prompts) == 3
        assert all(p.startswith("East Asian ink wash") for p in prompts), "the style around it"
        assert all("in the fishing town of Harbourside" in p for p in prompts), "the project's template"

        improved = client.post(
            f"/v1/projects/{pid}/improve-prompt", json={"idea": "a bell in the fog", "shots": 4}
        )
        assert improved.status_code == 202, improved.text
        helped = wait_terminal(client, improved.json()["id"])
        assert helped["status"] == "succeeded", helped
        [text] = [a for a in helped["assets"] if a["kind"] == "text"]
        assert len(client.get(text["url"]).text.split()) > 20, "an idea expanded into a script"

        episode = client.get(f"/v1/projects/{pid}/episodes/{eid}").json()
        assert episode["job"]["status"] == "succeeded"
        assert any(a["step"] == "composite" for a in episode["job"]["assets"])
        usage = client.get(f"/v1/projects/{pid}").json()["usage"]
        assert usage["calls"] == 1 + 3 * 3 + 1, (
            "the shot list, per shot an image, a clip and a voice; the help"
        )
        assert usage["units"]["images"] == 3
        assert usage["units"]["video_seconds"] == sum(s["duration_s"] for s in job_shots(client, job))
        budgets = {b["project"]: b for b in client.get("/v1/budgets").json()["items"]}
        assert budgets[pid]["limit_usd"] == 5

        assert client.patch(f"/v1/projects/{pid}", json={"review": "auto"}).json()["review"] == "auto"
        assert [p["id"] for p in client.get("/v1/projects").json()["items"]] == [pid]
        assert client.delete(f"/v1/projects/{pid}/episodes/{eid}").status_code == 204
        gone = client.get(f"/v1/projects/{pid}/episodes/{eid}")
        assert (gone.status_code, gone.json()["code"]) == (404, "episode_not_found")
        assert client.delete(f"/v1/projects/{pid}").status_code == 204
        assert client.get(f"/v1/projects/{pid}").json()["code"] == "project_not_found"


def job_shots(client: httpx.Client, job: dict[str, Any]) -> list[dict[str, Any]]:
    [shotlist] = [a for a in job["assets"] if a["step"] == "shotlist"]
    return list(json.loads(client.get(shotlist["url"]).content)["shots"])


def calls_per_attempt(client: httpx.Client, job_id: str) -> Counter[tuple[str, int]]:
    events = all_events(client, job_id)
    return Counter(
        (e["data"]["step"], e["data"]["attempt"])
        for e in events
        if e["type"] == "provider_called" and e["data"]["call"]["outcome"] == "succeeded"
    )


def test_the_orchestrator_killed_during_the_fan_out_and_export_during_the_composite(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        job_id = episode_job(client, width=640, height=360)

        def fanned_out() -> dict[str, Any] | None:
            job = client.get(f"/v1/jobs/{job_id}").json()
            planned = [s for s in job["steps"] if s["name"].startswith("clip_")]
            done = [s for s in planned if s["status"] == "succeeded"]
            return job if planned and len(done) < len(planned) else None

        eventually_sync(fanned_out, within=120, every=0.05)
        stack.kill("orchestrator")  # the shots half made
        stack.restart("orchestrator")

        tick = composite_progress(client, job_id)
        assert 0 < tick["fraction"] < 1
        stack.kill("export")  # while it encodes
        stack.restart("export")

        job = wait_terminal(client, job_id, within=300)
        assert job["status"] == "succeeded", job
        successes = step_successes(client, job_id)
        assert set(successes.values()) == {1}, "every step recorded once"
        assert len([s for s in successes if s.startswith("clip_")]) == 12
        made = calls_per_attempt(client, job_id)
        assert set(made.values()) == {1}, "no attempt billed twice"
        shots = job_shots(client, job)
        data = client.get(next(a["url"] for a in job["assets"] if a["name"] == "episode")).content
        with av.open(io.BytesIO(data)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == sum(round(s["duration_s"] * 24) for s in shots)
