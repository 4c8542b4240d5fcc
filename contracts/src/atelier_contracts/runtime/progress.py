"""Progress ticks from running work, coalesced per step and put into the progress bucket.

A handler (or the thread it runs its encode in) calls :func:`report_progress` as often as it
likes; only the latest tick of each step is kept, and the pool's :class:`ProgressPublisher`
puts what changed at most every ``PROGRESS_EVERY_S``. Nothing here can fail the work: a put
that fails is tried again at the next flush, with the newest tick by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from atelier_contracts.envelope import encode
from atelier_contracts.progress import PROGRESS_EVERY_S, StepProgress, progress_key
from atelier_contracts.runtime.nats import progress_bucket
from atelier_contracts.work import WorkItem

log = logging.getLogger(__name__)

MESSAGE_MAX = 200


class StepTicks:
    """The latest tick of one running attempt; written from any thread, read by the publisher."""

    def __init__(self, item: WorkItem) -> None:
        self.item = item
        self._lock = threading.Lock()
        self._latest: tuple[float | None, str] | None = None
        self._changed = False

    def tick(self, fraction: float | None, message: str) -> None:
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        with self._lock:
            self._latest = (fraction, message[:MESSAGE_MAX])
            self._changed = True

    def take(self) -> tuple[float | None, str] | None:
        """The tick not yet put (None: nothing new since the last take)."""
        with self._lock:
            if not self._changed:
                return None
            self._changed = False
            return self._latest

    def unput(self) -> None:
        """The put of the last take failed: put it (or a newer one) next time."""
        with self._lock:
            self._changed = self._latest is not None


_current: ContextVar[StepTicks | None] = ContextVar("atelier_step_ticks", default=None)


def report_progress(fraction: float | None, message: str = "") -> None:
    """How far the running step has come (``fraction`` 0..1, or None when unknown) and what it
    is doing. Cheap, thread-safe (``asyncio.to_thread`` carries the step along), and a no-op
    outside a work item."""
    ticks = _current.get()
    if ticks is not None:
        ticks.tick(fraction, message)


class ProgressPublisher:
    """Puts each running step's newest tick into the progress bucket, at most every ``every_s``."""

    def __init__(self, js: JetStreamContext, every_s: float = PROGRESS_EVERY_S) -> None:
        self._js = js
        self._every_s = every_s
        self._kv: KeyValue | None = None
        self._steps: set[StepTicks] = set()

    @contextlib.contextmanager
    def following(self, item: WorkItem) -> Iterator[StepTicks]:
        """While the block runs, :func:`report_progress` in it (and in tasks and threads it
        starts) ticks ``item``'s step."""
        ticks = StepTicks(item)
        token = _current.set(ticks)
        self._steps.add(ticks)
        try:
            yield ticks
        finally:
            _current.reset(token)
            self._steps.discard(ticks)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every_s)
            if self._steps:
                await self.flush()

    async def flush(self) -> None:
        """Put every tick not yet put (one put per step that moved); one that fails is put
        again next time, and the others are still tried."""
        try:
            if self._kv is None:
                self._kv = await progress_bucket(self._js)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.debug("no progress bucket: %s", exc)
            return
        for ticks in list(self._steps):
            latest = ticks.take()
            if latest is None:
                continue
            item = ticks.item
            value = StepProgress(
                job_id=item.job_id,
                step=item.step,
                attempt=item.attempt,
                fraction=latest[0],
                message=latest[1],
                at=datetime.now(UTC),
            )
            try:
                await self._kv.put(progress_key(item.job_id, item.step), encode(value))
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                log.debug("progress not put: %s", exc)
                ticks.unput()
