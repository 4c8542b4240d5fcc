"""A durable JetStream pull consumer that runs a handler per message with bounded concurrency.

Delivery is at least once: a handler must be idempotent. It returns what to do with the
message (:data:`ACK`, or :class:`Retry` to redeliver later); an exception is logged and the
message redelivered with a growing delay. Long handlers are kept alive with in-progress acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import nats.errors
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


class Consumer:
    """Runs ``handler`` over a durable consumer until ``stop`` is set."""

    def __init__(self, js: JetStreamContext, spec: ConsumerSpec, handler: Handler) -> None:
        self.js = js
        self.spec = spec
        self.handler = handler
        self._tasks: set[asyncio.Task[None]] = set()

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.spec.durable,
            name=self.spec.durable,
            filter_subject=self.spec.filter_subject,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.spec.ack_wait_s,
            max_deliver=self.spec.max_deliver,
            max_ack_pending=self.spec.max_ack_pending,
        )

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self.js.pull_subscribe(
            self.spec.filter_subject,
            durable=self.spec.durable,
            stream=self.spec.stream,
            config=self.config(),
        )
        try:
            while not stop.is_set():
                free = self.spec.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    # wait_for guards against a fetch stuck on an orphaned pull request.
                    msgs = await asyncio.wait_for(sub.fetch(free, timeout=1.0), timeout=10)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)  # back off while NATS returns
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._handle(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.spec.ack_wait_s)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

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
