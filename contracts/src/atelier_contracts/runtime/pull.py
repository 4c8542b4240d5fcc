"""Pull requests on a durable JetStream consumer, each message handed to a callback.

nats-py's ``fetch`` holds a batch until it is full or its time is up, starts a task per message,
and cannot ask "what is there now?" without lingering (``docs/benchmarks.md`` has the numbers).
This sends the requests itself: one request is open at a time, so every message
and the status that ends a request (404 no messages, 408 expired, 409) belong to it, and the
number of messages still owed to us is always known.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

STATUS_HEADER = "Status"
HEARTBEAT = "100"
NO_WAIT_LIFETIME_S = 5.0
"""How long to count on a no-wait request whose closing status never came (a lost connection)."""


@dataclass
class _Request:
    batch: int
    expires_at: float
    done: asyncio.Future[int]
    delivered: int = 0

    @property
    def owed(self) -> int:
        return self.batch - self.delivered


def stream_sequence(msg: Msg) -> int:
    """A delivered message's sequence in its stream, read from its ack subject (``$JS.ACK.<stream>.
    <consumer>.<delivered>.<stream seq>…``, or with a domain and account hash before the stream):
    a tenth of the cost of nats-py's ``msg.metadata``, which parses every field."""
    tokens = msg.reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


class PullRequests:
    """One open pull request at a time on one durable consumer; messages go to ``on_message``.

    Delivered messages keep their own subject, so only the statuses name the request they end;
    with one request open at a time, every message belongs to it.
    """

    def __init__(self, nc: Client, stream: str, durable: str, on_message: Callable[[Msg], None]) -> None:
        self._nc = nc
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._prefix = nc.new_inbox()
        self._on_message = on_message
        self._token = ""
        self._open: _Request | None = None
        self._counter = 0
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._receive)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        self.forget()

    @property
    def owed(self) -> int:
        """Messages the open request may still deliver (0 once past its lifetime)."""
        if self._open is not None and asyncio.get_running_loop().time() > self._open.expires_at:
            self.forget()
        return self._open.owed if self._open is not None else 0

    def forget(self) -> None:
        """Stop counting on the open request (after a reconnect the server has forgotten it)."""
        request, self._open = self._open, None
        if request is not None and not request.done.done():
            request.done.set_result(request.delivered)

    async def request(self, batch: int, wait_s: float | None) -> asyncio.Future[int]:
        """Ask for up to ``batch`` messages: those there now (``wait_s`` None), or also those that
        arrive within ``wait_s``. The future gives how many came once the request is over."""
        self.forget()
        loop = asyncio.get_running_loop()
        self._counter += 1
        self._token = str(self._counter)
        body: dict[str, object] = {"batch": batch}
        if wait_s is None:
            body["no_wait"] = True
            lifetime = NO_WAIT_LIFETIME_S
        else:
            body["expires"] = int(wait_s * 1e9)
            lifetime = wait_s + 2.0
        request = _Request(batch=batch, expires_at=loop.time() + lifetime, done=loop.create_future())
        self._open = request
        await self._nc.publish(self._api, json.dumps(body).encode(), reply=f"{self._prefix}.{self._token}")
        return request.done

    async def _receive(self, msg: Msg) -> None:
        if not msg.reply:  # a status: 404 no messages, 408 expired, 409 ...; 100 is a heartbeat
            status = msg.headers.get(STATUS_HEADER) if msg.headers else None
            if status != HEARTBEAT and msg.subject == f"{self._prefix}.{self._token}":
                self.forget()
            return
        request = self._open
        if request is not None:
            request.delivered += 1
            if request.owed <= 0:
                self.forget()
        self._on_message(msg)  # also a late one: it was delivered, so it must be handled
