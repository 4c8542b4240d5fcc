"""A durable JetStream pull consumer that runs a handler per message with bounded concurrency.

Delivery is at least once: a handler must be idempotent. It returns what to do with the
message (:data:`ACK`, or :class:`Retry` to redeliver later); an exception is logged and the
message redelivered with a growing delay. Long handlers are kept alive with in-progress acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retry:
    """Redeliver the message after ``delay`` seconds."""

    delay: float = 0.5


ACK = None
Outcome = Retry | None
Handler = Callable[[Msg], Awaitable[Outcome]]


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subject: str
    ack_wait_s: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 1000
    concurrency: int = 8


@contextlib.asynccontextmanager
async def keep_alive(msg: Msg, every: float) -> AsyncIterator[None]:
    """Send in-progress acks while the body runs, so ``ack_wait`` never expires under it."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def redelivery_delay(num_delivered: int) -> float:
    return float(min(0.2 * 2 ** max(num_delivered - 1, 0), 10.0))


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=spec.durable,
        name=spec.durable,
        filter_subject=spec.filter_subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_s,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
    )


class Consumer:
    """Runs ``handler`` over a durable consumer until ``stop`` is set.

    With ``lower`` consumers (lower priority bands of the same work), each fetch takes from the
    highest band that has messages; the concurrency of ``spec`` bounds them all together.
    """

    def __init__(
        self, js: JetStreamContext, spec: ConsumerSpec, handler: Handler, lower: Sequence[ConsumerSpec] = ()
    ) -> None:
        self.js = js
        self.spec = spec
        self.specs = (spec, *lower)
        self.handler = handler
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        subs = [
            await self.js.pull_subscribe(
                s.filter_subject, durable=s.durable, stream=s.stream, config=consumer_config(s)
            )
            for s in self.specs
        ]
        # One band: long polls. Several: short polls, so a high-priority arrival waits little.
        poll_s = 1.0 if len(subs) == 1 else 0.1
        try:
            while not stop.is_set():
                free = self.spec.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                for msg in await self._fetch(subs, free, poll_s, stop):
                    task = asyncio.create_task(self._handle(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.spec.ack_wait_s)
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _fetch(
        self, subs: list[JetStreamContext.PullSubscription], free: int, poll_s: float, stop: asyncio.Event
    ) -> list[Msg]:
        for sub in subs:
            try:
                # wait_for guards against a fetch stuck on an orphaned pull request.
                msgs = await asyncio.wait_for(sub.fetch(free, timeout=poll_s), timeout=10)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except (
                nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError,
                nats.js.errors.APIError,  # e.g. 503 while JetStream elects a leader
            ) as exc:
                log.warning("fetch failed, backing off: %s", exc, extra={"durable": self.spec.durable})
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)  # back off while NATS recovers
                return []
            if msgs:
                return list(msgs)
        return []

    async def _handle(self, msg: Msg) -> None:
        try:
            async with keep_alive(msg, max(self.spec.ack_wait_s / 3, 0.5)):
                outcome = await self.handler(msg)
        except Exception:
            delay = redelivery_delay(msg.metadata.num_delivered)
            log.exception(
                "handler failed; redelivering",
                extra={"subject": msg.subject, "durable": self.spec.durable, "delay_s": delay},
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=delay)
            return
        with contextlib.suppress(Exception):
            if outcome is None:
                await msg.ack()
            else:
                await msg.nak(delay=outcome.delay)
