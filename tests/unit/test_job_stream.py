"""A job's stream over a log held in memory: what it sends, when it ends, what a resume knows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from atelier_contracts.common import ProviderAttempt
from atelier_contracts.events import (
    Commit,
    EventRecord,
    JobCancelled,
    JobEvent,
    JobStarted,
    JobSubmitted,
    JobUpdated,
    ProviderCalled,
    StepDispatched,
    StepStarted,
)
from atelier_contracts.progress import StepProgress
from atelier_gateway.app.errors import JobNotFound
from atelier_gateway.app.live import Arrival, Follower
from atelier_gateway.app.streams import JobStream, Position, StreamPositionInvalid

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class MemoryFeeds:
    def __init__(self, tenant: str = "t") -> None:
        self.log: list[tuple[int, Commit]] = []
        self.ticks: list[StepProgress] = []
        self.followers: list[Follower] = []
        self.tenant = tenant

    def append(self, *events: JobEvent, seq: int) -> None:
        records = [EventRecord(event_id=f"{seq}:{i}", event=e) for i, e in enumerate(events)]
        commit = Commit(
            commit_id=f"c{seq}", job_id="job_1", tenant=self.tenant, causation_id="x", correlation_id="x",
            prev_seq=self.log[-1][0] if self.log else 0, at=T0, events=records,
        )  # fmt: skip
        self.log.append((seq, commit))
        for f in self.followers:
            f.put(Arrival(seq=seq, commit=commit))

    async def history(self, job_id: str | None, after: int) -> AsyncIterator[list[tuple[int, Commit]]]:
        yield [(s, c) for s, c in self.log if s > after]

    async def progress_now(self, job_id: str) -> list[StepProgress]:
        return list(self.ticks)

    @contextlib.asynccontextmanager
    async def follow(self, job_id: str | None) -> AsyncIterator[Follower]:
        follower = Follower(asyncio.Queue(100))
        self.followers.append(follower)
        yield follower

    async def close(self) -> None:
        pass


class NoLog:
    async def command_pending(self, job_id: str) -> bool:
        return False


def submitted() -> JobSubmitted:
    return JobSubmitted(kind="task", title="t", input={}, priority=0, tags=[], steps=[])


def call() -> ProviderCalled:
    attempt = ProviderAttempt(provider="offline", model="m", outcome="succeeded", started_at=T0)
    return ProviderCalled(step="task", attempt=1, capability="tts", call=attempt)


async def opened(feeds: MemoryFeeds, after: str | None = None, tenant: str = "t") -> JobStream:
    stream = JobStream(feeds, NoLog(), tenant, "job_1", Position.parse(after) if after else None)  # type: ignore[arg-type]
    await stream.open()
    return stream


async def test_a_late_log_line_after_the_end_does_not_reopen_the_job() -> None:
    feeds = MemoryFeeds()
    feeds.append(submitted(), seq=1)
    feeds.append(JobCancelled(reason="asked"), seq=4)
    feeds.append(call(), seq=7)  # a report that came in after the cancel
    stream = await opened(feeds, after="7.0")
    assert stream.finished, "the client has everything: 204"
    assert stream.backlog == []
    stream = await opened(feeds)
    sent = [e async for e in stream.events()]  # ends by itself
    assert [e.event for e in sent] == ["queued", "cancelled", "log"]


async def test_a_resume_after_a_step_started_still_shows_its_progress() -> None:
    feeds = MemoryFeeds()
    feeds.append(submitted(), seq=1)
    feeds.append(JobStarted(), StepDispatched(step="encode", attempt=2, work_id="w", capability="c"), seq=2)
    feeds.append(StepStarted(step="encode", attempt=2, work_id="w", started_at=T0), seq=3)
    feeds.append(call(), seq=5)
    feeds.ticks = [StepProgress(job_id="job_1", step="encode", attempt=2, fraction=0.4, message="m", at=T0)]
    stream = await opened(feeds, after="5.0")
    assert [e.event for e in stream.backlog] == ["progress"], "the encode runs: its tick counts"
    assert stream.backlog[0].data["fraction"] == 0.4


async def test_another_tenants_job_is_not_found_whatever_the_position() -> None:
    feeds = MemoryFeeds(tenant="other")
    feeds.append(submitted(), seq=1)
    for after in (None, "1.0", "999.0"):
        with pytest.raises(JobNotFound):
            await opened(feeds, after=after)


def test_positions_are_bounded() -> None:
    assert Position.parse("12.3") == Position(12, 3)
    assert Position.parse("12") > Position(12, 999)
    for bad in ("9223372036854775808", "-1", "1.2.3", "x", ""):
        with pytest.raises(StreamPositionInvalid):
            Position.parse(bad)


async def test_a_change_of_title_or_tags_is_sent_as_updated() -> None:
    feeds = MemoryFeeds()
    feeds.append(submitted(), seq=1)
    feeds.append(JobUpdated(tags=["rush"]), seq=2)
    stream = await opened(feeds)
    assert [e.event for e in stream.backlog] == ["queued", "updated"]
    assert stream.backlog[1].data["tags"] == ["rush"]
