"""Batched direct gets: many messages of a stream in one request, no consumer on the server.

``$JS.API.DIRECT.GET.<stream>`` with a ``batch`` answers with up to that many messages, each
with its sequence and subject in headers, and ends with a ``204`` status (``404``: nothing
there). With ``next_by_subj`` it reads forward from a sequence over a subject (wildcards
allowed); with ``multi_last`` it gives the last message of each matching subject. A reader that
always asks from the sequence after the last one it got can lose nothing and see nothing twice,
whatever happened to the server or the connection in between (``docs/streams.md``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg

from atelier_contracts.runtime.pull import STATUS_HEADER

SEQUENCE_HEADER = "Nats-Sequence"
SUBJECT_HEADER = "Nats-Subject"
PENDING_HEADER = "Nats-Num-Pending"
END_OF_BATCH = "204"
NOTHING = "404"


@dataclass(frozen=True)
class StoredMsg:
    seq: int
    subject: str
    data: bytes


class DirectGetError(Exception):
    """The server refused the request (the stream has no direct get, or is gone)."""


async def read_batch(
    nc: Client, stream: str, request: dict[str, object], timeout_s: float = 5.0
) -> tuple[list[StoredMsg], int]:
    """One batched direct get: the messages, and how many more match after the last of them."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    got: list[StoredMsg] = []
    pending = 0

    async def receive(msg: Msg) -> None:
        nonlocal pending
        headers = msg.headers or {}
        status = headers.get(STATUS_HEADER)
        if status is not None:
            if not done.done():
                done.set_result(status if status in (END_OF_BATCH, NOTHING) else f"{status} {msg.data!r}")
            return
        got.append(StoredMsg(int(headers[SEQUENCE_HEADER]), headers[SUBJECT_HEADER], msg.data))
        pending = int(headers.get(PENDING_HEADER, "0"))

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=receive)
    try:
        await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox)
        status = await asyncio.wait_for(done, timeout_s)
    finally:
        await sub.unsubscribe()
    if status not in (END_OF_BATCH, NOTHING):
        raise DirectGetError(f"direct get on {stream}: {status}")
    return got, (pending if got else 0)


async def pages_after(
    nc: Client, stream: str, subject: str, after: int, batch: int = 500, timeout_s: float = 5.0
) -> AsyncIterator[list[StoredMsg]]:
    """The messages on ``subject`` (wildcards allowed) with a sequence above ``after``, in order,
    ``batch`` at a time (each page one request)."""
    while True:
        got, pending = await read_batch(
            nc, stream, {"seq": after + 1, "next_by_subj": subject, "batch": batch}, timeout_s
        )
        if got:
            yield got
        if not got or pending == 0:
            return
        after = got[-1].seq


async def read_after(
    nc: Client, stream: str, subject: str, after: int, batch: int = 500, timeout_s: float = 5.0
) -> list[StoredMsg]:
    """Every message on ``subject`` (wildcards allowed) with a sequence above ``after``, in order."""
    return [m async for page in pages_after(nc, stream, subject, after, batch, timeout_s) for m in page]


async def last_of_each(nc: Client, stream: str, subject: str, timeout_s: float = 5.0) -> list[StoredMsg]:
    """The last message of every subject matching ``subject`` (a KV bucket's current values)."""
    got, _ = await read_batch(nc, stream, {"multi_last": [subject], "batch": 1000}, timeout_s)
    return got
