"""Idempotency-Key on the mutating routes: replays, reuse, requests in progress, concurrency,
expiry and pruning, and replays after a restart — on real SQL and a real nats-server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts import ids
from atelier_contracts.commands import SubmitJob
from atelier_contracts.envelope import encode
from atelier_contracts.events import Commit, EventRecord, JobStarted
from atelier_contracts.readmodel import idempotency_keys, make_engine
from atelier_contracts.subjects import job_subject
from atelier_devstack.natsserver import NatsServer
from atelier_gateway.adapters.idempotency import SqlIdempotencyStore
from atelier_gateway.app.idempotency import request_hash
from tests.integration.gateway_harness import FakeOrchestrator, put_jobs, snapshot
from tests.integration.test_gateway_api import BODY, T0, Gateway, assert_problem, open_gateway
from tests.support import eventually

pytestmark = pytest.mark.integration

KEY = "Idempotency-Key"


def key() -> str:
    return f"key-{ids.uuid7()}"


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(idempotency_keys))).all())


async def insert_row(engine: AsyncEngine, **values: Any) -> None:
    now = datetime.now(UTC)
    defaults: dict[str, Any] = {
        "tenant": "default",
        "method": "POST",
        "path": "/v1/jobs",
        "request_hash": "0" * 64,
        "status": "in_progress",
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    async with engine.begin() as conn:
        await conn.execute(sa.insert(idempotency_keys).values(**{**defaults, **values}))


def assert_replay_of(replay: httpx.Response, first: httpx.Response) -> None:
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers.get("location") == first.headers.get("location")
    assert replay.headers["content-type"] == first.headers["content-type"]


# --- POST /v1/jobs ----------------------------------------------------------------------------


async def test_a_replayed_submit_answers_the_same_and_publishes_nothing(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    k = key()
    first = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: k})
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    job_id = first.json()["id"]
    assert job_id == ids.derived_id("job", "default", k)

    # Same body, keys in another order and other whitespace: the same request.
    reordered = httpx.Request("POST", "/", json=dict(reversed(BODY.items()))).content
    replay = await gateway.client.post(
        "/v1/jobs", content=reordered, headers={KEY: k, "content-type": "application/json"}
    )

    assert_replay_of(replay, first)
    [command] = await orchestrator.take(1)
    assert await orchestrator.stored() == 1
    assert isinstance(command.body, SubmitJob)
    assert command.job_id == job_id
    assert command.body.request_hash == request_hash("POST", "/v1/jobs", first.request.content)


async def test_the_same_key_with_another_body_is_refused(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    k = key()
    assert (await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: k})).status_code == 202
    other = await gateway.client.post("/v1/jobs", json={**BODY, "title": "Another"}, headers={KEY: k})
    assert "different request body" in assert_problem(other, 422, "idempotency_key_reused")["detail"]
    elsewhere = await gateway.client.post("/v1/tags", json={"name": "x"}, headers={KEY: k})
    detail = assert_problem(elsewhere, 422, "idempotency_key_reused")["detail"]
    assert "used on another request, POST /v1/jobs" in detail, "says where, not 'a different body'"
    assert await orchestrator.stored() == 1


@pytest.mark.parametrize("value", ["", "k" * 256])
async def test_empty_and_overlong_keys_are_refused(
    gateway: Gateway, orchestrator: FakeOrchestrator, value: str
) -> None:
    response = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: value})
    assert_problem(response, 400, "idempotency_key_invalid")
    assert await orchestrator.stored() == 0
    assert await rows(gateway.engine) == []


async def test_a_key_of_255_characters_is_fine(gateway: Gateway) -> None:
    response = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: "k" * 255})
    assert response.status_code == 202


async def test_twenty_concurrent_submits_make_one_job(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    k = key()
    responses = await asyncio.gather(
        *(gateway.client.post("/v1/jobs", json=BODY, headers={KEY: k}) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {202, 409}, statuses
    accepted = [r for r in responses if r.status_code == 202]
    assert len([r for r in accepted if "idempotent-replayed" not in r.headers]) == 1
    assert {r.json()["id"] for r in accepted} == {ids.derived_id("job", "default", k)}
    for refused in (r for r in responses if r.status_code == 409):
        assert_problem(refused, 409, "idempotency_request_in_progress")
        assert refused.headers["retry-after"] == "1"
    await orchestrator.take(1)
    assert await orchestrator.stored() == 1


async def test_an_expired_record_counts_as_absent_but_the_job_id_still_holds(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    k = key()
    await insert_row(gateway.engine, key=k, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    first = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: k})
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    assert len(await rows(gateway.engine)) == 1

    # The orchestrator made the job; later the record expires and is pruned. The key still leads
    # to that job (its id is derived from the key), never to a second one.
    job_id = first.json()["id"]
    body_hash = request_hash("POST", "/v1/jobs", first.request.content)
    await put_jobs(gateway.engine, [msgspec.structs.replace(snapshot(job_id), request_hash=body_hash)])
    async with gateway.engine.begin() as conn:
        await conn.execute(sa.delete(idempotency_keys))

    again = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: k})
    assert again.status_code == 202
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] == job_id
    async with gateway.engine.begin() as conn:
        await conn.execute(sa.delete(idempotency_keys))
    other = await gateway.client.post("/v1/jobs", json={**BODY, "title": "Other"}, headers={KEY: k})
    assert_problem(other, 422, "idempotency_key_reused")
    assert await orchestrator.stored() == 1


async def test_an_abandoned_claim_is_taken_over(gateway: Gateway, orchestrator: FakeOrchestrator) -> None:
    k = key()
    body_hash = request_hash("POST", "/v1/jobs", httpx.Request("POST", "/", json=BODY).content)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await insert_row(gateway.engine, key=k, request_hash=body_hash, created_at=long_ago)
    response = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: k})
    assert response.status_code == 202, response.text
    assert await orchestrator.stored() == 1


# --- other routes -----------------------------------------------------------------------------


async def test_a_request_in_progress_holds_its_key(gateway: Gateway, orchestrator: FakeOrchestrator) -> None:
    job_id = ids.new_job_id()
    await put_jobs(gateway.engine, [snapshot(job_id, status="running")])
    k = key()
    first = asyncio.create_task(gateway.client.post(f"/v1/jobs/{job_id}/cancel", headers={KEY: k}))
    received = await orchestrator.next()  # the first request now waits for this answer

    second = await gateway.client.post(f"/v1/jobs/{job_id}/cancel", headers={KEY: k})
    assert_problem(second, 409, "idempotency_request_in_progress")

    await orchestrator.answer(received, accepted=False, code="illegal_transition", message="done already")
    answered = await first
    assert_problem(answered, 409, "illegal_transition")
    replay = await gateway.client.post(f"/v1/jobs/{job_id}/cancel", headers={KEY: k})
    assert_replay_of(replay, answered)  # 4xx answers are stored too
    assert replay.json()["request_id"] == answered.json()["request_id"]
    assert await orchestrator.stored() == 1


async def test_a_preinserted_claim_in_progress_is_409(gateway: Gateway) -> None:
    k = key()
    body_hash = request_hash("POST", "/v1/tags", b'{"name":"night"}')
    await insert_row(gateway.engine, key=k, path="/v1/tags", request_hash=body_hash)
    response = await gateway.client.post("/v1/tags", json={"name": "night"}, headers={KEY: k})
    assert_problem(response, 409, "idempotency_request_in_progress")
    assert (await gateway.client.get("/v1/tags")).json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/tags", {"name": "night"}),
        ("PATCH", "/v1/tags/night", {"name": "evening"}),
        ("DELETE", "/v1/tags/night", None),
        ("POST", "/v1/jobs/batch/delete", {"filter": {"kind": "story"}, "dry_run": True}),
    ],
)
async def test_every_mutating_route_replays(
    gateway: Gateway, method: str, path: str, body: dict[str, Any] | None
) -> None:
    if method != "POST" or path != "/v1/tags":
        await gateway.client.post("/v1/tags", json={"name": "night"})
    k = key()
    first = await gateway.client.request(method, path, json=body, headers={KEY: k})
    assert first.status_code < 300, first.text
    replay = await gateway.client.request(method, path, json=body, headers={KEY: k})
    assert_replay_of(replay, first)


async def test_validation_problems_are_stored_and_server_errors_are_not(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    k = key()
    bad = await gateway.client.post("/v1/jobs", json={**BODY, "priority": 99}, headers={KEY: k})
    assert_problem(bad, 422, "validation_failed")
    assert_replay_of(
        await gateway.client.post("/v1/jobs", json={**BODY, "priority": 99}, headers={KEY: k}), bad
    )

    nats_server.stop()
    down = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: key()})
    assert_problem(down, 503, "service_unavailable")
    assert [r.key for r in await rows(gateway.engine)] == [k]  # the failed one was released


# --- expiry and restarts ----------------------------------------------------------------------


async def test_the_pruner_deletes_expired_records(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    try:
        now = datetime.now(UTC)
        await insert_row(engine, key="old", expires_at=now - timedelta(seconds=1))
        await insert_row(engine, key="live", expires_at=now + timedelta(hours=1))
        assert await SqlIdempotencyStore(engine).prune(now - timedelta(minutes=1)) == 0

        async def only_live() -> bool:
            return [r.key for r in await rows(engine)] == ["live"]

        async with open_gateway(nats_server.url, database_url, tmp_path, idempotency_prune_every_s=0.05):
            await eventually(only_live, within=10)
    finally:
        await engine.dispose()


async def test_replays_survive_a_restart(
    nats_server: NatsServer, database_url: str, tmp_path: Path, nc: Client
) -> None:
    k = key()
    async with open_gateway(nats_server.url, database_url, tmp_path) as gw:
        first = await gw.client.post("/v1/jobs", json=BODY, headers={KEY: k})
    assert first.status_code == 202
    async with open_gateway(nats_server.url, database_url, tmp_path) as gw:
        replay = await gw.client.post("/v1/jobs", json=BODY, headers={KEY: k})
    assert_replay_of(replay, first)
    assert (await nc.jetstream().stream_info("ATELIER_COMMANDS")).state.last_seq == 1


async def test_a_submit_left_in_progress_by_a_dead_gateway_answers_with_its_job(
    gateway: Gateway, nc: Client
) -> None:
    """A gateway killed mid-request leaves its claim in progress, though the command was stored
    and decided: a retry with the key gets the job, not 409 until the claim lapses."""
    k = key()
    job_id = ids.derived_id("job", "default", k)
    body_hash = request_hash("POST", "/v1/jobs", msgspec.json.encode(BODY))
    await insert_row(gateway.engine, key=k, request_hash=body_hash)  # the dead gateway's claim
    # What the orchestrator made of its command: the job's first commit, and its projection.
    commit = Commit(
        commit_id="c1", job_id=job_id, tenant="default", causation_id="m", correlation_id="r",
        prev_seq=0, at=T0, events=[EventRecord(event_id="c1:0", event=JobStarted())],
    )  # fmt: skip
    ack = await nc.jetstream().publish(job_subject(job_id), encode(commit))
    await put_jobs(gateway.engine, [snapshot(job_id, version=ack.seq, status="running")])

    retry = await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: k})
    assert retry.status_code == 202, retry.text
    assert retry.json()["id"] == job_id
    assert retry.json()["status"] == "running"
    assert retry.headers["location"] == f"/v1/jobs/{job_id}"

    # A key in progress whose job is nowhere (the command never made it) is still 409.
    other = key()
    await insert_row(gateway.engine, key=other, request_hash=body_hash)
    assert_problem(await gateway.client.post("/v1/jobs", json=BODY, headers={KEY: other}), 409,
                   "idempotency_request_in_progress")  # fmt: skip
