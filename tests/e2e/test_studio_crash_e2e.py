"""The provider router killed (SIGKILL) during a studio refine round: the round completes, every
candidate is made and recorded once, no provider call is counted twice, and the session's rounds
are as they should be."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier_devstack import products
from atelier_devstack.stack import Stack
from tests.e2e.client import e2e_stack, running, step_successes, wait_terminal
from tests.e2e.test_studio_e2e import adopt, round_done, upload
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # one candidate at a time on the router, so the kill finds the round under way
    with running(e2e_stack(tmp_path, ATELIER_PROVIDER_ROUTER_CONCURRENCY="1")) as s:
        yield s


def provider_calls(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["events"]
    return [e["data"] for e in events if e["type"] == "provider_called"]


def test_the_router_killed_during_a_refine_round(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        photo = upload(client, "cup.png", products.photo("cup", 1600))
        sid = client.post("/v1/studio/sessions", json={"title": "Cup", "upload": photo["id"]}).json()["id"]
        client.post(f"/v1/studio/sessions/{sid}/edit", json={"chip": "wood-table", "candidates": 2})
        view = adopt(client, sid, round_done(client, sid, 1)["rounds"][0]["candidates"][0])

        r = client.post(
            f"/v1/studio/sessions/{sid}/refine",
            json={"prompt": "warmer light", "candidates": 4},
            headers={"Idempotency-Key": "crash-refine"},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["rounds"][1]["job_id"]

        def under_way() -> dict[str, Any] | None:
            job = client.get(f"/v1/jobs/{job_id}").json()
            steps = {s["name"]: s["status"] for s in job["steps"] if s["name"].startswith("candidate-")}
            return job if "running" in steps.values() and "succeeded" not in steps.values() else None

        cut = eventually_sync(under_way, within=60, every=0.02)
        stack.kill("provider-router")
        killed_at = datetime.now(UTC)
        stack.restart("provider-router")

        view = round_done(client, sid, 2)
        job = wait_terminal(client, job_id)
        assert job["status"] == "succeeded", job
        candidates = [f"candidate-{i}" for i in range(1, 5)]
        assert step_successes(client, job_id) == dict.fromkeys(["original", *candidates], 1)
        # what the router was making when it died was made again, after the kill, once
        in_flight = {s["name"] for s in cut["steps"] if s["status"] == "running"}
        finished = {s["name"]: datetime.fromisoformat(s["finished_at"]) for s in job["steps"]}
        assert all(finished[name] > killed_at for name in in_flight), (in_flight, finished, killed_at)

        # each attempt's call counted once, and the usage is the log's calls, no more
        calls = provider_calls(client, job_id)
        made = Counter((c["step"], c["attempt"]) for c in calls if c["call"]["outcome"] == "succeeded")
        assert set(made.values()) == {1}, made
        usage = client.get("/v1/usage", params={"group_by": "capability"}).json()["groups"]
        refine = next(g for g in usage if g["capability"] == "image.refine")
        assert refine["calls"] == len([c for c in calls if c["call"]["outcome"] != "skipped"])

        rounds = view["rounds"]
        assert [(r["round"], r["operation"], r["status"]) for r in rounds] == [
            (1, "bg_replace", "succeeded"),
            (2, "refine", "succeeded"),
        ]
        assert len(rounds[1]["candidates"]) == 4
        kelvins = sorted(c["recipe"]["lighting"]["kelvin"] for c in rounds[1]["candidates"])
        assert len(set(kelvins)) == 4
        assert max(kelvins) < view["look"]["lighting"]["kelvin"] + 1
