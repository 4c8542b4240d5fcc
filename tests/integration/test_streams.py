"""Live streams over a real gateway (uvicorn on a port), orchestrator and workers: SSE and
WebSocket carry the log's events with their positions as ids, resume exactly, carry progress
ticks that never reach the log, and end with the job."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from httpx_sse import aconnect_sse

from atelier_contracts.runtime.progress import report_progress
from atelier_contracts.runtime.workpool import WorkHandler, WorkResult
from atelier_contracts.work import WorkItem
from atelier_devstack.natsserver import NatsServer
from atelier_gateway.config import Settings
from atelier_gateway.entrypoints.http import create_app
from tests.integration.harness import Platform, offline_ai_handlers, platform, served
from tests.integration.test_gateway_api import SECRET, assert_problem

pytestmark = pytest.mark.integration


@dataclass
class Live:
    base: str
    client: httpx.AsyncClient
    platform: Platform


@contextlib.asynccontextmanager
async def live_gateway(
    nats_url: str, database_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[str]:
    """A gateway on a port of its own."""
    settings = Settings(
        url_secret=SECRET,
        nats_url=nats_url,
        database_url=database_url,
        blob_dir=tmp_path / "blobs",
        stream_ping_s=0.2,
        body_timeout_s=0.5,  # a body's pace: a stream open far longer must not be cut by it
        **overrides,
    )
    async with served(create_app(settings)) as base:
        yield base


@pytest.fixture
async def live(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Live]:
    async with (
        platform(nats_server.url, database_url, tmp_path) as p,
        live_gateway(nats_server.url, database_url, tmp_path) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        yield Live(base, client, p)


def slow_text(release: asyncio.Event, ticks: int, blobs: Any) -> dict[str, WorkHandler]:
    """text.generate that ticks ``ticks`` times, then waits for ``release``, then succeeds."""
    handlers = offline_ai_handlers(blobs)

    async def handle(item: WorkItem) -> WorkResult:
        for i in range(ticks):
            report_progress((i + 1) / ticks, f"tick {i + 1}")
            await asyncio.sleep(0.005)  # a step working: ticks come much faster than they are put
        await release.wait()
        return await handlers["text.generate"](item)

    return {**handlers, "text.generate": handle}


async def submit(client: httpx.AsyncClient, tags: list[str] | None = None) -> str:
    body = {"kind": "task", "title": "t", "input": {"prompt": "a fox", "capability": "text.generate"}}
    r = await client.post("/v1/jobs", json={**body, "tags": tags or []})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def follow(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, until: int | None = None
) -> list[dict[str, Any]]:
    """The events of one SSE connection (id, event, data), until it closes or ``until`` came."""
    got: list[dict[str, Any]] = []
    async with aconnect_sse(client, "GET", path, headers=dict(headers or {})) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            if not sse.data:
                continue
            got.append({"id": sse.id or None, "event": sse.event, "data": json.loads(sse.data)})
            if until is not None and len(got) >= until:
                break
    return got


async def log_positions(live: Live, job_id: str) -> list[str]:
    """Every position in the job's log, once the read model has the job's end."""
    await live.platform.wait_status(job_id, "succeeded")
    r = await live.client.get(f"/v1/jobs/{job_id}/events")
    assert r.status_code == 200
    return [e["position"] for e in r.json()["events"]]


async def test_a_job_stream_carries_every_event_once_ends_with_the_job_and_resumes_exactly(
    live: Live,
) -> None:
    live.platform.workers()
    job_id = await submit(live.client)
    got = await follow(live.client, f"/v1/jobs/{job_id}/stream")
    ids = [e["id"] for e in got]
    assert got[0]["event"] == "queued"
    assert got[-1]["event"] == "succeeded"
    assert {"running", "step_dispatched", "step_succeeded"} <= {e["event"] for e in got}
    assert got[-1]["data"]["status"] == "succeeded"
    assert got[-1]["data"]["job_id"] == job_id
    # The ids are the log's positions, each once and in order (the read model has them all now).
    assert ids == await log_positions(live, job_id)

    middle = ids[len(ids) // 2]
    rest = await follow(live.client, f"/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": middle})
    assert [e["id"] for e in rest] == ids[len(ids) // 2 + 1 :]
    also = await follow(live.client, f"/v1/jobs/{job_id}/stream?after={middle}")
    assert [e["id"] for e in also] == [e["id"] for e in rest]

    # Everything seen, the job over: 204, which tells EventSource to stop reconnecting.
    done = await live.client.get(f"/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": ids[-1]})
    assert done.status_code == 204


async def test_the_stream_headers_pings_and_retry(live: Live) -> None:
    release = asyncio.Event()
    live.platform.pool("ai", slow_text(release, 1, live.platform.blobs))
    job_id = await submit(live.client)
    lines: list[str] = []
    async with live.client.stream("GET", f"/v1/jobs/{job_id}/stream") as r:
        assert r.headers["x-accel-buffering"] == "no"
        assert "no-store" in r.headers["cache-control"] or "no-cache" in r.headers["cache-control"]
        assert r.headers.get("content-encoding", "identity") == "identity"
        async for line in r.aiter_lines():
            lines.append(line)
            if sum(x.startswith(": ping") for x in lines) == 4:  # idle while the step waits
                break
    assert any(line.startswith("retry: ") for line in lines)
    assert lines.count(": ping") == 4, "pinged every 0.2 s, past the 0.5 s a body may take"
    release.set()


async def test_progress_reaches_the_stream_coalesced_and_never_the_log(live: Live) -> None:
    release = asyncio.Event()
    live.platform.pool("ai", slow_text(release, 200, live.platform.blobs))
    job_id = await submit(live.client)
    progress: list[dict[str, Any]] = []
    async with aconnect_sse(live.client, "GET", f"/v1/jobs/{job_id}/stream") as source:
        async for sse in source.aiter_sse():
            if sse.event != "progress":
                continue
            tick = json.loads(sse.data)
            assert "position" not in tick, "a tick is no position in the log (and sends no id:)"
            progress.append(tick)
            if tick["fraction"] == 1.0:
                break
    assert progress[-1]["step"] == "task"
    assert progress[-1]["message"] == "tick 200"
    fractions = [t["fraction"] for t in progress]
    assert fractions == sorted(fractions)
    assert len(progress) < 20, "200 ticks in about a second are put a few times, not 200"

    # A stream opened now gets the current tick of the running step at once.
    async with aconnect_sse(live.client, "GET", f"/v1/jobs/{job_id}/stream") as source:
        first = await anext(e async for e in source.aiter_sse() if e.event == "progress")
    assert json.loads(first.data)["fraction"] == 1.0
    release.set()
    await live.platform.wait_status(job_id, "succeeded")
    r = await live.client.get(f"/v1/jobs/{job_id}/events")
    assert not [e for e in r.json()["events"] if "progress" in e["type"]]


async def test_a_websocket_carries_the_same_events_and_resumes_by_after(live: Live) -> None:
    live.platform.workers()
    job_id = await submit(live.client)
    url = live.base.replace("http://", "ws://")
    async with websockets.connect(f"{url}/v1/jobs/{job_id}/ws") as ws:
        got = [json.loads(m) async for m in ws]
    assert got[-1]["event"] == "succeeded"
    ids = [m["id"] for m in got if m["id"] is not None]
    assert ids == await log_positions(live, job_id)
    async with websockets.connect(f"{url}/v1/jobs/{job_id}/ws?after={ids[2]}") as ws:
        rest = [json.loads(m)["id"] async for m in ws]
    assert rest == ids[3:]

    async with websockets.connect(f"{url}/v1/jobs/job_nope/ws") as ws:
        refusal = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert refusal["data"]["code"] == "job_not_found"
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404


async def test_the_list_over_a_websocket_carries_the_same_events_and_resumes_by_after(live: Live) -> None:
    live.platform.workers()
    url = live.base.replace("http://", "ws://")
    async with websockets.connect(f"{url}/v1/ws?tag=socketed") as ws:
        await submit(live.client, tags=["other"])
        job_id = await submit(live.client, tags=["socketed"])
        got = []
        while not got or got[-1]["event"] != "succeeded":
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
    assert {m["data"]["job_id"] for m in got} == {job_id}
    assert [m["event"] for m in got] == ["queued", "running", "succeeded"]
    async with websockets.connect(f"{url}/v1/ws?tag=socketed&after={got[0]['id']}") as ws:
        rest = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in got[1:]]
    assert [m["id"] for m in rest] == [m["id"] for m in got[1:]]
    async with websockets.connect(f"{url}/v1/ws?after=x") as ws:
        refusal = json.loads(await ws.recv())
    assert refusal["data"]["code"] == "stream_position_invalid"


async def test_the_list_stream_shows_matching_jobs_as_they_change(live: Live) -> None:
    live.platform.workers()
    seen: list[dict[str, Any]] = []
    ready = asyncio.Event()

    async def watch() -> None:
        async with aconnect_sse(live.client, "GET", "/v1/stream", params={"tag": "watched"}) as source:
            ready.set()
            async for sse in source.aiter_sse():
                if sse.data:
                    seen.append({"id": sse.id, "event": sse.event, "data": json.loads(sse.data)})
                    if sse.event == "succeeded":
                        return

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(ready.wait(), 10)
    await submit(live.client, tags=["other"])
    job_id = await submit(live.client, tags=["watched"])
    await asyncio.wait_for(watcher, 30)
    assert {e["data"]["job_id"] for e in seen} == {job_id}
    assert [e["event"] for e in seen] == ["queued", "running", "succeeded"]
    assert seen[0]["data"]["kind"] == "task"
    assert seen[0]["data"]["tags"] == ["watched"]

    # Resumed from its first event, it replays the rest from the log.
    # The read model need not have the job yet: a job seen mid-life is folded from its log.
    again = await asyncio.wait_for(
        follow(live.client, f"/v1/stream?tag=watched&after={seen[0]['id']}", until=2), 30
    )
    assert [e["id"] for e in again] == [e["id"] for e in seen[1:]]


async def test_bad_streams_are_refused_as_problems(live: Live) -> None:
    r = await live.client.get("/v1/jobs/job_missing/stream")
    assert_problem(r, 404, "job_not_found")
    r = await live.client.get("/v1/jobs/a.b.*/stream")
    assert_problem(r, 404, "job_not_found")
    live.platform.workers()
    job_id = await submit(live.client)
    r = await live.client.get(f"/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": "yesterday"})
    assert_problem(r, 422, "stream_position_invalid")
    r = await live.client.get("/v1/stream", params={"after": "-1"})
    assert_problem(r, 422, "stream_position_invalid")


async def test_the_history_pages_by_position(live: Live) -> None:
    live.platform.workers()
    job_id = await submit(live.client)
    await live.platform.wait_status(job_id, "succeeded")
    everything = await log_positions(live, job_id)
    r = await live.client.get(f"/v1/jobs/{job_id}/events", params={"limit": 2})
    page = r.json()
    assert [e["position"] for e in page["events"]] == everything[:2]
    r = await live.client.get(page["next"])
    assert [e["position"] for e in r.json()["events"]][:2] == everything[2:4]
    seq = everything[0].split(".")[0]
    r = await live.client.get(f"/v1/jobs/{job_id}/events", params={"after": seq})
    assert all(e["seq"] > int(seq) for e in r.json()["events"])
    r = await live.client.get(f"/v1/jobs/{job_id}/events", params={"after": "x"})
    assert_problem(r, 422, "stream_position_invalid")
