"""Schedules with two orchestrator replicas on a real nats-server and real SQL, through the API:
exactly one job per fire time, each overlap policy, catch-up after downtime, pause, resume,
trigger now, and what the door refuses."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from atelier_contracts.events import JobSubmitted
from atelier_contracts.faults import FaultInjection
from atelier_devstack.natsserver import NatsServer
from atelier_orchestrator.adapters.replay import read_log
from tests.integration.harness import Platform, platform
from tests.integration.test_gateway_api import Gateway, assert_problem, open_gateway
from tests.support import eventually

pytestmark = pytest.mark.integration

TEXT = {"kind": "task", "input": {"prompt": "a haiku about rain", "capability": "text.generate"}}


def slow(seconds: float) -> dict[str, Any]:
    """A template whose every job takes ``seconds`` (the offline provider's fault injection)."""
    simulate = {"slow": {"task": 1}, "slow_s": seconds}
    return {"kind": "task", "input": {**TEXT["input"], "simulate": simulate}}


@pytest.fixture
async def replicas(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Platform]]:
    """A gateway, and two orchestrators that tick five times a second (workers beside one)."""
    async with (
        open_gateway(
            nats_server.url, database_url, tmp_path, command_wait_s=10.0, faults=FaultInjection(enabled=True)
        ) as gw,
        platform(nats_server.url, database_url, tmp_path, schedule_tick_s=0.2) as first,
        platform(nats_server.url, database_url, tmp_path, schedule_tick_s=0.2),
    ):
        first.workers()
        yield gw, first


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/schedules", json={"template": TEXT, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def view_when(
    client: httpx.AsyncClient, schedule_id: str, check: Any, within: float = 30
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def probe() -> dict[str, Any] | None:
        view = (await client.get(f"/v1/schedules/{schedule_id}")).json()
        seen[:] = [view]
        return view if check(view) else None

    try:
        return await eventually(probe, within=within)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the schedule read {seen}") from None


async def submits(p: Platform, schedule_id: str) -> list[JobSubmitted]:
    """Every JobSubmitted in the job log that this schedule's firings made."""
    return [
        record.event
        async for commit, _ in read_log(p.nc)
        for record in commit.events
        if isinstance(record.event, JobSubmitted)
        and record.event.origin is not None
        and record.event.origin.schedule == schedule_id
    ]


async def test_two_replicas_make_exactly_one_job_per_fire_time(replicas: tuple[Gateway, Platform]) -> None:
    gw, p = replicas
    schedule = await create(gw.client, cron="* * * * * *", overlap="allow_all")
    assert len(schedule["upcoming"]) == 5
    sid = schedule["id"]
    await view_when(gw.client, sid, lambda v: v["fired"] >= 5)
    paused = await gw.client.post(f"/v1/schedules/{sid}/pause", json={"note": "enough"})
    assert paused.json()["status"] == "paused"
    assert paused.json()["upcoming"] == []
    view = await view_when(gw.client, sid, lambda v: not v["running"])
    made = await submits(p, sid)
    fire_times = [e.origin.fire_time for e in made if e.origin is not None]
    assert len(made) == view["fired"], "one job per firing, none twice"
    assert max(Counter(fire_times).values()) == 1, "one job per fire time"
    gaps = [b - a for a, b in itertools.pairwise(sorted(t for t in fire_times if t is not None))]
    assert all(gap == timedelta(seconds=1) for gap in gaps), "no fire time missed"
    assert view["skipped"] == 0
    assert all(f["status"] == "succeeded" for f in view["recent"])


async def test_skip_never_runs_two_at_once(replicas: tuple[Gateway, Platform]) -> None:
    gw, p = replicas
    sid = (await create(gw.client, cron="* * * * * *", overlap="skip", template=slow(1.5)))["id"]
    view = await view_when(
        gw.client, sid, lambda v: v["fired"] >= 2 and not v["running"] and v["skipped"] >= 1
    )
    await gw.client.post(f"/v1/schedules/{sid}/pause")
    jobs = [await p.snapshot(f["job_id"]) for f in view["recent"]]
    spans = sorted((j.created_at, j.finished_at) for j in jobs if j is not None)
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert ended is not None
        assert started >= ended, "the next job began only after the last one ended"


async def test_buffer_one_runs_one_waiting_fire_time_after_the_running_job(
    replicas: tuple[Gateway, Platform],
) -> None:
    gw, _ = replicas
    sid = (await create(gw.client, cron="* * * * * *", overlap="buffer_one", template=slow(1.5)))["id"]
    await view_when(gw.client, sid, lambda v: v["buffered"] is not None)
    view = await view_when(gw.client, sid, lambda v: v["fired"] >= 2)
    await gw.client.post(f"/v1/schedules/{sid}/pause")
    first, second = view["recent"][:2]
    gap = datetime.fromisoformat(second["fire_time"]) - datetime.fromisoformat(first["fire_time"])
    assert gap == timedelta(seconds=1), "the buffered one is the fire time right after the first"


async def test_cancel_other_cancels_the_running_job(replicas: tuple[Gateway, Platform]) -> None:
    gw, p = replicas
    sid = (await create(gw.client, cron="* * * * * */2", overlap="cancel_other", template=slow(30)))["id"]
    view = await view_when(gw.client, sid, lambda v: v["fired"] >= 2)
    await gw.client.post(f"/v1/schedules/{sid}/pause")
    cancelled = await p.wait_status(view["recent"][0]["job_id"], "cancelled")
    assert cancelled.status == "cancelled"
    await view_when(gw.client, sid, lambda v: v["recent"][0]["status"] == "cancelled")


async def test_after_downtime_missed_fire_times_within_the_window_fire_and_older_are_skipped(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with open_gateway(nats_server.url, database_url, tmp_path, command_wait_s=10.0) as gw:
        async with platform(nats_server.url, database_url, tmp_path):
            schedule = await create(gw.client, cron="* * * * *", catchup_window_s=150, overlap="allow_all")
        # Every orchestrator is down for ten minutes: the next one's clock is ten minutes on.
        later = timedelta(minutes=10)
        async with platform(
            nats_server.url,
            database_url,
            tmp_path,
            clock=lambda: datetime.now(UTC) + later,
            schedule_tick_s=0.2,
        ):
            view = await view_when(gw.client, schedule["id"], lambda v: v["fired"] + v["skipped"] >= 10)
    assert view["fired"] in (2, 3), "the fire times of the last 150 s"
    assert view["fired"] + view["skipped"] == 10, "every minute of the downtime, fired or skipped"
    oldest = datetime.fromisoformat(schedule["created_at"]) + later - timedelta(seconds=150)
    assert all(datetime.fromisoformat(f["fire_time"]) >= oldest for f in view["recent"])


async def test_pause_resume_trigger_replace_delete(replicas: tuple[Gateway, Platform]) -> None:
    gw, p = replicas
    schedule = await create(gw.client, cron="0 9 * * 1-5", timezone="Europe/Berlin", paused=True)
    sid = schedule["id"]
    assert (schedule["status"], schedule["next_fire_at"]) == ("paused", None)
    resumed = (await gw.client.post(f"/v1/schedules/{sid}/resume")).json()
    assert resumed["status"] == "active"
    first = datetime.fromisoformat(resumed["next_fire_at"])
    assert first.astimezone(ZoneInfo("Europe/Berlin")).hour == 9
    assert first.weekday() < 5
    triggered = await gw.client.post(f"/v1/schedules/{sid}/trigger")
    assert triggered.status_code == 202
    [firing] = triggered.json()["recent"]
    assert firing["manual"]
    await p.wait_status(firing["job_id"], "succeeded")
    replaced = await gw.client.put(f"/v1/schedules/{sid}", json={"cron": "30 6 * * *", "template": TEXT})
    assert replaced.json()["spec"]["cron"] == "30 6 * * *"
    assert (await gw.client.delete(f"/v1/schedules/{sid}")).json()["status"] == "deleted"
    assert_problem(await gw.client.get(f"/v1/schedules/{sid}"), 404, "schedule_not_found")
    assert_problem(await gw.client.post(f"/v1/schedules/{sid}/resume"), 404, "schedule_not_found")
    assert sid not in {s["id"] for s in (await gw.client.get("/v1/schedules")).json()["items"]}


async def test_what_the_door_refuses(replicas: tuple[Gateway, Platform]) -> None:
    client = replicas[0].client

    async def refused(body: dict[str, Any], code: str = "validation_failed") -> list[Any]:
        response = await client.post("/v1/schedules", json={"cron": "* * * * *", "template": TEXT, **body})
        return list(assert_problem(response, 422, code)["errors"][0]["loc"])

    assert await refused({"cron": "every day"}) == ["body", "cron"]
    assert await refused({"timezone": "Mars/Olympus"}) == ["body", "timezone"]
    unknown = {"template": {"kind": "bogus", "input": {}}}
    assert await refused(unknown, "unknown_job_kind") == ["body", "template", "kind"]
    bad_seed = {"kind": "task", "input": {**TEXT["input"], "seed": "abc"}}
    assert await refused({"template": bad_seed}) == ["body", "template", "input", "seed"]
    assert (await refused({"catchup_window_s": 1}))[:2] == ["body", "catchup_window_s"]
    assert (await refused({"overlap": "sometimes"}))[:2] == ["body", "overlap"]
    assert_problem(await client.get("/v1/schedules/sch_nothing"), 404, "schedule_not_found")
