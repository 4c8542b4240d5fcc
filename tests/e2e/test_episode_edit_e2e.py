"""The anime studio's review, composite and package through the services: a 12-shot episode in
a project with manual review; two shots rejected come back drawn again with the feedback, the
composite uses their new takes; the timeline edited (reordered, trimmed, extended, a shot
dropped, a take swapped back) and exported again re-renders only what changed, counted in
provider calls; the episode's package holds what its config asks for, checksums right."""

from __future__ import annotations

import hashlib
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
from tests.e2e.client import all_events, wait_terminal
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e
FPS = 24


def provider_calls(client: httpx.Client, job_id: str) -> Counter[str]:
    """The job's provider calls that answered, by capability (what is billed)."""
    events = all_events(client, job_id)
    return Counter(
        e["data"]["capability"]
        for e in events
        if e["type"] == "provider_called" and e["data"]["call"]["outcome"] == "succeeded"
    )


def mp4(client: httpx.Client, url: str) -> tuple[int, list[str], set[str]]:
    """The video's frames, its subtitle cues and its streams' kinds."""
    with av.open(io.BytesIO(client.get(url).content)) as container:
        kinds = {s.type for s in container.streams}
        frames = sum(1 for _ in container.decode(video=0))
        container.seek(0)
        cues = [bytes(p)[2:].decode() for p in container.demux(container.streams.subtitles[0]) if p.size > 2]
    return frames, cues, kinds


def test_review_per_shot_then_timeline_edits_re_render_only_what_changed(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        pid = client.post("/v1/projects", json={"name": "Harbour", "review": "manual"}).json()["id"]
        base = f"/v1/projects/{pid}/episodes"
        eid = client.post(base, json={"title": "Lantern", "script": SCRIPT}).json()["id"]
        episode = f"{base}/{eid}"
        assert client.get(f"{episode}/composite").json()["code"] == "episode_not_rendered"
        job_id = client.post(f"{episode}/render").json()["id"]

        def waiting(count: int) -> dict[str, Any] | None:
            view = client.get(episode).json()
            return view if len(view["waiting"]) == count else None

        first = eventually_sync(lambda: waiting(12), within=120)
        assert all(s["clip"] == "pending" for s in first["shots"]), "no clip before its verdict"
        rejected = {3: "the lanterns brighter", 7: "a calmer sea"}
        drawn = {
            s["shot"]: client.get(s["image_url"]).content for s in first["shots"] if s["shot"] in rejected
        }
        verdicts = [
            {"shot": i, "verdict": "reject", "feedback": rejected[i]}
            if i in rejected
            else {"shot": i, "verdict": "approve"}
            for i in range(1, 13)
        ]
        r = client.post(f"{episode}/review", json={"reviewer": "kai", "verdicts": verdicts})
        assert r.status_code == 202, r.text
        again = eventually_sync(lambda: waiting(2), within=120)
        assert again["waiting"] == [3, 7], "the rejected shots come back for review"
        for shot in again["shots"]:
            if shot["shot"] in rejected:
                assert shot["image_attempts"] == 2
                assert shot["feedback"] == rejected[shot["shot"]]
                assert client.get(shot["image_url"]).content != drawn[shot["shot"]], "drawn again"
            else:
                assert shot["image_attempts"] == 1
        r = client.post(
            f"{episode}/review",
            json={
                "reviewer": "kai",
                "verdicts": [{"shot": 3, "verdict": "approve"}, {"shot": 7, "verdict": "approve"}],
            },
        )
        assert r.status_code == 202, r.text
        r = client.post(f"{episode}/review", json={"verdicts": [{"shot": 3, "verdict": "approve"}]})
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "illegal_transition", r.text
        job = wait_terminal(client, job_id, within=300)
        assert job["status"] == "succeeded", job
        view = client.get(episode).json()
        records = [
            (r["round"], r["verdict"], r["feedback"], r["reviewer"]) for r in view["shots"][2]["reviews"]
        ]
        assert records == [(1, "reject", "the lanterns brighter", "kai"), (2, "approve", "", "kai")]
        events = all_events(client, job_id)
        filmed_from = [
            e["data"]["inputs"]["image_003.image"]["blob"]["key"]
            for e in events
            if e["type"] == "step_dispatched" and e["data"]["step"] == "clip_003"
        ]
        images = [
            e["data"]["outputs"][0]["blob"]["key"]
            for e in events
            if e["type"] == "step_succeeded" and e["data"]["step"] == "image_003"
        ]
        assert len(images) == 2
        assert images[0] != images[1]
        assert filmed_from == [images[1]], "filmed once, from the take drawn again"
        assert provider_calls(client, job_id)["image.generate"] == 14, "12 images and 2 drawn again"

        # The composite: made from the render, every shot's first take.
        made = client.get(f"{episode}/composite").json()
        assert made["status"] == "done"
        assert len(made["timeline"]) == 12
        durations = {c["shot"]: c["duration_s"] for c in made["timeline"]}
        frames, _, kinds = mp4(client, made["video"]["url"])
        assert frames == sum(round(d * FPS) for d in durations.values()), "to the frame"
        assert kinds == {"video", "audio", "subtitle"}
        poster = client.get(made["video"]["poster_url"])
        assert poster.status_code == 200, "a JPEG poster frame"
        assert poster.content[:3] == b"\xff\xd8\xff", "a JPEG poster frame"

        # Edit: shots 1 and 2 swapped, 4 trimmed, 5 extended, 6 dropped.
        timeline: list[dict[str, Any]] = [{"shot": 2}, {"shot": 1}, {"shot": 3}]
        timeline += [{"shot": 4, "duration_s": durations[4] - 1}, {"shot": 5, "duration_s": durations[5] + 2}]
        timeline += [{"shot": i} for i in range(7, 13)]
        edited = client.patch(f"{episode}/composite", json={"timeline": timeline}).json()
        assert edited["status"] == "editing"
        assert [c["shot"] for c in edited["timeline"] if c["refilm"]] == [5], "only the extended shot"
        r = client.post(f"{episode}/composite/export")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "exporting", r.text
        cut = r.json()["exports"][-1]["job_id"]
        busy = client.patch(f"{episode}/composite", json={"timeline": timeline})
        assert busy.status_code == 409, busy.text
        assert busy.json()["code"] == "composite_exporting", busy.text
        assert wait_terminal(client, cut, within=300)["status"] == "succeeded"
        assert provider_calls(client, cut) == Counter({"video.from_image": 1}), "only shot 5 filmed again"
        done = client.get(f"{episode}/composite").json()
        assert done["status"] == "done"
        expected = [durations[2], durations[1], durations[3], durations[4] - 1, durations[5] + 2]
        expected += [durations[i] for i in range(7, 13)]
        frames, cues, _ = mp4(client, done["video"]["url"])
        assert frames == sum(round(d * FPS) for d in expected)
        lines = {c["shot"]: c["line"] for c in made["timeline"]}
        assert cues == [lines[c["shot"]] for c in done["timeline"] if lines[c["shot"]]], "in the new order"
        takes = [t["take"] for t in done["takes"] if t["shot"] == 5]
        assert takes == [1, 2]
        assert done["timeline"][4]["take"] == 2
        again = client.post(f"{episode}/composite/export")
        assert again.status_code == 200, "nothing changed"
        assert again.json()["exports"] == done["exports"], "nothing changed"

        # Swap shot 5 back to its first take at its first length: nothing is filmed.
        timeline[4] = {"shot": 5, "duration_s": durations[5], "take": 1}
        assert not any(
            c["refilm"]
            for c in client.patch(f"{episode}/composite", json={"timeline": timeline}).json()["timeline"]
        )
        second = client.post(f"{episode}/composite/export").json()["exports"][-1]["job_id"]
        assert wait_terminal(client, second, within=300)["status"] == "succeeded"
        assert provider_calls(client, second) == Counter(), "no provider call at all"
        swapped = client.get(f"{episode}/composite").json()
        expected[4] = durations[5]
        assert mp4(client, swapped["video"]["url"])[0] == sum(round(d * FPS) for d in expected)
        r = client.patch(f"{episode}/composite", json={"timeline": [{"shot": 5, "take": 9}]})
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "take_not_found", r.text
        r = client.patch(f"{episode}/composite", json={"timeline": [{"shot": 13}]})
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "shot_not_found", r.text

        # The package: what the episode's config asks for, in the timeline's order.
        r = client.patch(episode, json={"package": ["images", "subtitles", "episode"]})
        assert r.json()["package"] == ["images", "subtitles", "episode"]
        r = client.post(f"{episode}/package")
        assert r.status_code == 202, r.text
        package = wait_terminal(client, r.json()["id"], within=120)
        assert package["status"] == "succeeded", package
        [zipped] = [a for a in package["assets"] if a["step"] == "package"]
        with zipfile.ZipFile(io.BytesIO(client.get(zipped["url"]).content)) as zf:
            assert zf.testzip() is None
            manifest = json.loads(zf.read("manifest.json"))
            names = [f["path"] for f in manifest["files"]]
            shots = [c["shot"] for c in swapped["timeline"]]
            wanted = [f"image_{i:03d}.png" for i in shots] + ["episode.mp4", "poster.jpg", "subtitles.srt"]
            assert sorted(names) == sorted(wanted), "no dropped shot, no clips"
            assert len(shots) == 11, "no dropped shot, no clips"
            for f in manifest["files"]:
                assert hashlib.sha256(zf.read(f["path"])).hexdigest() == f["sha256"]
            srt = zf.read("subtitles.srt").decode()
        assert srt.startswith("1\n00:00:00,000 --> ")
        assert lines[2] in srt
        single = next(a for a in package["assets"] if a["step"] == "episode")
        assert client.get(single["url"]).status_code == 200, "single files through signed links"
