"""Sessions over the API with the real orchestrator, workers, nats-server and SQL: what is refused
at the door and why, idempotent creation, a round's candidates, and a session's relay made
again after a crash submitting its round's job once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier_contracts import ids
from atelier_contracts.aggregates import Addressed, LogCommit
from atelier_contracts.sessions import CreateSession, RoundStarted, SessionCommand, SessionEvent, StartRound
from atelier_devstack.natsserver import NatsServer
from atelier_orchestrator.adapters.commandbus import JetStreamCommandBus
from atelier_orchestrator.app.aggregates import AggregateService
from atelier_orchestrator.app.sessions import SessionRelay
from atelier_orchestrator.bootstrap import session_log
from atelier_orchestrator.domain import session
from atelier_orchestrator.domain.session import SessionState
from tests.integration.harness import Platform, platform
from tests.integration.test_gateway_api import Gateway, assert_problem, open_gateway
from tests.support import eventually

pytestmark = pytest.mark.integration

ROUND = {"input": {"prompt": "a teapot on a table", "capability": "image.generate"}}


@pytest.fixture
async def stack(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Platform]]:
    async with (
        open_gateway(nats_server.url, database_url, tmp_path, command_wait_s=10.0) as gw,
        platform(nats_server.url, database_url, tmp_path) as p,
    ):
        p.workers()
        yield gw, p


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/sessions", json={"kind": "task", "title": "Teapot", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_what_the_door_refuses(stack: tuple[Gateway, Platform]) -> None:
    client = stack[0].client
    unknown = await client.post("/v1/sessions", json={"kind": "bogus", "title": "T"})
    assert assert_problem(unknown, 422, "unknown_job_kind")["errors"][0]["loc"] == ["body", "kind"]
    bad_field = await client.post(
        "/v1/sessions", json={"kind": "task", "title": "T", "context": {"extra": {"Bad Key": "x"}}}
    )
    assert_problem(bad_field, 422, "validation_failed")
    too_long = await client.post(
        "/v1/sessions", json={"kind": "task", "title": "T", "context": {"lighting": "x" * 201}}
    )
    assert_problem(too_long, 422, "validation_failed")

    session_id = (await create(client))["id"]
    bad_input = await client.post(
        f"/v1/sessions/{session_id}/rounds",
        json={"input": {"prompt": "p", "capability": "tts", "seed": "abc"}},
    )
    assert assert_problem(bad_input, 422, "validation_failed")["errors"][0]["loc"] == [
        "body",
        "input",
        "seed",
    ]
    forged = await client.post(
        f"/v1/sessions/{session_id}/rounds",
        json={"input": {"prompt": "p", "capability": "tts", "session": {"context": {"lighting": "x"}}}},
    )
    assert assert_problem(forged, 422, "validation_failed")["errors"][0]["loc"] == [
        "body",
        "input",
        "session",
    ]
    no_round = await client.post(
        f"/v1/sessions/{session_id}/rounds/1/adopt", json={"asset_id": "ast_nothing"}
    )
    assert_problem(no_round, 404, "round_not_found")

    missing = "ses_" + "0" * 32
    assert_problem(await client.get(f"/v1/sessions/{missing}"), 404, "session_not_found")
    assert_problem(
        await client.patch(f"/v1/sessions/{missing}", json={"title": "x"}), 404, "session_not_found"
    )
    assert_problem(await client.post(f"/v1/sessions/{missing}/rounds", json=ROUND), 404, "session_not_found")
    assert_problem(await client.post(f"/v1/sessions/{missing}/close"), 404, "session_not_found")

    closed = await client.post(f"/v1/sessions/{session_id}/close")
    assert closed.json()["status"] == "closed"
    assert_problem(await client.post(f"/v1/sessions/{session_id}/rounds", json=ROUND), 409, "session_closed")
    assert_problem(
        await client.patch(f"/v1/sessions/{session_id}", json={"title": "x"}), 409, "session_closed"
    )


async def test_a_create_under_one_key_makes_one_session(stack: tuple[Gateway, Platform]) -> None:
    client = stack[0].client
    headers = {"Idempotency-Key": f"k-{ids.uuid7()}"}
    first = await client.post("/v1/sessions", json={"kind": "task", "title": "T"}, headers=headers)
    again = await client.post("/v1/sessions", json={"kind": "task", "title": "T"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = await client.post("/v1/sessions", json={"kind": "task", "title": "U"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    listed = (await client.get("/v1/sessions")).json()["items"]
    assert [s["id"] for s in listed] == [first.json()["id"]]


async def test_a_round_records_its_candidates_and_one_is_adopted(stack: tuple[Gateway, Platform]) -> None:
    client = stack[0].client
    session_id = (await create(client, context={"perspective": "three-quarter"}))["id"]
    started = await client.post(f"/v1/sessions/{session_id}/rounds", json=ROUND)
    assert started.status_code == 202, started.text
    assert started.json()["rounds"][0]["context"] == {"perspective": "three-quarter"}

    async def ended() -> dict[str, Any] | None:
        view = (await client.get(f"/v1/sessions/{session_id}")).json()
        return view if view["rounds"][0]["status"] == "succeeded" else None

    view = await eventually(ended)
    [candidate] = view["rounds"][0]["candidates"]
    assert candidate["kind"] == "image"
    unknown = await client.post(f"/v1/sessions/{session_id}/rounds/1/adopt", json={"asset_id": "ast_nope"})
    assert_problem(unknown, 404, "candidate_not_found")
    adopted = await client.post(
        f"/v1/sessions/{session_id}/rounds/1/adopt", json={"asset_id": candidate["asset_id"]}
    )
    assert adopted.json()["adopted"] == candidate
    assert adopted.json()["rounds"][0]["adopted"] == candidate["asset_id"]


async def test_a_relay_cut_short_by_a_crash_submits_the_rounds_job_once_when_the_command_comes_again(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    """The round is appended, then the process dies before the job's submit went out: the command
    is delivered again, decides nothing new, and relays the round again — one job."""
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.workers()
        sent: list[str] = []
        relay = SessionRelay(JetStreamCommandBus(p.nc.jetstream()).send, lambda: datetime.now(UTC))

        async def crash_once(commit: LogCommit[SessionEvent], seq: int, state: SessionState) -> None:
            if any(isinstance(e, RoundStarted) for e in commit.events) and "crashed" not in sent:
                sent.append("crashed")
                raise ConnectionError("killed before the relay")
            await relay.on_commit(commit, seq, state)
            sent.append(f"relayed {seq}")

        service = AggregateService[SessionState, SessionCommand, SessionEvent](
            session_log(p.nc.jetstream()), session.decide, crash_once, lambda: datetime.now(UTC)
        )
        sid = "ses_" + ids.uuid7().replace("-", "")

        def message(msg_id: str, body: SessionCommand) -> Addressed[SessionCommand]:
            return Addressed[SessionCommand](
                msg_id=msg_id, to=sid, tenant="t1", sent_at=datetime.now(UTC), body=body
            )

        await service.handle(message("create", CreateSession(kind="task", title="T")))
        start = message("start", StartRound(input={"prompt": "p", "capability": "text.generate"}))
        with pytest.raises(ConnectionError):
            await service.handle(start)
        again = await service.handle(start, redelivered=True)
        assert again.events == [], "decided once"
        assert again.state is not None
        job_id = again.state.rounds[0].job_id
        snapshot = await p.wait_status(job_id, "succeeded", within=30)
        assert snapshot.origin is not None
        assert snapshot.origin.session == sid
        # A third delivery of the same command relays again: the submit is a duplicate, no new job.
        await service.handle(start, redelivered=True)
        events = await p.events(job_id)
        assert [type(e).__name__ for e in events].count("JobSubmitted") == 1
