"""The job log live, for the streams of one gateway process: one feed per followed job (and one
for all jobs), however many clients follow it.

A feed learns that its subject moved from a core subscription to it (JetStream stores the
commit and the server also delivers it to plain subscribers), then reads every commit after the
last one it read with a batched direct get, which gives each its sequence. Reading by sequence
is what makes a feed lose nothing and deliver nothing twice: a missed notice (a reconnect, a
nats-server restart) only delays commits until the next notice or the poll every ``poll_s``.
Progress ticks are heard the same way, on the progress bucket's subjects, and passed on as they
come (they are not positions in the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Gauge

from atelier_contracts.envelope import commit_decoder
from atelier_contracts.events import Commit
from atelier_contracts.progress import (
    PROGRESS_BUCKET,
    StepProgress,
    progress_decoder,
    progress_subject,
)
from atelier_contracts.runtime.directget import DirectGetError, last_of_each, pages_after, read_after
from atelier_contracts.subjects import JOBS_STREAM, job_subject
from atelier_gateway.adapters.natsio import reachable
from atelier_gateway.app.live import Arrival, Follower

log = logging.getLogger(__name__)

ALL_JOBS = "atelier.job.*"
PROGRESS_STREAM = f"KV_{PROGRESS_BUCKET}"
PAGE = 500

FEEDS_OPEN = Gauge("atelier_stream_feeds", "Logs this gateway follows live (a job's, or all jobs')")
FOLLOWERS = Gauge("atelier_stream_followers", "Streams open on this gateway (SSE and WebSocket)")


@dataclass(eq=False)
class _Feed:
    subject: str
    progress: str | None
    """The progress subjects heard (None: a list of jobs shows no ticks)."""
    last_seq: int = 0
    followers: set[Follower] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    subs: list[Subscription] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class NatsLogFeeds:
    """Live commits and progress ticks of the job log (``app.ports.LogFeeds``)."""

    def __init__(self, nc: Client, *, poll_s: float = 5.0, queue_max: int = 10_000) -> None:
        self.nc = nc
        self.poll_s = poll_s
        self.queue_max = queue_max
        self._feeds: dict[str, _Feed] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    # -- the log as it is ------------------------------------------------------------------
    async def history(self, job_id: str | None, after: int) -> AsyncIterator[list[tuple[int, Commit]]]:
        """A job's commits (None: all jobs') after stream sequence ``after``, a page at a time."""
        subject = ALL_JOBS if job_id is None else job_subject(job_id)
        pages = pages_after(self.nc, JOBS_STREAM, subject, after, PAGE)
        while True:
            async with reachable(self.nc, "the job log"):
                stored = await anext(pages, None)
            if stored is None:
                return
            yield [(m.seq, commit_decoder.decode(m.data)) for m in stored]

    async def progress_now(self, job_id: str) -> list[StepProgress]:
        """The latest tick of each of the job's steps that reported one."""
        async with reachable(self.nc, "the progress bucket"):
            try:
                stored = await last_of_each(self.nc, PROGRESS_STREAM, progress_subject(job_id))
            except DirectGetError:  # no worker has made the bucket yet: no progress either
                return []
        return [progress_decoder.decode(m.data) for m in stored if m.data]

    # -- the log as it grows ---------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def follow(self, job_id: str | None) -> AsyncIterator[Follower]:
        """Arrivals on a job's log (None: every job's) from now on, until the block ends.

        Registered before the caller reads the history, so nothing falls between the two: the
        caller drops what it already had by sequence."""
        key = job_id or "*"
        follower = Follower(asyncio.Queue(self.queue_max))
        feed = await self._feed(key, job_id)
        feed.followers.add(follower)
        FOLLOWERS.inc()
        try:
            yield follower
        finally:
            FOLLOWERS.dec()
            feed.followers.discard(follower)
            if not feed.followers and self._feeds.get(key) is feed:
                await self._close(key, feed)

    async def close(self) -> None:
        for key, feed in list(self._feeds.items()):
            for follower in feed.followers:
                follower.end("closing")
            await self._close(key, feed)

    async def _feed(self, key: str, job_id: str | None) -> _Feed:
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            feed = self._feeds.get(key)
            if feed is not None:
                return feed
            feed = _Feed(
                subject=ALL_JOBS if job_id is None else job_subject(job_id),
                progress=None if job_id is None else progress_subject(job_id),
            )
            try:
                async with reachable(self.nc, "the job log"):
                    feed.subs.append(await self.nc.subscribe(feed.subject, cb=self._rang(feed)))
                    if feed.progress is not None:
                        feed.subs.append(await self.nc.subscribe(feed.progress, cb=self._ticked(feed)))
                    # Subscribed first: a commit after this read rings the feed.
                    feed.last_seq = await self._end_of(feed.subject)
            except BaseException:
                await _unsubscribe(feed)
                raise
            feed.task = asyncio.create_task(self._run(feed), name=f"feed-{key}")
            feed.task.add_done_callback(functools.partial(self._died, key, feed))
            self._feeds[key] = feed
            FEEDS_OPEN.inc()
            return feed

    async def _close(self, key: str, feed: _Feed) -> None:
        if self._feeds.pop(key, None) is None:
            return
        FEEDS_OPEN.dec()
        self._opening.pop(key, None)
        if feed.task is not None:
            feed.task.cancel()
            await asyncio.gather(feed.task, return_exceptions=True)
        await _unsubscribe(feed)

    def _died(self, key: str, feed: _Feed, _task: asyncio.Task[None]) -> None:
        """A feed's task ended by itself (a bug): its followers end (their clients resume with a
        new feed) rather than wait for ever on a dead one."""
        if feed.task is None or feed.task.cancelled() or self._feeds.get(key) is not feed:
            return
        log.error("feed %s stopped", feed.subject, exc_info=feed.task.exception())
        for follower in list(feed.followers):
            follower.end("feed stopped")
        self._feeds.pop(key, None)
        FEEDS_OPEN.dec()
        asyncio.get_running_loop().create_task(_unsubscribe(feed))

    async def _end_of(self, subject: str) -> int:
        """The sequence the feed starts after: the last commit on ``subject`` now."""
        if subject == ALL_JOBS:
            info = await self.nc.jetstream().stream_info(JOBS_STREAM)
            return info.state.last_seq
        try:
            msg = await self.nc.jetstream().get_last_msg(JOBS_STREAM, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return 0
        return msg.seq or 0

    async def _run(self, feed: _Feed) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.wake.wait(), self.poll_s)
            feed.wake.clear()
            try:
                stored = await read_after(self.nc, JOBS_STREAM, feed.subject, feed.last_seq)
            except (nats.errors.Error, TimeoutError, DirectGetError) as exc:
                log.debug("feed %s could not read: %s", feed.subject, exc)
                continue  # NATS is away: the next notice or poll reads from the same place
            for msg in stored:
                feed.last_seq = msg.seq
                try:
                    commit = commit_decoder.decode(msg.data)
                except msgspec.DecodeError:  # a newer writer's event this gateway cannot read
                    log.warning("skipped a commit this gateway cannot decode", extra={"seq": msg.seq})
                    continue
                for follower in list(feed.followers):
                    follower.put(Arrival(seq=msg.seq, commit=commit))

    @staticmethod
    def _rang(feed: _Feed) -> Callable[[Msg], Awaitable[None]]:
        async def on_commit(_msg: Msg) -> None:  # what it holds is read back with its sequence
            feed.wake.set()

        return on_commit

    @staticmethod
    def _ticked(feed: _Feed) -> Callable[[Msg], Awaitable[None]]:
        async def on_tick(msg: Msg) -> None:
            if not msg.data:  # a delete or purge marker
                return
            try:
                tick = progress_decoder.decode(msg.data)
            except msgspec.DecodeError:
                return
            for follower in list(feed.followers):
                follower.put(Arrival(progress=tick))

        return on_tick


async def _unsubscribe(feed: _Feed) -> None:
    for sub in feed.subs:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    feed.subs.clear()
