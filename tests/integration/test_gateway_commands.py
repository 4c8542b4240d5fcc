"""Job commands through the gateway (cancel, requeue, retry, update, delete, batches) against a real
nats-server and SQL, with a fake orchestrator answering on each command's reply subject."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from nats.aio.client import Client

from atelier_contracts import ids
from atelier_contracts.commands import CancelJob, Command, DeleteJob, RequeueJob, RetryStep, UpdateJob
from atelier_contracts.envelope import Envelope
from atelier_contracts.readmodel import jobs
from atelier_contracts.snapshot import JobView
from atelier_devstack.natsserver import NatsServer
from tests.integration.gateway_harness import FakeOrchestrator, project, put_jobs, snapshot
from tests.integration.test_gateway_api import Gateway, assert_problem, open_gateway

pytestmark = pytest.mark.integration


async def a_job(gateway: Gateway, **fields: Any) -> str:
    job_id = ids.new_job_id()
    await put_jobs(gateway.engine, [snapshot(job_id, **fields)])
    return job_id


def becomes(gateway: Gateway, **changes: Any) -> Callable[[Envelope[Command]], Awaitable[JobView]]:
    """An effect for the fake orchestrator: the job's row moves on with ``changes``; the job as
    decided, for the answer."""
    deleted = changes.pop("deleted", False)

    async def effect(envelope: Envelope[Command]) -> JobView:
        async with gateway.engine.connect() as conn:
            raw = (
                await conn.execute(sa.select(jobs.c.snapshot).where(jobs.c.id == envelope.job_id))
            ).scalar_one()
        current = msgspec.json.decode(raw, type=JobView)
        return await project(gateway.engine, msgspec.structs.replace(current, **changes), deleted=deleted)

    return effect


async def gather_with(
    orchestrator_work: Awaitable[Envelope[Command]], request: Awaitable[httpx.Response]
) -> tuple[httpx.Response, Envelope[Command]]:
    """The gateway's answer and the command the fake orchestrator decided, run side by side."""
    response, envelope = await asyncio.gather(request, orchestrator_work)
    return response, envelope


# --- single-job commands ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/jobs/{id}/cancel", "/v1/jobs/{id}:cancel"])
async def test_cancel_is_decided_then_answered_from_the_read_model(
    gateway: Gateway, orchestrator: FakeOrchestrator, path: str
) -> None:
    job_id = await a_job(gateway, status="running")
    response, envelope = await gather_with(
        orchestrator.decide(effect=becomes(gateway, status="cancelled"), events=["job_cancelled"]),
        gateway.client.post(
            path.format(id=job_id), json={"reason": "changed my mind"}, headers={"X-Request-ID": "req-c1"}
        ),
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    assert envelope.job_id == job_id
    assert envelope.body == CancelJob(reason="changed my mind")
    assert envelope.correlation_id == "req-c1"


async def test_cancel_without_a_body_and_answers_that_came_too_late(
    nats_server: NatsServer, database_url: str, tmp_path: Path, nc: Client
) -> None:
    async with open_gateway(nats_server.url, database_url, tmp_path, command_wait_s=0.1) as gw:
        orchestrator = await FakeOrchestrator(nc, nc.jetstream()).start()
        job_id = await a_job(gw, status="running")
        response = await gw.client.post(f"/v1/jobs/{job_id}:cancel")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "running"  # not decided yet: the job as it is
        received = await orchestrator.next()
        assert received.envelope.body == CancelJob(reason="")
        assert received.reply_to is not None
        assert received.reply_to.startswith("_INBOX.")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("illegal_transition", 409),
        ("job_not_found", 404),
        ("asset_already_running", 409),
        ("step_not_found", 404),
    ],
)
async def test_refusals_become_problems(
    gateway: Gateway, orchestrator: FakeOrchestrator, code: str, status: int
) -> None:
    job_id = await a_job(gateway, status="failed")
    response, _ = await gather_with(
        orchestrator.decide(accepted=False, code=code, message=f"no: {code}"),
        gateway.client.post(f"/v1/jobs/{job_id}/steps/cover/retry"),
    )
    body = assert_problem(response, status, code)
    assert body["detail"] == f"no: {code}"


async def test_unknown_and_deleted_jobs_are_404_without_a_command(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    gone = ids.new_job_id()
    await put_jobs(gateway.engine, [snapshot(gone)], deleted=True)
    for job_id in (ids.new_job_id(), gone):
        for method, path, body in [
            ("POST", f"/v1/jobs/{job_id}/cancel", None),
            ("POST", f"/v1/jobs/{job_id}:cancel", None),
            ("POST", f"/v1/jobs/{job_id}/requeue", None),
            ("POST", f"/v1/jobs/{job_id}/steps/cover/retry", None),
            ("PATCH", f"/v1/jobs/{job_id}", {"title": "x"}),
            ("DELETE", f"/v1/jobs/{job_id}", None),
        ]:
            response = await gateway.client.request(method, path, json=body)
            assert_problem(response, 404, "job_not_found")
    assert await orchestrator.stored() == 0


async def test_requeue_and_retry_send_their_commands(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    job_id = await a_job(gateway, status="failed")
    response, requeue = await gather_with(
        orchestrator.decide(effect=becomes(gateway, status="queued")),
        gateway.client.post(f"/v1/jobs/{job_id}/requeue"),
    )
    assert (response.status_code, response.json()["status"]) == (202, "queued")
    assert requeue.body == RequeueJob()

    response, retry = await gather_with(
        orchestrator.decide(effect=becomes(gateway, status="running")),
        gateway.client.post(f"/v1/jobs/{job_id}/steps/narration/retry"),
    )
    assert (response.status_code, response.json()["status"]) == (202, "running")
    assert retry.body == RetryStep(step="narration")


async def test_patch_answers_200_once_visible_and_202_when_undecided(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    job_id = await a_job(gateway, title="old", priority=1, tags=["a"])
    response, envelope = await gather_with(
        orchestrator.decide(effect=becomes(gateway, title="new", priority=8, tags=["b", "c"])),
        gateway.client.patch(f"/v1/jobs/{job_id}", json={"title": "new", "priority": 8, "tags": ["b", "c"]}),
    )
    assert response.status_code == 200, response.text
    assert (response.json()["title"], response.json()["priority"], response.json()["tags"]) == (
        "new",
        8,
        ["b", "c"],
    )
    assert envelope.body == UpdateJob(title="new", priority=8, tags=["b", "c"])

    # Accepted by an answer without the job as decided: 202 with the job as it reads now.
    response, envelope = await gather_with(
        orchestrator.decide(), gateway.client.patch(f"/v1/jobs/{job_id}", json={"priority": 2})
    )
    assert response.status_code == 202
    assert response.json()["priority"] == 8
    assert envelope.body == UpdateJob(priority=2)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "x" * 201},
        {"priority": 10},
        {"priority": "3"},
        {"tags": ["x" * 51]},
        {"tags": [f"t{i}" for i in range(21)]},
        {"status": "running"},
    ],
)
async def test_bad_patches_are_validation_problems(
    gateway: Gateway, orchestrator: FakeOrchestrator, body: dict[str, Any]
) -> None:
    job_id = await a_job(gateway)
    assert_problem(await gateway.client.patch(f"/v1/jobs/{job_id}", json=body), 422, "validation_failed")
    assert await orchestrator.stored() == 0


async def test_unknown_fields_in_a_cancel_body_are_refused(gateway: Gateway) -> None:
    job_id = await a_job(gateway)
    response = await gateway.client.post(f"/v1/jobs/{job_id}/cancel", json={"why": "x"})
    assert_problem(response, 422, "validation_failed")


async def test_delete_hides_the_job_everywhere(gateway: Gateway, orchestrator: FakeOrchestrator) -> None:
    job_id = await a_job(gateway, status="succeeded", tags=["x"])
    response, envelope = await gather_with(
        orchestrator.decide(effect=becomes(gateway, deleted=True)),
        gateway.client.delete(f"/v1/jobs/{job_id}"),
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"id": job_id, "deleted": True}
    assert envelope.body == DeleteJob()
    assert_problem(await gateway.client.get(f"/v1/jobs/{job_id}"), 404, "job_not_found")
    assert_problem(await gateway.client.get(f"/v1/jobs/{job_id}/events"), 404, "job_not_found")
    assert (await gateway.client.get("/v1/jobs")).json()["items"] == []
    assert (await gateway.client.get("/v1/tags")).json()["items"] == []


# --- batches ----------------------------------------------------------------------------------


async def test_batch_cancel_by_filter_counts_then_publishes(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    queued = [await a_job(gateway, status="queued", tags=["night"]) for _ in range(3)]
    await a_job(gateway, status="queued")  # no tag
    await a_job(gateway, status="failed", tags=["night"])
    body = {"filter": {"status": "queued", "tag": ["night"]}, "reason": "bulk"}

    dry = await gateway.client.post("/v1/jobs/batch/cancel", json={**body, "dry_run": True})
    assert dry.status_code == 202, dry.text
    assert (dry.json()["matched"], dry.json()["dry_run"], dry.json()["skipped"]) == (3, True, 0)
    assert [r["outcome"] for r in dry.json()["results"]] == ["would_submit"] * 3
    assert await orchestrator.stored() == 0

    real = await gateway.client.post("/v1/jobs/batch/cancel", json=body)
    assert real.status_code == 202, real.text
    assert real.json()["matched"] == real.json()["submitted"] == 3
    assert sorted(real.json()["ids"]) == sorted(queued)
    commands = await orchestrator.take(3)
    assert sorted(c.job_id for c in commands) == sorted(queued)
    assert {c.body for c in commands} == {CancelJob(reason="bulk")}


async def test_batch_cancel_answers_per_id_and_skips_finished_jobs(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    running = await a_job(gateway, status="running")
    done = await a_job(gateway, status="succeeded")
    unknown = ids.new_job_id()
    real = await gateway.client.post("/v1/jobs/batch/cancel", json={"ids": [done, running, unknown]})
    assert real.status_code == 202, real.text
    answer = real.json()
    assert (answer["matched"], answer["submitted"], answer["skipped"]) == (2, 1, 1)
    assert answer["results"] == [
        {"id": done, "outcome": "skipped", "reason": "already succeeded"},
        {"id": running, "outcome": "submitted"},
        {"id": unknown, "outcome": "not_found", "reason": "no such job"},
    ]
    [command] = await orchestrator.take(1)
    assert command.job_id == running
    assert await orchestrator.stored() == 1, "nothing published for the finished or unknown job"


async def test_batch_delete_by_ids_skips_unknown_and_deleted_jobs(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    live = [await a_job(gateway) for _ in range(2)]
    gone = ids.new_job_id()
    await put_jobs(gateway.engine, [snapshot(gone)], deleted=True)
    stranger = ids.new_job_id()
    chosen = [*live, gone, stranger, live[0]]

    dry = await gateway.client.post("/v1/jobs/batch/delete", json={"ids": chosen, "dry_run": True})
    assert (dry.json()["matched"], dry.json()["dry_run"]) == (2, True)
    real = await gateway.client.post("/v1/jobs/batch/delete", json={"ids": chosen})
    answer = real.json()
    assert (answer["matched"], answer["submitted"], answer["ids"]) == (2, 2, live)
    assert [(r["id"], r["outcome"]) for r in answer["results"]] == [
        (live[0], "submitted"),
        (live[1], "submitted"),
        (gone, "not_found"),
        (stranger, "not_found"),
    ]
    commands = await orchestrator.take(2)
    assert [(c.job_id, c.body) for c in commands] == [(j, DeleteJob()) for j in live]
    assert await orchestrator.stored() == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"dry_run": True},
        {"ids": ["a"], "filter": {}},
        {"ids": []},
        {"ids": [f"job_{i}" for i in range(1001)]},
        {"filter": {"status": "sleeping"}},
        {"filter": {"colour": "red"}},
        {"ids": ["a"], "extra": 1},
    ],
)
async def test_bad_batches_are_validation_problems(gateway: Gateway, body: dict[str, Any]) -> None:
    for path in ("/v1/jobs/batch/cancel", "/v1/jobs/batch/delete"):
        assert_problem(await gateway.client.post(path, json=body), 422, "validation_failed")


async def test_a_filter_matching_more_than_1000_jobs_is_refused(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    await put_jobs(gateway.engine, [snapshot(ids.new_job_id(), kind="task") for _ in range(1001)])
    body = {"filter": {"kind": "task"}, "dry_run": True}
    problem = assert_problem(
        await gateway.client.post("/v1/jobs/batch/cancel", json=body), 422, "validation_failed"
    )
    assert "1000" in problem["detail"]
    assert await orchestrator.stored() == 0


async def test_a_command_under_an_idempotency_key_has_a_message_id_derived_from_it(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    from atelier_gateway.app.idempotency import request_hash

    job_id = await a_job(gateway, status="running")
    key = f"cancel-{job_id}"
    response, envelope = await gather_with(
        orchestrator.decide(effect=becomes(gateway, status="cancelled"), events=["job_cancelled"]),
        gateway.client.post(
            f"/v1/jobs/{job_id}/cancel", json={"reason": "r"}, headers={"Idempotency-Key": key}
        ),
    )
    assert response.status_code == 202, response.text
    expected_hash = request_hash("POST", f"/v1/jobs/{job_id}/cancel", b'{"reason": "r"}')
    assert envelope.msg_id == ids.derived_id("cmd", "default", key, expected_hash)
