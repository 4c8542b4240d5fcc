"""A job as it stood after any commit of its log, through the API (folded again by the orchestrator)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.support import eventually

pytestmark = pytest.mark.e2e


async def test_any_past_state_of_a_job_can_be_read(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        first = await client.post(
            "/v1/jobs",
            json={"kind": "task", "title": "before", "input": {"prompt": "p", "capability": "tts"}},
        )
        body = {
            "kind": "task",
            "title": "a retried haiku",
            "input": {"prompt": "autumn", "capability": "text.generate", "backoff_s": 0.05,
                      "simulate": {"fail": {"task": 1}}},
        }  # fmt: skip
        job_id = (await client.post("/v1/jobs", json=body)).json()["id"]

        async def done() -> dict[str, Any] | None:
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            return job if job["status"] == "succeeded" else None

        now = await eventually(done, within=30)
        events = (await client.get(f"/v1/jobs/{job_id}/events")).json()["events"]
        seqs = sorted({e["seq"] for e in events})
        failed_at = next(e["seq"] for e in events if e["type"] == "step_failed")

        async def at(seq: int) -> dict[str, Any]:
            r = await client.get(f"/v1/jobs/{job_id}", params={"at": seq})
            assert r.status_code == 200, r.text
            return dict(r.json())

        submitted = await at(seqs[0])
        assert (submitted["status"], submitted["steps"][0]["attempts"]) == ("queued", 1)
        assert submitted["steps"][0]["status"] == "dispatched"
        after_failure = await at(failed_at)
        assert after_failure["steps"][0]["last_error"]["code"] == "provider_error"
        assert after_failure["status"] != "succeeded"
        last = await at(seqs[-1])
        assert {k: v for k, v in last.items() if k != "assets"} == {
            k: v for k, v in now.items() if k != "assets"
        }, "the end of the fold is the job as it is"
        assert [a["id"] for a in last["assets"]] == [a["id"] for a in now["assets"]]

        # Before its first commit the job did not exist; at=0 is no sequence; unknown jobs are 404.
        before = first.json()["id"]
        before_seq = (await client.get(f"/v1/jobs/{before}/events")).json()["events"][0]["seq"]
        assert before_seq < seqs[0]
        r = await client.get(f"/v1/jobs/{job_id}", params={"at": before_seq})
        assert (r.status_code, r.json()["code"]) == (404, "job_not_found")
        r = await client.get(f"/v1/jobs/{job_id}", params={"at": 0})
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed")
        r = await client.get("/v1/jobs/job_unknown", params={"at": seqs[0]})
        assert (r.status_code, r.json()["code"]) == (404, "job_not_found")
