"""A durable JetStream pull consumer that runs a handler per message with bounded concurrency.

Delivery is at least once: a handler must be idempotent. It returns what to do with the
message (:data:`ACK`, :class:`Retry` to redeliver later, :class:`GiveUp` for one no delivery
can mend); an exception is logged and the message redelivered with a growing delay. Deliveries
are bounded: a message still failing at its ``dead_after``-th delivery, one larger than
``max_bytes``, and one given up on go to the dead-letter stream with their error
(``runtime/deadletter.py``). Long handlers are kept alive with in-progress acks.

A consumer keeps pull requests open, so a message is handled the moment it arrives. With lower
priority bands (``lower``), it instead asks the bands in order for what they hold now whenever it
has room, and is woken by a *doorbell*: a core subscription to the bands' subjects, which sees
every message published to them. A batch handler gets every message that has arrived while the
previous batch ran (one transaction for many, in the projector).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import Counter as CounterChild
from prometheus_client.metrics import Histogram as HistogramChild

from atelier_contracts.runtime.deadletter import bury
from atelier_contracts.runtime.pull import PullRequests, deliveries
from atelier_contracts.runtime.telemetry import consuming, consuming_batch, failed

log = logging.getLogger(__name__)

DEAD_LETTERS = Counter(
    "atelier_dead_letters_total", "Messages given up on, to the dead-letter stream", ["consumer"]
)


@dataclass(frozen=True)
class Retry:
    """Redeliver the message after ``delay`` seconds (``reason``: why, for the dead letter)."""

    delay: float = 0.5
    reason: str = ""


@dataclass(frozen=True)
class GiveUp:
    """No delivery can mend this message (it cannot be decoded, ...): a dead letter at once."""

    reason: str


ACK = None
Outcome = Retry | GiveUp | None

HANDLED = Counter("atelier_handled", "Messages handled, by consumer and outcome", ["consumer", "outcome"])
HANDLE_SECONDS = Histogram(
    "atelier_handle_seconds",
    "Time a consumer's handler took over a message (or a batch)",
    ["consumer"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0),
)


BACKLOG = Gauge(
    "atelier_consumer_backlog", "Messages stored but not yet delivered, per consumer", ["consumer"]
)
UNACKED = Gauge(
    "atelier_consumer_unacked", "Messages delivered and not yet acked, per consumer", ["consumer"]
)
OLDEST_AGE = Gauge(
    "atelier_consumer_oldest_seconds", "Age of the oldest message a consumer has not acked", ["consumer"]
)
BACKLOG_EVERY_S = 10.0


async def observe_backlog(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Set a consumer's backlog gauges from the server's view of it (a consumer info and, when
    something waits, one read of the oldest message it has not acked)."""
    info = await js.consumer_info(spec.stream, spec.durable)
    waiting = info.num_pending or 0
    unacked = info.num_ack_pending or 0
    BACKLOG.labels(spec.durable).set(waiting)
    UNACKED.labels(spec.durable).set(unacked)
    age = 0.0
    if waiting or unacked:
        floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
        with contextlib.suppress(nats.js.errors.NotFoundError):
            oldest = await js.get_msg(spec.stream, seq=floor + 1, next=True, subject=spec.filter_subject)
            if oldest.time is not None:
                age = max((datetime.now(UTC) - oldest.time).total_seconds(), 0.0)
    OLDEST_AGE.labels(spec.durable).set(age)


@functools.cache
def _handled(consumer: str, outcome: str) -> CounterChild:  # a label lookup costs more than the count
    return HANDLED.labels(consumer, outcome)


@functools.cache
def _handle_seconds(consumer: str) -> HistogramChild:
    return HANDLE_SECONDS.labels(consumer)


def _outcome_name(outcome: Outcome) -> str:
    return "acked" if outcome is None else "retried" if isinstance(outcome, Retry) else "dead"


Handler = Callable[[Msg], Awaitable[Outcome]]
BatchHandler = Callable[[list[Msg]], Awaitable[list[Outcome]]]

LINGER_S = 10.0
"""How long an open pull request waits on the server for messages before it is renewed."""
TICK_S = 0.5
"""Banded consumers look again this often without a doorbell (delayed redeliveries ring none)."""
RUNG_WAIT_S = 0.2
"""How long a band whose bell rang is waited on when it looked empty (the store lags the bell)."""


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subject: str
    ack_wait_s: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 1000
    concurrency: int = 8
    """Messages handled at once; with a batch handler, the most messages in one batch."""
    dead_after: int | None = 10
    """The delivery at which a message that still fails becomes a dead letter (None: never; the
    server's ``max_deliver`` then bounds it, as for work items)..."""
    dead_after_s: float = 600.0
    """...once it has also been stored this long: an outage of a few minutes (a leader election,
    a restarting dependency) buries nothing."""
    max_bytes: int | None = None
    """A larger message is a dead letter without being handled."""
    start_at: datetime | None = None
    """Made for the first time, start at the first message stored at or after this time (a
    follower of what happened since), not at the stream's start."""
    gather_s: float = 0.0
    """With a batch handler: how long a batch waits, from its first message, for more to come
    (a quarter of ``concurrency`` come, it starts at once)."""


def redelivery_delay(num_delivered: int) -> float:
    return float(min(0.2 * 2 ** max(num_delivered - 1, 0), 10.0))


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=spec.durable,
        name=spec.durable,
        filter_subject=spec.filter_subject,
        deliver_policy=DeliverPolicy.ALL if spec.start_at is None else DeliverPolicy.BY_START_TIME,
        opt_start_time=spec.start_at,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_s,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
    )


class Consumer:
    """Runs ``handler`` (or ``batch_handler``) over a durable consumer until ``stop`` is set.

    With ``lower`` consumers (lower priority bands of the same work), a free slot is filled from
    the highest band that has messages; the concurrency of ``spec`` bounds them all together, and
    ``doorbell`` is the subject (with wildcards) that every band's messages are published on.
    """

    def __init__(
        self,
        nc: Client,
        spec: ConsumerSpec,
        handler: Handler | None = None,
        *,
        lower: Sequence[ConsumerSpec] = (),
        doorbell: str | None = None,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        if lower and doorbell is None:
            raise ValueError("banded consumers need a doorbell subject")
        self.nc = nc
        self.js = nc.jetstream()
        self.spec = spec
        self.specs = (spec, *lower)
        self.handler = handler
        self.batch_handler = batch_handler
        self.doorbell = doorbell
        self._ready: list[Msg] = []
        self._ready_since = 0.0  # loop time: when the oldest message in ``_ready`` came
        self._gather_until: float | None = None  # the gathering's end a wake is set for
        self._running: dict[int, tuple[Msg, float]] = {}  # by id(): a Msg is not hashable
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # Banded: the bands that may hold messages we have not asked for, and their bells.
        self._maybe = self._all_bands()
        self._rings: dict[str, int] = {}
        self._answered: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        for s in self.specs:
            await self._ensure(s)
        pulls = [PullRequests(self.nc, s.stream, s.durable, self._arrived) for s in self.specs]
        for p in pulls:
            await p.start()
        bell = await self.nc.subscribe(self.doorbell, cb=self._ring) if self.doorbell else None
        beats = asyncio.create_task(self._beat(stop))
        gauges = asyncio.create_task(self._watch_backlog(stop))
        stopping = asyncio.create_task(self._wake_on(stop))
        reconnects = self.nc.stats["reconnects"]
        loop = asyncio.get_running_loop()
        looked = loop.time()
        try:
            while not stop.is_set():
                self._wake.clear()
                if self.nc.stats["reconnects"] != reconnects:
                    reconnects = self.nc.stats["reconnects"]
                    for p in pulls:
                        p.forget()  # the server dropped our open requests with the old connection
                    self._maybe = self._all_bands()
                self._start_ready()
                try:
                    if self.nc.is_connected:
                        await self._ask(pulls)
                except (nats.errors.Error, nats.js.errors.Error) as exc:
                    log.warning(
                        "pull request failed, backing off: %s", exc, extra={"durable": self.spec.durable}
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):
                        await self._wake.wait()
                if loop.time() - looked >= TICK_S:
                    # Every band again each tick, busy or not: delayed redeliveries ring no bell.
                    self._maybe = self._all_bands()
                    looked = loop.time()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.spec.ack_wait_s)
            for msg in self._ready:  # arrived, never started: back to the stream at once
                with contextlib.suppress(Exception):
                    await msg.nak()
            self._ready = []
        finally:
            stopping.cancel()
            beats.cancel()
            gauges.cancel()
            for p in pulls:
                with contextlib.suppress(Exception):
                    await p.stop()
            if bell is not None:
                with contextlib.suppress(Exception):
                    await bell.unsubscribe()

    def _all_bands(self) -> set[str]:
        return {s.filter_subject for s in self.specs}

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _ensure(self, spec: ConsumerSpec) -> None:
        """Create the durable consumer if it does not exist (an existing one is left as it is)."""
        try:
            await self.js.consumer_info(spec.stream, spec.durable)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # another replica created it
                await self.js.add_consumer(spec.stream, consumer_config(spec))

    def _free(self, pulls: list[PullRequests]) -> int:
        return self.spec.concurrency - len(self._running) - len(self._ready) - sum(p.owed for p in pulls)

    async def _ask(self, pulls: list[PullRequests]) -> None:
        free = self._free(pulls)
        if free <= 0:
            return
        if len(pulls) == 1:
            # One band: keep a lingering request open for the room there is; under load, ask once
            # a quarter of the room is free rather than for every slot that frees.
            if pulls[0].owed == 0 and (free >= max(1, self.spec.concurrency // 4) or not self._running):
                await pulls[0].request(free, LINGER_S)
            return
        # Several bands: ask, highest first, only the bands that may hold something (their bell
        # rang, a pull filled up, or a quiet tick passed), for what they hold now.
        for p, spec in zip(pulls, self.specs, strict=True):
            band = spec.filter_subject
            if free <= 0:
                return
            if band not in self._maybe or p.owed:
                continue
            rings = self._rings.get(band, 0)
            rung = rings > self._answered.get(band, 0)
            done = await p.request(free, None)
            got = 0  # no answer in time: counted as owed until the request's lifetime ends
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    got = await done
            self._answered[band] = rings
            free -= got
            if got == 0 and rung:
                # The bell can ring before the stream has stored the message: wait for it, and
                # look at the band again once that request is over.
                await p.request(1, RUNG_WAIT_S)
                free -= 1
            elif free > 0 and self._rings.get(band, 0) == rings:
                self._maybe.discard(band)  # it had less than we asked for, and no bell rang since

    async def _ring(self, msg: Msg) -> None:
        for spec in self.specs:
            if _matches(spec.filter_subject, msg.subject):
                self._rings[spec.filter_subject] = self._rings.get(spec.filter_subject, 0) + 1
                self._maybe.add(spec.filter_subject)
        if len(self._running) + len(self._ready) < self.spec.concurrency:
            self._wake.set()

    def _arrived(self, msg: Msg) -> None:
        if not self._ready:
            self._ready_since = asyncio.get_running_loop().time()
        self._ready.append(msg)
        self._wake.set()

    def _start_ready(self) -> None:
        if not self._ready:
            return
        if self.batch_handler is not None:
            if self._running:
                return  # one batch at a time: the next takes everything that came meanwhile
            if self.spec.gather_s > 0 and len(self._ready) < max(1, self.spec.concurrency // 4):
                # A batch costs its transaction whatever it holds: give others a moment to come.
                loop = asyncio.get_running_loop()
                until = self._ready_since + self.spec.gather_s
                if loop.time() < until:
                    if self._gather_until != until:
                        self._gather_until = until
                        loop.call_at(until, self._wake.set)
                    return
            batch, self._ready = self._ready, []
            self._spawn(self._handle_batch(batch), batch)
            return
        batch, self._ready = self._ready, []
        for msg in batch:
            self._spawn(self._handle(msg), [msg])

    def _spawn(self, work: Awaitable[None], msgs: list[Msg]) -> None:
        now = asyncio.get_running_loop().time()
        for msg in msgs:
            self._running[id(msg)] = (msg, now)

        async def run() -> None:
            try:
                await work
            finally:
                for msg in msgs:
                    self._running.pop(id(msg), None)
                self._wake.set()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_backlog(self, stop: asyncio.Event) -> None:
        """The backlog gauges of each band, every ``BACKLOG_EVERY_S`` (scrapes read the last)."""
        while not stop.is_set():
            for spec in self.specs:
                # NATS away: the gauges keep their last values until it is back
                with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
                    await observe_backlog(self.js, spec)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BACKLOG_EVERY_S)

    async def _beat(self, stop: asyncio.Event) -> None:
        """In-progress acks for messages held longer than a third of ``ack_wait``."""
        every = max(self.spec.ack_wait_s / 3, 0.5)
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            await asyncio.sleep(every)
            due = loop.time() - every
            waiting = [msg for msg, started in self._running.values() if started <= due]
            for msg in waiting + self._ready:  # those that wait for a batch to end too
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _handle(self, msg: Msg) -> None:
        assert self.handler is not None
        outcome: Outcome = self._too_large(msg)
        if outcome is None:
            with consuming(msg, self.spec.durable) as span:
                t0 = time.perf_counter()
                try:
                    outcome = await self.handler(msg)
                except Exception as exc:
                    delay = redelivery_delay(deliveries(msg))
                    log.exception(
                        "handler failed; redelivering",
                        extra={"subject": msg.subject, "durable": self.spec.durable, "delay_s": delay},
                    )
                    outcome = Retry(delay, f"{type(exc).__name__}: {exc}")
                    failed(span, outcome.reason)
                _handled(self.spec.durable, _outcome_name(outcome)).inc()
                _handle_seconds(self.spec.durable).observe(time.perf_counter() - t0)
        await self._settle(msg, outcome)

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        assert self.batch_handler is not None
        large = {id(m): o for m in msgs if (o := self._too_large(m)) is not None}
        fit = [m for m in msgs if id(m) not in large]
        outcomes: list[Outcome] = []
        if fit:
            with consuming_batch(fit, self.spec.durable) as span:
                t0 = time.perf_counter()
                try:
                    outcomes = await self.batch_handler(fit)
                except Exception as exc:
                    delay = redelivery_delay(min(deliveries(m) for m in fit))
                    log.exception(
                        "batch handler failed; redelivering",
                        extra={"durable": self.spec.durable, "messages": len(fit), "delay_s": delay},
                    )
                    outcomes = [Retry(delay, f"{type(exc).__name__}: {exc}")] * len(fit)
                    failed(span, f"{type(exc).__name__}: {exc}")
                for outcome in outcomes:
                    _handled(self.spec.durable, _outcome_name(outcome)).inc()
                _handle_seconds(self.spec.durable).observe(time.perf_counter() - t0)
        for msg, outcome in [
            *zip(fit, outcomes, strict=True),
            *((m, large[id(m)]) for m in msgs if id(m) in large),
        ]:
            await self._settle(msg, outcome)

    def _too_large(self, msg: Msg) -> GiveUp | None:
        limit = self.spec.max_bytes
        if limit is not None and len(msg.data) > limit:
            return GiveUp(f"too large: {len(msg.data)} bytes, more than the {limit} this consumer takes")
        return None

    async def _settle(self, msg: Msg, outcome: Outcome) -> None:
        if isinstance(outcome, Retry) and self.spec.dead_after is not None:
            delivered, stored_at = deliveries(msg), msg.metadata.timestamp
            age = (datetime.now(UTC) - stored_at).total_seconds() if stored_at else 0.0
            if delivered >= self.spec.dead_after and age >= self.spec.dead_after_s:
                why = outcome.reason or "asked to be redelivered"
                outcome = GiveUp(f"still failing after {delivered} deliveries: {why}")
        if isinstance(outcome, GiveUp):
            try:
                await bury(self.nc, self.spec.durable, msg, outcome.reason, deliveries(msg))
            except Exception:
                log.exception(
                    "could not store a dead letter; redelivering", extra={"durable": self.spec.durable}
                )
                outcome = Retry(redelivery_delay(deliveries(msg)))
            else:
                DEAD_LETTERS.labels(self.spec.durable).inc()
                log.error(
                    "gave up on a message: %s",
                    outcome.reason,
                    extra={"subject": msg.subject, "durable": self.spec.durable},
                )
                outcome = ACK
        with contextlib.suppress(Exception):
            if outcome is None:
                await msg.ack()
            else:
                await msg.nak(delay=outcome.delay)


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)
