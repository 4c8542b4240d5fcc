"""A lean HTTP/1.1 keep-alive client for load generation on the same two cores as the services.

httpx spends ~1.8 ms of CPU a request here, as much as the gateway itself; this spends a tenth
of that, so the measured services get the machine. It speaks only what the bench needs:
JSON bodies, Content-Length responses.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class HttpError(Exception):
    pass


class LeanClient:
    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host = host
        self.port = port
        self._idle: asyncio.LifoQueue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.LifoQueue()
        self._free = asyncio.Semaphore(connections)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(payload)}\r\n"
        if payload:
            head += "Content-Type: application/json\r\n"
        async with self._free:
            reader, writer = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
            try:
                writer.write(head.encode() + b"\r\n" + payload)
                status, data = await self._response(reader)
            except BaseException:
                writer.close()
                raise
            self._idle.put_nowait((reader, writer))
        return status, json.loads(data) if data else None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length is None:
            raise HttpError("the bench client needs Content-Length responses")
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()
