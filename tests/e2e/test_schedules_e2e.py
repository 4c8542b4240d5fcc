"""A schedule through the services: it fires every second, the orchestrator is killed (-9) and
restarted while it does, and still every fire time made exactly one job, each job's end came back
to the schedule, and the rebuild equals the live read model."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import e2e_stack, running, verify_rebuild
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running(e2e_stack(tmp_path, ATELIER_SCHEDULE_TICK_S="0.2")) as s:
        yield s


def schedule_when(client: httpx.Client, sid: str, check: Any) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        view = client.get(f"/v1/schedules/{sid}").json()
        return view if check(view) else None

    return eventually_sync(probe, within=60)


def test_a_schedule_survives_kill_9_with_one_job_per_fire_time(stack: Stack, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        template = {"kind": "task", "input": {"prompt": "a haiku about rain", "capability": "text.generate"}}
        created = client.post(
            "/v1/schedules", json={"cron": "* * * * * *", "overlap": "allow_all", "template": template}
        )
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        schedule_when(client, sid, lambda v: v["fired"] >= 2)
        os.kill(stack.procs["orchestrator"].pid, signal.SIGKILL)
        stack.procs["orchestrator"].wait(10)
        stack.restart("orchestrator")
        fired_before = client.get(f"/v1/schedules/{sid}").json()["fired"]
        schedule_when(client, sid, lambda v: v["fired"] >= fired_before + 3)
        client.post(f"/v1/schedules/{sid}/pause")
        view = schedule_when(client, sid, lambda v: not v["running"])
        jobs = client.get("/v1/jobs", params={"limit": 100}).json()["items"]
        mine = [client.get(f"/v1/jobs/{j['id']}").json() for j in jobs]
        fire_times = [
            j["origin"]["fire_time"] for j in mine if j["origin"] and j["origin"]["schedule"] == sid
        ]
        assert len(fire_times) == view["fired"], "one job per firing"
        assert max(Counter(fire_times).values()) == 1, "one job per fire time"
        assert all(f["status"] == "succeeded" for f in view["recent"]), "every end came back"

    verify_rebuild(stack, tmp_path)
