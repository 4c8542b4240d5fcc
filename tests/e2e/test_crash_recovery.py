"""Kill -9 the orchestrator and a worker with jobs in flight: nothing lost, nothing doubled."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import step_successes, submit_story, verify_rebuild, wait_terminal
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e

STEPS = {"story", "cover", "narration", "audio", "thumbnail", "package"}


def test_kill_orchestrator_and_worker_mid_flight(stack: Stack, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        ids = [
            submit_story(client, f"Crash {i}", f"story number {i} about a brave kite")["id"] for i in range(8)
        ]

        def some_in_flight() -> bool:
            statuses = [client.get(f"/v1/jobs/{i}").json().get("status") for i in ids]
            return any(s in ("running", "partial_ready") for s in statuses)

        eventually_sync(some_in_flight, within=60)
        stack.kill("orchestrator")
        stack.kill("provider-router")
        # Work keeps arriving while they are down: the gateway still accepts jobs.
        ids += [submit_story(client, "While down", "a story submitted during the outage")["id"]]
        stack.restart("orchestrator")
        stack.restart("provider-router")

        for job_id in ids:
            job = wait_terminal(client, job_id, within=180)
            assert job["status"] == "succeeded", job
            assert step_successes(client, job_id) == dict.fromkeys(STEPS, 1), job_id

    verify_rebuild(stack, tmp_path)
