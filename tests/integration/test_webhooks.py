"""Webhooks against real receivers on ports of their own: signed deliveries of every event,
retried with backoff until the receiver answers, a delivery log per endpoint, replays, a
hanging receiver that delays no one else, and no requests to internal addresses."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats.js.errors
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from atelier_contracts.subjects import JOBS_STREAM
from atelier_devstack.natsserver import NatsServer
from atelier_gateway.app.webhook_dispatch import FANOUT
from tests.integration.harness import Platform, platform, served
from tests.integration.test_gateway_api import assert_problem
from tests.integration.test_streams import live_gateway, submit
from tests.support import eventually

pytestmark = pytest.mark.integration

TIMEOUT_S = 5.0  # the hanging receiver's: the others must be done well within it


@dataclass
class Receiver:
    """An HTTP receiver: fails its first ``fail_first`` requests with 500, or never answers."""

    fail_first: int = 0
    hang: bool = False
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.got.append((dict(request.headers), body))
        if self.hang:
            await asyncio.Event().wait()
        if len(self.got) <= self.fail_first:
            return Response("not yet", status_code=500)
        return Response(status_code=204)


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    async with served(app, probe="/hook", grace_s=0.1) as base:  # a hanging request is cut at once
        receiver.url = f"{base}/hook"
        yield receiver


@dataclass
class Hooks:
    client: httpx.AsyncClient
    platform: Platform


@pytest.fixture
async def hooks(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Hooks]:
    async with (
        platform(nats_server.url, database_url, tmp_path) as p,
        live_gateway(
            nats_server.url,
            database_url,
            tmp_path,
            webhook_timeout_s=TIMEOUT_S,
            webhook_retry_base_s=0.05,
            webhook_allow_hosts=("127.0.0.1",),
        ) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        p.workers()
        yield Hooks(client, p)


async def register(client: httpx.AsyncClient, url: str, events: list[str]) -> dict[str, Any]:
    r = await client.post("/v1/webhooks", json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def deliveries(client: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/webhooks/{endpoint_id}/deliveries")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_every_event_is_delivered_signed_once_the_receiver_answers_and_a_hang_delays_no_one(
    hooks: Hooks,
) -> None:
    async with serving(Receiver(fail_first=3)) as flaky, serving(Receiver(hang=True)) as stuck:
        good = await register(hooks.client, flaky.url, ["*"])
        slow = await register(hooks.client, stuck.url, ["job.*"])
        assert good["secret"].startswith("whsec_")
        job_id = await submit(hooks.client)
        await hooks.platform.wait_status(job_id, "succeeded")
        history = (await hooks.client.get(f"/v1/jobs/{job_id}/events")).json()["events"]
        deliverable = {e["event_id"] for e in history if e["type"].startswith(("job_", "step_"))}

        async def all_delivered() -> list[dict[str, Any]] | None:
            found = await deliveries(hooks.client, good["id"])
            done = {d["event_id"] for d in found if d["status"] == "delivered"}
            return found if done == deliverable else None

        log = await eventually(all_delivered, within=TIMEOUT_S * 0.9)
        # Done while the hanging receiver has not yet used up one timeout: it held nobody up.
        assert all(d["attempts"] == 0 for d in await deliveries(hooks.client, slow["id"]))

    # The receiver saw each event, signed; the three it refused came again with the same id.
    verifier = Webhook(good["secret"])
    ids_seen = [h["webhook-id"] for h, _ in flaky.got]
    accepted = {json.loads(body)["id"] for h, body in flaky.got[3:]}
    for headers, body in flaky.got:
        payload = verifier.verify(body, headers)
        assert payload["data"]["job_id"] == job_id
        assert headers["atelier-event-type"] == payload["type"]
    assert accepted == deliverable
    assert len(ids_seen) == len(deliverable) + 3
    assert set(ids_seen[:3]) <= set(ids_seen[3:]), "a retry carries the delivery's id again"
    retried = [d for d in log if d["attempts"] > 1]
    assert sum(d["attempts"] - 1 for d in retried) == 3
    for d in retried:
        assert [a["status_code"] for a in d["log"]] == [500] * (d["attempts"] - 1) + [204]
    assert all(a["latency_ms"] >= 0 for d in log for a in d["log"])
    assert {d["event_type"] for d in log} >= {"job.queued", "job.running", "job.succeeded", "step.succeeded"}


async def test_a_delivery_is_replayed_and_the_slow_endpoint_times_out_into_its_log(hooks: Hooks) -> None:
    async with serving(Receiver()) as receiver, serving(Receiver(hang=True)) as stuck:
        endpoint = await register(hooks.client, receiver.url, ["job.succeeded"])
        slow = await register(hooks.client, stuck.url, ["job.succeeded"])
        job_id = await submit(hooks.client)
        await hooks.platform.wait_status(job_id, "succeeded")

        async def one_delivered() -> list[dict[str, Any]] | None:
            found = await deliveries(hooks.client, endpoint["id"])
            return found if found and found[0]["status"] == "delivered" else None

        [delivery] = await eventually(one_delivered, within=10)
        assert delivery["event_type"] == "job.succeeded"
        r = await hooks.client.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/replay")
        assert r.status_code == 202
        await eventually(lambda: _count(receiver, 2), within=10)
        assert receiver.got[0][0]["webhook-id"] == receiver.got[1][0]["webhook-id"] == delivery["id"]

        async def timed_out() -> list[dict[str, Any]] | None:
            found = await deliveries(hooks.client, slow["id"])
            return found if found and found[0]["log"] else None

        [stalled] = await eventually(timed_out, within=TIMEOUT_S * 5)
        assert stalled["status"] == "pending"
        assert stalled["log"][0]["status_code"] is None
        assert "no answer" in stalled["log"][0]["error"]
        assert stalled["next_attempt_at"] is not None

    r = await hooks.client.post(f"/v1/webhooks/{endpoint['id']}/deliveries/dlv_nope/replay")
    assert_problem(r, 404, "webhook_not_found")


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.got) >= n


async def test_deliveries_go_only_where_allowed(hooks: Hooks) -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/x",
        "ftp://example.com/",
        "http://u:p@example.com/",
    ):
        r = await hooks.client.post("/v1/webhooks", json={"url": url, "events": ["*"]})
        assert_problem(r, 422, "webhook_url_refused")
    r = await hooks.client.post("/v1/webhooks", json={"url": "https://example.com/h", "events": ["jobs.*"]})
    assert_problem(r, 422, "validation_failed")


async def fan_out_exists(hooks: Hooks) -> bool:
    try:
        await hooks.platform.nc.jetstream().consumer_info(JOBS_STREAM, FANOUT)
    except nats.js.errors.NotFoundError:
        return False
    return True


async def test_endpoints_are_listed_changed_and_removed(hooks: Hooks) -> None:
    assert not await fan_out_exists(hooks), "no endpoint: nothing reads the log for webhooks"
    made = await register(hooks.client, "https://example.com/a", ["step.*", "job.failed"])
    await eventually(lambda: fan_out_exists(hooks), within=10)
    listed = (await hooks.client.get("/v1/webhooks")).json()["items"]
    assert [e["id"] for e in listed] == [made["id"]]
    assert listed[0]["secret"] is None, "the secret is shown once"
    r = await hooks.client.patch(f"/v1/webhooks/{made['id']}", json={"enabled": False, "events": ["*"]})
    assert r.json()["enabled"] is False
    assert r.json()["events"] == ["*"]
    assert (await hooks.client.delete(f"/v1/webhooks/{made['id']}")).status_code == 204

    async def gone() -> bool:
        return not await fan_out_exists(hooks)

    await eventually(gone, within=10)
    assert_problem(await hooks.client.get(f"/v1/webhooks/{made['id']}"), 404, "webhook_not_found")
