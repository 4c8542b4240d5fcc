"""The port the live streams need: the job log as it is, and as it grows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from atelier_contracts.events import Commit
from atelier_contracts.progress import StepProgress


@dataclass(frozen=True, slots=True)
class Arrival:
    """A commit as it was appended (with its stream sequence), or a progress tick."""

    seq: int = 0
    commit: Commit | None = None
    progress: StepProgress | None = None


class Follower:
    """One stream's arrivals, in order. A follower too far behind (its queue full) is ended rather
    than allowed to hold memory without bound: its client resumes from the last id it got."""

    def __init__(self, queue: asyncio.Queue[Arrival | None]) -> None:
        self.queue = queue
        self.ended: str | None = None

    def put(self, arrival: Arrival) -> None:
        if self.ended is not None:
            return
        try:
            self.queue.put_nowait(arrival)
        except asyncio.QueueFull:
            self.end("lagging")

    def end(self, why: str) -> None:
        if self.ended is not None:
            return
        self.ended = why
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self) -> Arrival | None:
        """The next arrival; None once the follower was ended (lagging, or the gateway stopping)."""
        return await self.queue.get()


class LogFeeds(Protocol):
    """The job log for streams; ``Unavailable`` when NATS is."""

    def history(self, job_id: str | None, after: int) -> AsyncIterator[list[tuple[int, Commit]]]:
        """A job's commits (None: every job's) after stream sequence ``after``, page by page."""
        ...

    async def progress_now(self, job_id: str) -> list[StepProgress]:
        """The latest tick of each of the job's steps that reported one."""
        ...

    def follow(self, job_id: str | None) -> AbstractAsyncContextManager[Follower]:
        """Arrivals on a job's log (None: every job's) from now on, while the block runs."""
        ...

    async def close(self) -> None:
        """End every follower (their streams close; clients resume elsewhere)."""
        ...
