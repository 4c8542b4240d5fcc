"""The services' NATS connection helpers against a real nats-server: shutting down leaves nothing running."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atelier_contracts.runtime.nats import close_quietly, connect
from atelier_devstack.natsserver import NatsServer
from tests.support import eventually

pytestmark = pytest.mark.integration


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def test_closing_a_live_connection_drains_it(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, "test")
    await close_quietly(nc)
    assert nc.is_closed
    await eventually(lambda: asyncio.sleep(0, not other_tasks()), within=5)


async def test_closing_while_nats_is_down_ends_the_reconnect_loop(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, "test")
    nats_server.stop()
    await eventually(lambda: asyncio.sleep(0, nc.is_reconnecting), within=10)
    await close_quietly(nc)
    assert nc.is_closed
    await eventually(lambda: asyncio.sleep(0, not other_tasks()), within=5)


async def test_a_cancel_lost_by_a_failing_connect_attempt_does_not_keep_it_reconnecting(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's ``wait_for`` drops a cancel that arrives as the awaited connect attempt fails.

    Here the attempt fails in the same loop turn as ``close()`` cancels the reconnect loop: the
    timing that, by chance, hung an event loop's shutdown in CI.
    """
    attempts: asyncio.Queue[asyncio.Future[Any]] = asyncio.Queue()

    async def held_connect(*args: Any, **kwargs: Any) -> Any:
        attempt: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        attempts.put_nowait(attempt)
        return await attempt

    nc = await connect(nats_server.url, "test")
    nats_server.stop()
    monkeypatch.setattr(asyncio, "open_connection", held_connect)
    attempt = await asyncio.wait_for(attempts.get(), 10)
    close = nc.close

    async def close_as_the_attempt_fails() -> None:
        attempt.set_exception(ConnectionRefusedError(111, "refused"))
        await close()

    monkeypatch.setattr(nc, "close", close_as_the_attempt_fails)
    await close_quietly(nc)
    assert nc.is_closed
    await eventually(lambda: asyncio.sleep(0, not other_tasks()), within=5)
