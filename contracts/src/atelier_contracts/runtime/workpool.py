"""The worker side of a work item: decode it, run the capability, report, then ack.

The report is published before the work item is acked, so a crash in between redelivers the
item and the worker reports again; the orchestrator ignores a report for an attempt it already
recorded. Reports carry the message ids ``<work_id>.started.<delivery>`` and ``<work_id>.finished``, so
JetStream also drops a quick duplicate. Work that finishes within ``QUICK_S`` sends no start
report: its result says when it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter, Histogram

from atelier_contracts.blobstore import BlobStoreUnavailable
from atelier_contracts.common import Artifact, BudgetAlert, ProviderAttempt, Usage
from atelier_contracts.envelope import Envelope, encode, work_item_decoder
from atelier_contracts.progress import PROGRESS_EVERY_S
from atelier_contracts.runtime.consumer import ACK, Consumer, ConsumerSpec, Outcome, Retry
from atelier_contracts.runtime.nats import cancelled_jobs
from atelier_contracts.runtime.progress import ProgressPublisher
from atelier_contracts.runtime.publish import publish
from atelier_contracts.runtime.pull import deliveries
from atelier_contracts.subjects import (
    PRIORITY_BANDS,
    WORK_STREAM,
    cancel_subject,
    pool_filter,
    report_subject,
)
from atelier_contracts.work import WorkFailed, WorkItem, WorkReport, WorkStarted, WorkSucceeded

log = logging.getLogger(__name__)

WORK_SECONDS = Histogram("atelier_work_seconds", "Time to run one work item", ["capability", "outcome"])
QUICK_S = 0.05
"""Work done within this long reports no start of its own: its result is the only report."""
WORK_TOTAL = Counter("atelier_work_total", "Work items finished", ["capability", "outcome"])


class WorkError(Exception):
    """A failure a worker understands: a stable code and whether a retry may help."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        attempts: list[ProviderAttempt] | None = None,
        retry_after_s: float | None = None,
        alerts: list[BudgetAlert] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.attempts = attempts or []
        self.retry_after_s = retry_after_s
        self.alerts = alerts or []


@dataclass(frozen=True)
class WorkResult:
    outputs: list[Artifact]
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    attempts: list[ProviderAttempt] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    alerts: list[BudgetAlert] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    """A small structured result (``WorkSucceeded.data``): what a planning step planned from."""


WorkHandler = Callable[[WorkItem], Coroutine[Any, Any, WorkResult]]


class WorkPool:
    """Serves the capabilities of one pool (``ai``, ``media``, ``export``) from the work stream."""

    def __init__(
        self,
        nc: Client,
        pool: str,
        handlers: dict[str, WorkHandler],
        *,
        concurrency: int = 4,
        ack_wait_s: float = 30.0,
        max_deliver: int = 5,
        progress_every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.pool = pool
        self.handlers = handlers
        self.worker_name = f"{pool}@{socket.gethostname()}:{os.getpid()}"
        specs = [
            ConsumerSpec(
                stream=WORK_STREAM,
                durable=f"workers-{pool}-{band}",
                filter_subject=pool_filter(pool, band),
                ack_wait_s=ack_wait_s,
                max_deliver=max_deliver,
                concurrency=concurrency,
            )
            for band in PRIORITY_BANDS
        ]
        self.consumer = Consumer(nc, specs[0], self.handle, lower=specs[1:], doorbell=pool_filter(pool))
        self._running: dict[str, dict[asyncio.Task[WorkResult], WorkItem]] = {}
        self._cancelled: CancelledJobs | None = None
        self.progress = ProgressPublisher(self.js, progress_every_s)

    async def run(self, stop: asyncio.Event) -> None:
        self._cancelled = CancelledJobs(await cancelled_jobs(self.js), self.nc)
        with contextlib.suppress(NotFoundError):  # the single-band consumer of earlier versions
            await self.js.delete_consumer(WORK_STREAM, f"workers-{self.pool}")
        sub = await self.nc.subscribe(cancel_subject("*"), cb=self._on_cancel)
        await self._cancelled.start()
        ticks = asyncio.create_task(self.progress.run(stop), name=f"progress-{self.pool}")
        try:
            await self.consumer.run(stop)
        finally:
            await sub.unsubscribe()
            await self._cancelled.stop()
            ticks.cancel()
            await asyncio.gather(ticks, return_exceptions=True)

    async def _on_cancel(self, msg: Msg) -> None:
        """``seq:N``: the job was cancelled by commit N; anything else: one work id to abandon."""
        job_id = msg.subject.rsplit(".", 1)[-1]
        payload = msg.data.decode()
        if payload.startswith("seq:"):
            seq = _cancel_seq(msg.data[4:])
            if self._cancelled is not None:
                self._cancelled.note(job_id, seq)
            for task, item in list(self._running.get(job_id, {}).items()):
                if item.dispatch_seq < seq:
                    task.cancel()
            return
        for task in list(self._running.get(job_id, {})):
            if task.get_name() == payload:
                task.cancel()

    async def _is_cancelled(self, item: WorkItem) -> bool:
        """Was the job cancelled by a commit after the one that dispatched this item?"""
        assert self._cancelled is not None
        return await self._cancelled.seq(item.job_id) > item.dispatch_seq

    async def handle(self, msg: Msg) -> Outcome:
        envelope = work_item_decoder.decode(msg.data)
        item = envelope.body
        started = datetime.now(UTC)
        if item.not_before is not None and item.not_before > started:
            return Retry((item.not_before - started).total_seconds())  # a scheduled retry: hold it
        if await self._is_cancelled(item):
            log.info("skipped work of a cancelled job", extra={"job_id": item.job_id, "step": item.step})
            return ACK
        t0 = time.perf_counter()
        delivery = deliveries(msg)
        report: WorkReport
        try:
            handler = self.handlers.get(item.capability)
            if handler is None:
                raise WorkError("worker_error", f"no handler for {item.capability}", retryable=False)
            run = asyncio.ensure_future(self._run_cancellable(item, handler))
            try:
                await self._started_unless_quick(envelope, item, started, delivery, run)
                result = await run
            except asyncio.CancelledError:
                run.cancel()  # this worker is stopping: the work stops with it
                raise
            report = WorkSucceeded(
                work_id=item.work_id,
                job_id=item.job_id,
                step=item.step,
                attempt=item.attempt,
                outputs=result.outputs,
                provider=result.provider,
                model=result.model,
                usage=result.usage,
                started_at=started,
                finished_at=datetime.now(UTC),
                attempts=result.attempts,
                fallbacks=result.fallbacks,
                alerts=result.alerts,
                data=result.data,
            )
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # this worker is shutting down: let the item be redelivered
            log.info("abandoned cancelled work", extra={"job_id": item.job_id, "work_id": item.work_id})
            return ACK
        except WorkError as exc:
            report = failed_report(item, started, exc.code, exc.message, exc.retryable)
            report = msgspec.structs.replace(
                report, attempts=exc.attempts, retry_after_s=exc.retry_after_s, alerts=exc.alerts
            )
        except BlobStoreUnavailable as exc:  # a storage outage: the step waits, it is not at fault
            log.warning("blob store unavailable", extra={"job_id": item.job_id, "step": item.step})
            report = failed_report(item, started, "storage_unavailable", str(exc), True)
        except Exception as exc:  # an unexpected bug is reported as a retryable step failure
            log.exception("work handler crashed", extra={"job_id": item.job_id, "step": item.step})
            report = failed_report(item, started, "worker_error", f"{type(exc).__name__}: {exc}", True)
        outcome = "succeeded" if isinstance(report, WorkSucceeded) else "failed"
        WORK_SECONDS.labels(item.capability, outcome).observe(time.perf_counter() - t0)
        WORK_TOTAL.labels(item.capability, outcome).inc()
        await publish_report(self.js, envelope, report, msg_id=f"{item.work_id}.finished")
        log.info(
            "work %s",
            outcome,
            extra={
                "job_id": item.job_id,
                "step": item.step,
                "attempt": item.attempt,
                "capability": item.capability,
                "model": getattr(report, "model", ""),
                "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
            },
        )
        return ACK

    async def _started_unless_quick(
        self,
        envelope: Envelope[WorkItem],
        item: WorkItem,
        started: datetime,
        delivery: int,
        run: asyncio.Future[WorkResult],
    ) -> None:
        """Report the start of work that is still running after ``QUICK_S`` (or is a redelivery).

        Most steps of a fan-out finish in milliseconds; their start would be a commit of its own
        that no one sees. The result carries ``started_at`` either way.
        """
        if delivery == 1:
            await asyncio.wait({run}, timeout=QUICK_S)
            if run.done():
                return
        try:
            await self._report_started(envelope, item, started, delivery)
        except Exception:  # the result still reports the attempt; the work goes on
            log.warning("could not report a start", exc_info=True, extra={"work_id": item.work_id})

    async def _report_started(
        self, envelope: Envelope[WorkItem], item: WorkItem, started: datetime, delivery: int
    ) -> None:
        await publish_report(
            self.js,
            envelope,
            WorkStarted(
                work_id=item.work_id,
                job_id=item.job_id,
                step=item.step,
                attempt=item.attempt,
                started_at=started,
                worker=self.worker_name,
                delivery=delivery,
            ),
            msg_id=f"{item.work_id}.started.{delivery}",
        )

    async def _run_cancellable(self, item: WorkItem, handler: WorkHandler) -> WorkResult:
        """Run the handler as its own task, so a cancellation of the job can stop just this work;
        its ``report_progress`` calls tick this step."""
        with self.progress.following(item):
            task = asyncio.create_task(handler(item), name=item.work_id)
            running = self._running.setdefault(item.job_id, {})
            running[task] = item
            if self._cancelled is not None and self._cancelled.known(item.job_id) > item.dispatch_seq:
                task.cancel()  # the cancel came between the check and now: it found no task
            try:
                return await task
            finally:
                running.pop(task, None)
                if not running:
                    self._running.pop(item.job_id, None)


def _cancel_seq(value: bytes) -> int:
    """The cancelling commit's sequence an entry carries; one that cannot be read cancels all."""
    try:
        return int(value or b"0")
    except ValueError:
        return sys.maxsize


class CancelledJobs:
    """Which jobs were cancelled, and by which commit: the KV bucket's entries, mirrored here.

    Every work item is checked before it runs; a ``get`` from the bucket was a JetStream API
    round trip per item (the router's and nats-server's CPU for nothing, nearly always). The
    mirror follows the bucket with a watch (its current entries, then every change) and takes
    the cancel broadcasts as they come. Until the watch has caught up, a check asks the bucket as
    before; so it does after a reconnect (broadcasts sent meanwhile were lost, and the watch
    notices a gap only seconds later) or if the watch ended, while a new watch catches up. A
    check that misses a cancel by a moment costs only work whose report the orchestrator ignores
    (the job has ended); the broadcast stops it if it is still running. Entries expire from the
    bucket, not from the watch: past ``limit`` the oldest here are forgotten, and a queued item
    of a job that old runs in vain.
    """

    RESTART_EVERY_S = 1.0
    """At most one new watch a second, while the last one could not be started."""

    def __init__(self, kv: KeyValue, nc: Client | None = None, limit: int = 100_000) -> None:
        self.kv = kv
        self.nc = nc
        self.limit = limit
        self._seqs: dict[str, int] = {}
        self._ready = False
        self._watcher: KeyValue.KeyWatcher | None = None
        self._follower: asyncio.Task[None] | None = None
        self._reconnects = 0
        self._restart: asyncio.Task[None] | None = None
        self._tried = 0.0

    async def start(self) -> None:
        self._reconnects = self.nc.stats["reconnects"] if self.nc is not None else 0
        self._tried = asyncio.get_running_loop().time()
        self._watcher = await self.kv.watchall()
        self._follower = asyncio.create_task(self._follow(self._watcher), name="cancelled-jobs")

    async def stop(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
            await asyncio.gather(self._restart, return_exceptions=True)
        await self._end_watch()

    async def _end_watch(self) -> None:
        self._ready = False
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        self._watcher = self._follower = None

    async def _rewatch(self) -> None:
        await self._end_watch()
        try:
            await self.start()
        except Exception:
            log.warning("could not watch the cancelled jobs again; checks ask the bucket", exc_info=True)

    def _check_watch(self) -> None:
        """After a reconnect, or once the watch has ended: not ready until a new one catches up."""
        connected = self.nc is None or self.nc.is_connected
        reconnected = self.nc is not None and self.nc.stats["reconnects"] != self._reconnects
        ended = self._follower is None or self._follower.done()
        if not (reconnected or ended) or not connected:
            return  # disconnected: the mirror is the best there is until the connection is back
        self._ready = False
        now = asyncio.get_running_loop().time()
        if (self._restart is None or self._restart.done()) and now - self._tried >= (
            0 if reconnected else self.RESTART_EVERY_S
        ):
            self._tried = now
            self._restart = asyncio.create_task(self._rewatch(), name="cancelled-jobs-rewatch")

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None:  # what the bucket held is here: the mirror answers from now on
                    self._ready = True
                elif entry.operation is None:
                    self.note(entry.key, _cancel_seq(entry.value or b""))
                else:  # deleted or purged
                    self._seqs.pop(entry.key, None)
        except Exception:
            log.warning("the cancelled jobs' watch ended; checks ask the bucket", exc_info=True)
        finally:
            self._ready = False

    def note(self, job_id: str, seq: int) -> None:
        if seq > self._seqs.get(job_id, 0):
            self._seqs.pop(job_id, None)
            self._seqs[job_id] = seq
            if len(self._seqs) > self.limit:
                del self._seqs[next(iter(self._seqs))]

    def known(self, job_id: str) -> int:
        """The cancelling commit's sequence as the mirror knows it (0: not cancelled)."""
        return self._seqs.get(job_id, 0)

    async def seq(self, job_id: str) -> int:
        """The commit that cancelled ``job_id`` (0: none)."""
        self._check_watch()
        if self._ready:
            return self.known(job_id)
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return self.known(job_id)
        return max(_cancel_seq(entry.value or b""), self.known(job_id))


def failed_report(item: WorkItem, started: datetime, code: str, message: str, retryable: bool) -> WorkFailed:
    """A failed attempt of ``item``, as its worker (or the lost-work handler) reports it."""
    return WorkFailed(
        work_id=item.work_id,
        job_id=item.job_id,
        step=item.step,
        attempt=item.attempt,
        code=code,
        message=message,
        retryable=retryable,
        started_at=started,
        finished_at=datetime.now(UTC),
    )


async def publish_report(
    js: JetStreamContext, cause: Envelope[WorkItem], report: WorkReport, *, msg_id: str
) -> None:
    """Publish a report of the work ``cause`` to the reports stream (``msg_id`` de-duplicates it)."""
    envelope = Envelope[WorkReport](
        msg_id=msg_id,
        job_id=cause.job_id,
        tenant=cause.tenant,
        correlation_id=cause.correlation_id,
        causation_id=cause.msg_id,
        sent_at=datetime.now(UTC),
        body=report,
    )
    await publish(js, report_subject(cause.job_id), encode(envelope), msg_id=msg_id, wait_s=10)
