"""The lifecycle under load and crashes: replicas share the work; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import verify_rebuild
from tests.support import eventually

pytestmark = pytest.mark.e2e

LIVE = ["queued", "running", "partial_ready"]


def plan_input(plan: str) -> dict[str, Any]:
    base: dict[str, Any] = {"prompt": "a quick test", "capability": "text.generate", "backoff_s": 0.05}
    if plan == "retry":
        base["simulate"] = {"fail": {"task": 1}}
    elif plan == "final":
        base["simulate"] = {"fail": {"task": 1}, "final": True}
    elif plan == "slow":
        base |= {"timeout_s": 2, "simulate": {"slow": {"task": 1}, "slow_s": 30}}
    elif plan == "late_retry":
        base |= {"backoff_s": 2, "simulate": {"fail": {"task": 1}}}
    return base


async def submit(client: httpx.AsyncClient, plan: str, tag: str) -> dict[str, Any]:
    body = {"kind": "task", "title": f"{plan} job", "input": plan_input(plan), "tags": [tag]}
    r = await client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job = {"id": r.json()["id"], "plan": plan, "cancel": None}
    if plan == "cancel":
        c = await client.post(f"/v1/jobs/{job['id']}/cancel")
        assert c.status_code in (202, 409), c.text
        job["cancel"] = c.status_code
    return job


async def live_count(client: httpx.AsyncClient, tag: str) -> int:
    r = await client.get("/v1/jobs", params={"status": LIVE, "tag": tag, "limit": 200})
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def expected_status(job: dict[str, Any]) -> set[str]:
    if job["plan"] == "final":
        return {"failed"}
    if job["plan"] == "cancel":
        return {"cancelled"} if job["cancel"] == 202 else {"succeeded"}
    return {"succeeded"}


def check_log(job: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """The event log itself, not only the read model: no event twice, no attempt won twice."""
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), job
    wins = Counter((e["data"]["step"], e["data"]["attempt"]) for e in events if e["type"] == "step_succeeded")
    assert all(n == 1 for n in wins.values()), (job, wins)
    assert sum(1 for e in events if e["type"] == "step_succeeded") <= 1, job
    attempts = [e["data"]["attempt"] for e in events if e["type"] == "step_dispatched"]
    assert attempts == sorted(set(attempts)), (job, attempts)
    finals = [e["type"] for e in events if e["type"] in ("job_succeeded", "job_failed", "job_cancelled")]
    assert len(finals) == 1, (job, finals)


async def check_all(client: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for job in jobs:
        body = (await client.get(f"/v1/jobs/{job['id']}")).json()
        assert body["status"] in expected_status(job), (job, body["status"], body["last_error"])
        if job["plan"] in ("retry", "slow", "late_retry"):
            # One retry by design; a crash may add another (a deadline passing while it is down).
            assert body["steps"][0]["attempts"] >= 2, body
        events = (await client.get(f"/v1/jobs/{job['id']}/events")).json()["events"]
        check_log(job, events)
        seen[body["status"]] += 1
    return seen


async def test_500_jobs_on_two_orchestrators_and_two_workers(stack: Stack, tmp_path: Path) -> None:
    stack.add_replica("orchestrator")
    stack.add_replica("provider-router")
    rng = random.Random(500)
    plans = rng.choices(["plain", "retry", "final", "cancel"], weights=[55, 25, 10, 10], k=500)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        sem = asyncio.Semaphore(16)

        async def one(plan: str) -> dict[str, Any]:
            async with sem:
                return await submit(client, plan, "load500")

        jobs = await asyncio.gather(*(one(p) for p in plans))

        async def settled() -> bool:
            return await live_count(client, "load500") == 0

        await eventually(settled, within=300, every=1.0)
        seen = await check_all(client, jobs)
    assert seen["succeeded"] > 300
    assert seen["failed"] >= plans.count("final")
    verify_rebuild(stack, tmp_path)


async def test_kill_orchestrator_and_worker_during_retries_and_timeouts(stack: Stack, tmp_path: Path) -> None:
    plans = ["slow"] * 8 + ["late_retry"] * 8 + ["plain"] * 4
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        jobs = [await submit(client, plan, "crash") for plan in plans]

        async def retries_pending() -> bool:
            r = await client.get(f"/v1/jobs/{jobs[8]['id']}/events")
            return any(e["type"] == "step_retry_scheduled" for e in r.json()["events"])

        await eventually(retries_pending, within=60)
        stack.kill("orchestrator")
        stack.kill("provider-router")
        stack.restart("orchestrator")
        stack.restart("provider-router")

        async def settled() -> bool:
            return await live_count(client, "crash") == 0

        await eventually(settled, within=120, every=0.5)
        seen = await check_all(client, jobs)
    assert seen == {"succeeded": len(plans)}
    verify_rebuild(stack, tmp_path)
