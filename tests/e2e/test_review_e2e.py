"""A gated job through the services: rejected twice with feedback, then approved; the log tells
the story, and the pictures were drawn again each time with the feedback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.support import eventually

pytestmark = pytest.mark.e2e


async def test_a_gate_rejected_twice_then_approved(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        body = {
            "kind": "gallery",
            "title": "Foxes",
            "input": {"prompt": "foxes in the snow", "count": 2, "size": 256, "review": "manual"},
        }
        job_id = (await client.post("/v1/jobs", json=body)).json()["id"]
        review = f"/v1/jobs/{job_id}/steps/review/review"

        async def waiting() -> dict[str, Any] | None:
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            return job if job["status"] == "awaiting_review" else None

        first = await eventually(waiting, within=60)
        listed = (await client.get("/v1/jobs", params={"status": "awaiting_review"})).json()["items"]
        assert [j["id"] for j in listed] == [job_id], "a status users can filter on"
        assert {s["name"]: s["status"] for s in first["steps"]}["package"] == "pending"

        for round_, feedback in ((1, "warmer light"), (2, "a smaller fox")):
            r = await client.post(review, json={"verdict": "reject", "feedback": feedback, "reviewer": "ana"})
            assert r.status_code == 202, r.text
            again = await eventually(waiting, within=60)
            assert [v["round"] for v in again["reviews"]] == list(range(1, round_ + 1))
        r = await client.post(review, json={"verdict": "approve", "feedback": "lovely", "reviewer": "ana"})
        assert r.status_code == 202, r.text

        async def done() -> dict[str, Any] | None:
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            return job if job["status"] == "succeeded" else None

        job = await eventually(done, within=60)
        assert [(v["round"], v["verdict"], v["feedback"]) for v in job["reviews"]] == [
            (1, "reject", "warmer light"),
            (2, "reject", "a smaller fox"),
            (3, "approve", "lovely"),
        ]
        events = (await client.get(f"/v1/jobs/{job_id}/events")).json()["events"]
        story = [e["type"] for e in events if e["type"] in ("review_requested", "step_reviewed")]
        assert story == ["review_requested", "step_reviewed"] * 3
        drawn = [
            e["data"] for e in events if e["type"] == "step_dispatched" and e["data"]["step"] == "picture_001"
        ]
        assert [d["params"].get("feedback") for d in drawn] == [None, "warmer light", "a smaller fox"]
        late = await client.post(review, json={"verdict": "approve"})
        assert (late.status_code, late.json()["code"]) == (409, "illegal_transition")
