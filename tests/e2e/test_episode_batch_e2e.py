"""A project's scheduled batch through the services: the engine's schedule, its template written
from the episodes marked for it, fires a ``stills`` job that draws their shot images again;
marking and unmarking rewrite it, pause it when nothing is marked and resume it after."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import wait_terminal
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e


def test_a_project_batch_draws_the_marked_episodes_shots_again(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        pid = client.post("/v1/projects", json={"name": "Nightly", "style": "ink-wash"}).json()["id"]
        base = f"/v1/projects/{pid}"
        scripts = {
            "a": "A heron waits in the reeds. The moon rises.",
            "b": "Rain on the roofs. A cat sleeps.",
        }
        eids = {
            k: client.post(f"{base}/episodes", json={"title": k, "script": v}).json()["id"]
            for k, v in scripts.items()
        }
        for eid in eids.values():
            job_id = client.post(f"{base}/episodes/{eid}/render").json()["id"]
            assert wait_terminal(client, job_id, within=180)["status"] == "succeeded"
        nightly = {"cron": "0 2 * * *", "timezone": "Europe/Berlin", "overlap": "skip"}
        r = client.put(f"{base}/schedule", json=nightly)
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "nothing_marked"

        assert client.patch(f"{base}/episodes/{eids['a']}", json={"marked": True}).json()["marked"] is True
        r = client.put(f"{base}/schedule", json=nightly)
        assert r.status_code == 201, r.text
        schedule = r.json()
        assert schedule["id"] == client.get(base).json()["schedule_id"]
        assert schedule["spec"]["overlap"] == "skip"
        assert schedule["upcoming"][0].endswith("T01:00:00Z"), "2 at night in Berlin (UTC+1 in December)"
        template = schedule["spec"]["template"]
        assert template["kind"] == "stills"
        assert [e["episode"] for e in template["input"]["episodes"]] == [eids["a"]]
        [episode] = template["input"]["episodes"]
        assert [s["shot"] for s in episode["shots"]] == [1, 2]
        assert all(s["look"] == "ink" and "ink wash" in s["prompt"] for s in episode["shots"])

        r = client.post(f"/v1/schedules/{schedule['id']}/trigger")
        assert r.status_code == 202, r.text

        def fired() -> str | None:
            recent = client.get(f"{base}/schedule").json()["recent"]
            return str(recent[0]["job_id"]) if recent else None

        job = wait_terminal(client, eventually_sync(fired, within=30), within=120)
        assert job["status"] == "succeeded", job
        assert job["kind"] == "stills"
        assert sorted(s["name"] for s in job["steps"]) == ["e01_image_001", "e01_image_002"]
        usage = client.get(base).json()["usage"]
        renders = 2 * (1 + 3 * 2)  # each: its shot list, and per shot an image, a clip and a voice
        assert usage["calls"] == renders + 2, "both renders and the batch's two images count toward it"

        # Marks rewrite the template; nothing marked pauses the batch, a mark resumes it.
        client.patch(f"{base}/episodes/{eids['b']}", json={"marked": True})
        both = client.get(f"{base}/schedule").json()["spec"]["template"]["input"]["episodes"]
        assert [e["episode"] for e in both] == [eids["a"], eids["b"]]
        for eid in eids.values():
            client.patch(f"{base}/episodes/{eid}", json={"marked": False})
        paused: dict[str, Any] = client.get(f"{base}/schedule").json()
        assert (paused["status"], paused["note"]) == ("paused", "no rendered episode is marked for the batch")
        client.patch(f"{base}/episodes/{eids['b']}", json={"marked": True})
        resumed = client.get(f"{base}/schedule").json()
        assert resumed["status"] == "active"
        assert [e["episode"] for e in resumed["spec"]["template"]["input"]["episodes"]] == [eids["b"]]

        r = client.put(f"{base}/schedule", json={**nightly, "paused": True})
        assert r.json()["status"] == "paused"
        client.patch(f"{base}/episodes/{eids['a']}", json={"marked": True})
        assert client.get(f"{base}/schedule").json()["status"] == "paused", "a pause of the user's own stays"

        # Deleted behind the project's back, then set again: a new schedule, not the deleted one.
        assert client.delete(f"/v1/schedules/{schedule['id']}").status_code == 200
        again = client.put(f"{base}/schedule", json=nightly)
        assert again.status_code == 201, again.text
        assert again.json()["id"] != schedule["id"]
        assert again.json()["status"] == "active"
        assert client.delete(f"{base}/schedule").status_code == 204
        assert client.get(f"{base}/schedule").json()["code"] == "schedule_not_found"
        assert client.get(f"/v1/schedules/{again.json()['id']}").json()["code"] == "schedule_not_found"
