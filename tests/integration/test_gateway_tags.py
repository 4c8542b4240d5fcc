"""The tag registry: create, list (registered or used on jobs), rename and delete, reaching every job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from atelier_contracts import ids
from atelier_contracts.commands import UpdateJob
from atelier_devstack.natsserver import NatsServer
from tests.integration.gateway_harness import FakeOrchestrator, put_jobs, snapshot
from tests.integration.test_gateway_api import Gateway, assert_problem, open_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(nats_server.url, database_url, tmp_path) as gw:
        yield gw


@pytest.fixture
async def orchestrator(nats_server: NatsServer, gateway: Gateway) -> AsyncIterator[FakeOrchestrator]:
    nc: Client = await nats.connect(nats_server.url)
    try:
        yield await FakeOrchestrator(nc, nc.jetstream()).start()
    finally:
        await nc.close()


async def tag_list(gateway: Gateway) -> dict[str, tuple[int, str | None]]:
    response = await gateway.client.get("/v1/tags")
    assert response.status_code == 200, response.text
    return {t["name"]: (t["job_count"], t["created_at"]) for t in response.json()["items"]}


async def test_created_and_used_tags_are_listed_with_counts(gateway: Gateway) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = await gateway.client.post("/v1/tags", json={"name": "night"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "night"
    assert created.json()["job_count"] == 0
    assert datetime.fromisoformat(created.json()["created_at"]) > before
    await gateway.client.post("/v1/tags", json={"name": "empty"})
    await put_jobs(
        gateway.engine,
        [
            snapshot(ids.new_job_id(), tags=["night", "fox"]),
            snapshot(ids.new_job_id(), tags=["fox"]),
        ],
    )
    await put_jobs(gateway.engine, [snapshot(ids.new_job_id(), tags=["fox", "ghost"])], deleted=True)

    listed = await tag_list(gateway)
    assert list(listed) == ["empty", "fox", "night"]
    assert listed["fox"] == (2, None)  # used on jobs, never created
    assert listed["night"] == (1, created.json()["created_at"])
    assert listed["empty"][0] == 0


async def test_a_tag_that_exists_cannot_be_created_again(gateway: Gateway) -> None:
    assert (await gateway.client.post("/v1/tags", json={"name": "night"})).status_code == 201
    assert_problem(await gateway.client.post("/v1/tags", json={"name": "night"}), 409, "tag_exists")


async def test_a_tag_only_jobs_carry_can_be_registered_renamed_and_deleted(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    carrier = ids.new_job_id()
    await put_jobs(gateway.engine, [snapshot(carrier, tags=["fox"])])
    registered = await gateway.client.post("/v1/tags", json={"name": "fox"})
    assert registered.status_code == 201, registered.text
    assert registered.json()["job_count"] == 1
    assert (await tag_list(gateway))["fox"][1] == registered.json()["created_at"]
    assert_problem(await gateway.client.post("/v1/tags", json={"name": "fox"}), 409, "tag_exists")
    # Never registered: renamed and deleted all the same (on the jobs that carry it).
    await put_jobs(gateway.engine, [snapshot(other := ids.new_job_id(), tags=["owl"])])
    renamed = await gateway.client.patch("/v1/tags/owl", json={"name": "heron"})
    assert (renamed.status_code, renamed.json()["job_ids"]) == (202, [other])
    deleted = await gateway.client.delete("/v1/tags/fox")
    assert (deleted.status_code, deleted.json()["job_ids"]) == (202, [carrier])
    commands = {c.job_id: c.body for c in await orchestrator.take(2)}
    assert commands == {other: UpdateJob(tags=["heron"]), carrier: UpdateJob(tags=[])}


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 51},
        {},
        {"name": "a", "colour": "red"},
        {"name": "a/b"},  # a tag is a path segment of /v1/tags/{name}
        {"name": "two words"},
        {"name": "-lead"},
        {"name": 7},
    ],
)
async def test_bad_tag_names_are_validation_problems(gateway: Gateway, body: dict[str, str]) -> None:
    assert_problem(await gateway.client.post("/v1/tags", json=body), 422, "validation_failed")
    assert_problem(await gateway.client.patch("/v1/tags/a", json=body), 422, "validation_failed")


async def test_rename_updates_the_registry_and_every_job(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    created = (await gateway.client.post("/v1/tags", json={"name": "night"})).json()
    one, two, other = ids.new_job_id(), ids.new_job_id(), ids.new_job_id()
    await put_jobs(
        gateway.engine,
        [
            snapshot(one, tags=["fox", "night", "owl"]),
            snapshot(two, tags=["night"]),
            snapshot(other, tags=["fox"]),
        ],
    )

    response = await gateway.client.patch("/v1/tags/night", json={"name": "evening"})

    assert response.status_code == 202, response.text
    assert response.json()["name"] == "evening"
    assert response.json()["jobs_updated"] == 2
    assert sorted(response.json()["job_ids"]) == sorted([one, two])
    commands = {c.job_id: c.body for c in await orchestrator.take(2)}
    assert commands == {
        one: UpdateJob(tags=["fox", "evening", "owl"]),
        two: UpdateJob(tags=["evening"]),
    }
    assert await orchestrator.stored() == 2
    listed = await tag_list(gateway)
    assert listed["evening"][1] == created["created_at"]  # the registry row, renamed


async def test_rename_refuses_unknown_and_taken_names(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    await gateway.client.post("/v1/tags", json={"name": "night"})
    await put_jobs(gateway.engine, [snapshot(ids.new_job_id(), tags=["fox"])])
    assert_problem(await gateway.client.patch("/v1/tags/nope", json={"name": "x"}), 404, "tag_not_found")
    assert_problem(await gateway.client.patch("/v1/tags/night", json={"name": "fox"}), 409, "tag_exists")
    assert_problem(await gateway.client.patch("/v1/tags/fox", json={"name": "night"}), 409, "tag_exists")
    assert await orchestrator.stored() == 0


async def test_delete_removes_the_tag_from_the_registry_and_every_job(
    gateway: Gateway, orchestrator: FakeOrchestrator
) -> None:
    await gateway.client.post("/v1/tags", json={"name": "night"})
    tagged = ids.new_job_id()
    await put_jobs(gateway.engine, [snapshot(tagged, tags=["night", "fox"]), snapshot(ids.new_job_id())])

    response = await gateway.client.delete("/v1/tags/night")

    assert response.status_code == 202, response.text
    assert response.json() == {"name": "night", "jobs_updated": 1, "job_ids": [tagged]}
    [command] = await orchestrator.take(1)
    assert (command.job_id, command.body) == (tagged, UpdateJob(tags=["fox"]))
    # The registry row is gone; the job keeps showing the tag until its UpdateJob is projected.
    assert (await tag_list(gateway))["night"] == (1, None)
    assert_problem(await gateway.client.delete("/v1/tags/never"), 404, "tag_not_found")
