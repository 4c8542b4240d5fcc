"""The services' NATS connection helpers against a real nats-server: shutting down leaves nothing running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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


class HeldConnects:
    """Stands in for ``asyncio.open_connection``: each attempt waits until the test ends it."""

    def __init__(self) -> None:
        self.attempts: asyncio.Queue[tuple[asyncio.Future[Any], tuple[Any, ...], dict[str, Any]]] = (
            asyncio.Queue()
        )

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        attempt: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.attempts.put_nowait((attempt, args, kwargs))
        return await attempt


def end_attempt_as_close_cancels(
    monkeypatch: pytest.MonkeyPatch, nc: Any, attempt: asyncio.Future[Any], end: Callable[[], None]
) -> None:
    """The first ``close()`` cancels the reconnect loop in the same loop turn as the attempt ends."""
    close = nc.close

    async def closing() -> None:
        if not attempt.done():
            end()
        await close()

    monkeypatch.setattr(nc, "close", closing)


async def test_a_cancel_lost_by_a_failing_connect_attempt_does_not_keep_it_reconnecting(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's ``wait_for`` drops a cancel that arrives as the awaited connect attempt fails:
    the timing that, by chance, hung an event loop's shutdown in CI."""
    held = HeldConnects()
    nc = await connect(nats_server.url, "test")
    nats_server.stop()
    monkeypatch.setattr(asyncio, "open_connection", held)
    attempt, _, _ = await asyncio.wait_for(held.attempts.get(), 10)
    end_attempt_as_close_cancels(
        monkeypatch, nc, attempt, lambda: attempt.set_exception(ConnectionRefusedError(111, "refused"))
    )
    await close_quietly(nc)
    assert not attempt.cancelled(), "precondition: the attempt ended in the turn close() cancelled in"
    assert nc.is_closed
    await eventually(lambda: asyncio.sleep(0, not other_tasks()), within=5)


async def test_a_cancel_lost_by_a_succeeding_connect_attempt_does_not_reopen_the_client(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NATS comes back just as the service shuts down: the lost cancel lets the attempt finish and
    mark the closed client connected again."""
    real_open_connection = asyncio.open_connection
    held = HeldConnects()
    nc = await connect(nats_server.url, "test")
    nats_server.stop()
    monkeypatch.setattr(asyncio, "open_connection", held)
    attempt, args, kwargs = await asyncio.wait_for(held.attempts.get(), 10)
    nats_server.start()
    connection = await real_open_connection(*args, **kwargs)
    monkeypatch.setattr(asyncio, "open_connection", real_open_connection)
    end_attempt_as_close_cancels(monkeypatch, nc, attempt, lambda: attempt.set_result(connection))
    await close_quietly(nc)
    assert not attempt.cancelled(), "precondition: the attempt ended in the turn close() cancelled in"
    assert nc.is_closed
    await eventually(lambda: asyncio.sleep(0, not other_tasks()), within=5)
    assert nc.is_closed, "nothing opened it again"
