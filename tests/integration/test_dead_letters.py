"""No message loops forever: what a consumer gives up on is kept, with its error, and can be re-driven."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from atelier_contracts.commands import CancelJob
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.ids import new_job_id, new_message_id
from atelier_contracts.runtime import deadletter
from atelier_contracts.runtime.consumer import ACK, Consumer, ConsumerSpec, Outcome
from atelier_contracts.runtime.nats import connect, ensure_streams
from atelier_contracts.subjects import COMMANDS_STREAM, MSG_ID_HEADER, command_subject
from atelier_devstack.natsserver import NatsServer
from atelier_orchestrator import main as orchestrator_cli
from atelier_orchestrator.bootstrap import bootstrap
from tests.integration.harness import orchestrator_settings
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect(nats_server.url, "test")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@contextlib.asynccontextmanager
async def running(*parts: object) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p(stop)) for p in parts]  # type: ignore[operator]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def letters(nc: Client, consumer: str, count: int) -> list[deadletter.DeadLetter]:
    async def probe() -> list[deadletter.DeadLetter] | None:
        found = [d async for d in deadletter.dead_letters(nc, consumer)]
        return found if len(found) >= count else None

    return await eventually(probe, within=30)


async def pending_commands(nc: Client) -> int:
    return int((await nc.jetstream().stream_info(COMMANDS_STREAM)).state.messages)


def cancel_command(job_id: str) -> bytes:
    msg_id = new_message_id()
    return encode(
        Envelope(
            msg_id=msg_id, job_id=job_id, tenant="t1", correlation_id=msg_id, causation_id=None,
            sent_at=datetime.now(UTC), body=CancelJob(reason="r"),
        )
    )  # fmt: skip


async def test_undecodable_and_oversized_commands_are_dead_letters_with_their_error(
    nats_server: NatsServer, database_url: str, nc: Client
) -> None:
    js = nc.jetstream()
    job_id = new_job_id()
    await js.publish(command_subject(job_id), b"{not a command", headers={MSG_ID_HEADER: "bad-1"})
    huge = json.dumps({"padding": "x" * 300_000}).encode()
    await js.publish(command_subject(job_id), huge, headers={MSG_ID_HEADER: "big-1"})
    orch = await bootstrap(orchestrator_settings(nats_server.url, database_url))
    try:
        async with running(*orch.parts()):
            found = await letters(nc, "orchestrator-commands", 2)
            await eventually(lambda: _zero(pending_commands(nc)), within=10)
    finally:
        await orch.close()
    by_error = sorted(found, key=lambda d: d.error)
    assert by_error[0].error.startswith(f"too large: {len(huge)} bytes, more than the 262144")
    assert by_error[0].size == len(huge)
    assert by_error[1].error.startswith("undecodable:")
    assert by_error[1].data == b"{not a command"
    assert {d.subject for d in found} == {command_subject(job_id)}
    assert all(d.stream == COMMANDS_STREAM and d.deliveries == 1 for d in found)
    assert await deadletter.counts(nc) == {"orchestrator-commands": 2}


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0


async def test_a_handler_that_always_fails_is_bounded_then_redriven_once(nc: Client) -> None:
    spec = ConsumerSpec(
        stream=COMMANDS_STREAM,
        durable="test-failing",
        filter_subject="atelier.cmd.>",
        dead_after=3,
        dead_after_s=0,
    )
    seen: list[int] = []
    broken = True

    async def handler(msg: Msg) -> Outcome:
        seen.append(msg.metadata.num_delivered)
        if broken:
            raise RuntimeError("the handler is broken")
        return ACK

    await nc.jetstream().publish(
        command_subject(new_job_id()), cancel_command("x"), headers={MSG_ID_HEADER: "m1"}
    )
    async with running(Consumer(nc, spec, handler).run):
        [letter] = await letters(nc, "test-failing", 1)
        assert seen == [1, 2, 3], "delivered as often as allowed, not forever"
        assert letter.deliveries == 3
        assert letter.error == "still failing after 3 deliveries: RuntimeError: the handler is broken"
        assert await pending_commands(nc) == 0, "the original is gone from its stream"
        broken = False
        await deadletter.redrive(nc, letter)
        await eventually(lambda: _equal(seen, [1, 2, 3, 1]), within=10)
    assert [d async for d in deadletter.dead_letters(nc, "test-failing")] == []
    assert seen == [1, 2, 3, 1], "the re-driven message ran once, as a new one"


async def _equal(got: list[int], want: list[int]) -> bool:
    return got == want


async def test_the_cli_lists_and_redrives_dead_letters(
    nats_server: NatsServer, database_url: str, nc: Client, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    js = nc.jetstream()
    await js.publish(command_subject(new_job_id()), b"\xff", headers={MSG_ID_HEADER: "bad-2"})
    orch = await bootstrap(orchestrator_settings(nats_server.url, database_url))
    try:
        async with running(*orch.parts()):
            await letters(nc, "orchestrator-commands", 1)
    finally:
        await orch.close()
    monkeypatch.setenv("ATELIER_NATS_URL", nats_server.url)
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    monkeypatch.setenv("ATELIER_STATE_DIR", "/nonexistent")
    with pytest.raises(SystemExit) as listed:
        await asyncio.to_thread(orchestrator_cli.main, ["dead-letters"])
    assert listed.value.code == 0
    [row, total] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert (row["consumer"], row["error"][:12], "redriven" in row) == (
        "orchestrator-commands",
        "undecodable:",
        False,
    )
    with pytest.raises(SystemExit) as redriven:
        await asyncio.to_thread(orchestrator_cli.main, ["dead-letters", "--redrive"])
    assert redriven.value.code == 0
    [row, total] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert row["redriven"] is True
    assert total == {"dead_letters": 1, "not_redriven": 0}
    assert await pending_commands(nc) == 1, "published again where it came from"
    # It is undecodable still: buried again; this time discarded.
    await js.publish(command_subject(new_job_id()), b"\xfe", headers={MSG_ID_HEADER: "bad-3"})
    orch = await bootstrap(orchestrator_settings(nats_server.url, database_url))
    try:
        async with running(*orch.parts()):
            await letters(nc, "orchestrator-commands", 2)
    finally:
        await orch.close()
    with pytest.raises(SystemExit) as discarded:
        await asyncio.to_thread(orchestrator_cli.main, ["dead-letters", "--discard"])
    assert discarded.value.code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r.get("discarded") for r in rows[:-1]] == [True, True]
    assert [d async for d in deadletter.dead_letters(nc)] == []


async def test_a_commit_the_projector_gave_up_on_is_re_applied_from_the_log_not_republished(
    nats_server: NatsServer, database_url: str, nc: Client, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from atelier_contracts.commands import SubmitJob
    from atelier_contracts.subjects import JOBS_STREAM, job_subject
    from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
    from atelier_orchestrator.adapters.migrate import upgrade
    from atelier_orchestrator.app.handlers import JobService
    from tests.integration.harness import Platform

    js = nc.jetstream()
    job_id = new_job_id()
    msg_id = new_message_id()
    body = SubmitJob(kind="task", title="t", input={"prompt": "p", "capability": "tts"})
    submit = Envelope(
        msg_id=msg_id, job_id=job_id, tenant="t1", correlation_id=msg_id, causation_id=None,
        sent_at=datetime.now(UTC), body=body,
    )  # fmt: skip
    await JobService(JetStreamEventStore(js)).handle(submit)  # type: ignore[arg-type]
    raw = await js.get_last_msg(JOBS_STREAM, job_subject(job_id))
    assert raw.seq is not None
    # As the projector leaves it at its 50th delivery: the commit, where it came from, and why.
    reply = f"$JS.ACK.{JOBS_STREAM}.orchestrator-projector.50.{raw.seq}.{raw.seq}.0.0"
    delivered = Msg(_client=nc, subject=job_subject(job_id), reply=reply, data=raw.data or b"", headers=None)
    await deadletter.bury(nc, "orchestrator-projector", delivered, "projecting the commit failed", 50)
    await asyncio.to_thread(upgrade, database_url)
    platform = Platform(nc=nc, database_url=database_url, blobs=None)  # type: ignore[arg-type]
    assert await platform.snapshot(job_id) is None, "not in the read model"
    log_before = (await js.stream_info(JOBS_STREAM)).state.messages

    monkeypatch.setenv("ATELIER_NATS_URL", nats_server.url)
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    monkeypatch.setenv("ATELIER_STATE_DIR", "/nonexistent")
    with pytest.raises(SystemExit) as redriven:
        await asyncio.to_thread(orchestrator_cli.main, ["dead-letters", "--redrive"])
    assert redriven.value.code == 0, capsys.readouterr().out
    snapshot = await platform.snapshot(job_id)
    assert snapshot is not None
    assert snapshot.version == raw.seq, "applied from the log"
    assert (await js.stream_info(JOBS_STREAM)).state.messages == log_before, "nothing appended to the log"
    assert [d async for d in deadletter.dead_letters(nc)] == []


async def test_a_session_commit_the_projector_gave_up_on_is_re_applied_not_appended_again(
    nats_server: NatsServer, database_url: str, nc: Client, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Every event log is re-applied from the log, not republished: republishing a session's
    commit would append it to the session's log a second time."""
    import sqlalchemy as sa

    from atelier_contracts.aggregates import Addressed
    from atelier_contracts.readmodel import make_engine, sessions
    from atelier_contracts.sessions import CreateSession, SessionCommand
    from atelier_contracts.subjects import SESSIONS_STREAM, session_subject
    from atelier_orchestrator.adapters.migrate import upgrade
    from atelier_orchestrator.app.aggregates import AggregateService
    from atelier_orchestrator.bootstrap import session_log
    from atelier_orchestrator.domain import session

    async def no_relay(*_: object) -> None:
        return None

    js = nc.jetstream()
    sid = "ses_" + new_message_id().replace("-", "")
    service = AggregateService(session_log(js), session.decide, no_relay, lambda: datetime.now(UTC))
    create = Addressed[SessionCommand](
        msg_id=new_message_id(), to=sid, tenant="default", sent_at=datetime.now(UTC),
        body=CreateSession(kind="task", title="T"),
    )  # fmt: skip
    await service.handle(create)
    raw = await js.get_last_msg(SESSIONS_STREAM, session_subject(sid))
    assert raw.seq is not None
    reply = f"$JS.ACK.{SESSIONS_STREAM}.orchestrator-session-projector.50.{raw.seq}.{raw.seq}.0.0"
    delivered = Msg(_client=nc, subject=session_subject(sid), reply=reply, data=raw.data or b"", headers=None)
    await deadletter.bury(nc, "orchestrator-session-projector", delivered, "projecting failed", 50)
    await asyncio.to_thread(upgrade, database_url)
    log_before = (await js.stream_info(SESSIONS_STREAM)).state.messages

    monkeypatch.setenv("ATELIER_NATS_URL", nats_server.url)
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    monkeypatch.setenv("ATELIER_STATE_DIR", "/nonexistent")
    with pytest.raises(SystemExit) as redriven:
        await asyncio.to_thread(orchestrator_cli.main, ["dead-letters", "--redrive"])
    assert redriven.value.code == 0, capsys.readouterr().out
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(sa.select(sessions.c.last_seq).where(sessions.c.id == sid))).first()
    finally:
        await engine.dispose()
    assert row is not None
    assert row.last_seq == raw.seq, "applied from the log"
    assert (await js.stream_info(SESSIONS_STREAM)).state.messages == log_before, "nothing appended"
    assert [d async for d in deadletter.dead_letters(nc)] == []
