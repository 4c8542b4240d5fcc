"""A new user's first jobs: submit stories over HTTP, watch them finish, download every file."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import check_asset, step_successes, submit_story, wait_terminal

pytestmark = pytest.mark.e2e

STEPS = {"story", "cover", "narration", "audio", "thumbnail", "package"}


def test_story_jobs_succeed_with_every_asset_downloadable(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        submitted = [
            submit_story(client, "The Lighthouse Cat", "a cat who keeps a lighthouse on a stormy island"),
            submit_story(client, "Moon Garden", "two children grow flowers that only bloom at night"),
        ]
        # 202 carries the job as it stands: queued, or already picked up by a worker.
        assert all(job["status"] in ("queued", "running", "partial_ready") for job in submitted)
        for sub in submitted:
            job = wait_terminal(client, sub["id"])
            assert job["status"] == "succeeded", job
            assert {s["name"] for s in job["steps"]} == STEPS
            assert all(s["status"] == "succeeded" for s in job["steps"])
            assert set(job["model_used"]) == STEPS
            kinds = {a["kind"] for a in job["assets"]}
            assert kinds == {"text", "image", "thumbnail", "audio", "bundle"}
            for asset in job["assets"]:
                r = client.get(asset["url"])
                assert r.status_code == 200, (asset, r.text)
                assert r.headers["content-type"].startswith(asset["content_type"])
                check_asset(asset["kind"], asset["content_type"], r.content)
            bundle = next(a for a in job["assets"] if a["kind"] == "bundle")
            with zipfile.ZipFile(io.BytesIO(client.get(bundle["url"]).content)) as z:
                manifest = json.loads(z.read("manifest.json"))
            assert manifest["job_id"] == sub["id"]
            assert manifest["title"] == sub["title"]

            events = client.get(f"/v1/jobs/{sub['id']}/events").json()["events"]
            types = [e["type"] for e in events]
            assert types.index("job_partial_ready") < types.index("job_succeeded")
            assert step_successes(client, sub["id"]) == dict.fromkeys(STEPS, 1)

        listed = client.get("/v1/jobs", params={"status": "succeeded"}).json()["items"]
        assert [j["id"] for j in listed][:2] == [submitted[1]["id"], submitted[0]["id"]], "newest first"


def test_jobs_survive_a_full_restart(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        job = wait_terminal(
            client, submit_story(client, "Keep Me", "a story that must outlive a restart")["id"]
        )
    assert job["status"] == "succeeded"
    stack.stop()
    stack.start()
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        again = client.get(f"/v1/jobs/{job['id']}")
        assert again.status_code == 200
        assert again.json()["status"] == "succeeded"
        file = client.get(again.json()["assets"][0]["url"])
        assert file.status_code == 200


def test_unknown_job_and_bad_body_are_problem_json(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        r = client.get("/v1/jobs/job_doesnotexist")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "job_not_found"
        r = client.post("/v1/jobs", json={"kind": "story"})
        assert r.status_code == 422
        assert r.json()["code"] == "validation_failed"
