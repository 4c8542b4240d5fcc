"""Pull requests on a durable JetStream consumer, each message handed to a callback.

nats-py's ``fetch`` holds a batch until it is full or its time is up, starts a task per message,
and cannot ask "what is there now?" without lingering (``docs/benchmarks.md`` has the numbers).
This sends the requests itself: one request is open at a time, so every message
and the status that ends a request (404 no messages, 408 expired, 409) belong to it, and the
number of messages still owed to us is always known.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

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
    return int(_ack_fields(msg)[3])


def deliveries(msg: Msg) -> int:
    """How many times the message has been delivered, this time included (``num_delivered``), read
    from its ack subject as ``stream_sequence`` reads the sequence."""
    return int(_ack_fields(msg)[2])


def _ack_fields(msg: Msg) -> list[str]:
    """The ack subject's fields from the stream's name on: stream, consumer, delivered, stream
    sequence, consumer sequence, timestamp, pending."""
    tokens = msg.reply.split(".")
    return tokens[2:] if len(tokens) == 9 else tokens[4:]


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


REQUEST_TIMEOUT_S = 10.0


async def read_stream(
    nc: Client, stream: str, filter_subject: str, after: int = 0, batch: int = 1000
) -> AsyncIterator[Msg]:
    """Every message of ``stream`` on ``filter_subject`` after sequence ``after`` up to the
    stream's last when the read began, in order, from an ephemeral consumer (removed after).

    No-wait pull requests of ``batch`` messages, one at a time: nats-py's ``fetch`` spends
    ~100 µs a message on its own bookkeeping (``docs/benchmarks.md``)."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    last = info.state.last_seq
    if info.state.messages == 0 or last <= after:
        return
    name = f"reader-{nc.new_inbox().rsplit('.', 1)[-1]}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            name=name,
            filter_subject=filter_subject,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            inactive_threshold=30,
        ),
    )
    arrived: list[Msg] = []
    pulls = PullRequests(nc, stream, name, arrived.append)
    await pulls.start()
    try:
        while True:
            done = await pulls.request(batch, wait_s=None)
            try:
                await asyncio.wait_for(done, timeout=REQUEST_TIMEOUT_S)
            except TimeoutError:
                continue  # a lost connection: ask again (what was delivered is in ``arrived``)
            if not arrived:
                return  # nothing after the last one (the last sequences may have been removed)
            msgs, arrived[:] = arrived[:], []
            for msg in msgs:
                seq = stream_sequence(msg)
                if seq > last:
                    return
                yield msg
                if seq == last:
                    return
    finally:
        await pulls.stop()
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            await js.delete_consumer(stream, name)
