"""The gateway under a hostile or unlucky client, on a real socket: bodies capped before they are
read, and clients that send slowly timed out without holding the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from atelier_contracts.runtime import ops
from atelier_devstack.natsserver import NatsServer, free_port, wait_for_port
from atelier_gateway.config import Settings
from atelier_gateway.entrypoints.http import create_app
from tests.integration.test_gateway_api import BODY, SECRET

LIMIT = 16 * 1024  # under uvicorn's 64 KiB read buffer, so the server has read all we sent
SLOW_S = 0.5


@dataclass
class Served:
    port: int

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def served(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(
        url_secret=SECRET,
        nats_url=nats_server.url,
        database_url=database_url,
        blob_dir=tmp_path / "blobs",
        max_body_bytes=LIMIT,
        body_timeout_s=SLOW_S,
        header_timeout_s=SLOW_S,
    )
    app = create_app(settings)
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(ops.serve(app, "127.0.0.1", port, stop, grace_s=1, header_timeout_s=SLOW_S))
    await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 30)
    try:
        yield Served(port)
    finally:
        stop.set()
        await server


async def answer(reader: asyncio.StreamReader, within: float = 5.0) -> tuple[int, bytes]:
    """The status and the whole rest of what the server sent until it closed the connection."""
    async with asyncio.timeout(within):
        data = await reader.read()  # to EOF: the server must close the connection
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def request_head(length: int | None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{size}{extra}\r\n"
    ).encode()


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(served: Served) -> None:
    reader, writer = await served.open()
    writer.write(request_head(50_000_000) + b"{" + b" " * 1023)  # declares 50 MB, sends 1 KB
    status, body = await answer(reader)
    writer.close()
    assert status == 413
    assert b'"code":"input_too_large"' in body


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(served: Served) -> None:
    reader, writer = await served.open()
    writer.write(request_head(None))
    chunk = b" " * 8192

    for _ in range(LIMIT // len(chunk) + 1):  # just past the limit, and no end of the body
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()
    status, body = await answer(reader)
    writer.close()
    assert status == 413
    assert b'"code":"input_too_large"' in body


async def test_a_body_that_stops_coming_is_timed_out(served: Served) -> None:
    reader, writer = await served.open()
    writer.write(request_head(500) + b'{"kind": ')  # then nothing more
    status, body = await answer(reader, within=SLOW_S + 5)
    writer.close()
    assert status == 408
    assert b'"code":"request_timeout"' in body


@pytest.mark.parametrize("first", [b"", b"POST /v1/jobs HTTP/1.1\r\nHo"])
async def test_headers_sent_too_slowly_are_timed_out(served: Served, first: bytes) -> None:
    """Silence after connecting, or headers a byte every 0.1 s (each would reset an idle timer)."""
    reader, writer = await served.open()
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(first)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(100 if first else 0):
                await asyncio.sleep(0.1)
                writer.write(b"x")
                await writer.drain()

    dripping = asyncio.create_task(trickle())
    status, body = await answer(reader, within=SLOW_S + 5)
    dripping.cancel()
    writer.close()
    assert status == 408
    assert b'"code":"request_timeout"' in body
    assert loop.time() - started < SLOW_S + 2


async def test_requests_on_time_are_served_beside_slow_ones(served: Served) -> None:
    """The header deadline must not touch a client that sends its request promptly."""
    slow = [await served.open() for _ in range(20)]
    for _, writer in slow:
        writer.write(b"POST /v1/jobs HTTP/1.1\r\n")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as client:
        response = await client.post("/v1/jobs", json=BODY)
    assert response.status_code == 202, response.text
    for _, writer in slow:
        writer.close()
