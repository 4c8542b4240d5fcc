"""Live streams of the job log: a job's events as they are appended, or a live list of jobs.

Every event of the log has a position ``<seq>.<index>`` (the stream sequence of its commit and
its place in the commit): it is the stream's event id, so a client that reconnects with the last
id it got receives exactly the events after it. Progress ticks are not in the log and have no
position; a stream sends the current tick of each running step when it opens, then each new one.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import msgspec

from atelier_contracts.events import Commit, EventRecord
from atelier_contracts.progress import StepProgress
from atelier_contracts.snapshot import JobStatus
from atelier_gateway.app.errors import InvalidRequest, JobNotFound
from atelier_gateway.app.live import Arrival, Follower, LogFeeds
from atelier_gateway.app.ports import JobLog

_POSITION = re.compile(r"(\d{1,19})(?:\.(\d{1,6}))?")

JOB_STATUS_OF = {
    "job_submitted": JobStatus.QUEUED,
    "job_started": JobStatus.RUNNING,
    "job_partial_ready": JobStatus.PARTIAL_READY,
    "job_succeeded": JobStatus.SUCCEEDED,
    "job_failed": JobStatus.FAILED,
    "job_cancelled": JobStatus.CANCELLED,
    "job_requeued": JobStatus.QUEUED,
    "job_deleted": "deleted",
}
"""A job event's stream event name: the status the job is in after it."""
UPDATED = "updated"
"""The stream event name of ``job_updated`` (title, priority or tags changed; not a status)."""
LOGGED = frozenset({"provider_called", "budget_alerted", "report_ignored"})
"""Events that are news, not a change of state: sent as ``log`` with a line for people."""
TERMINAL = frozenset({"job_succeeded", "job_failed", "job_cancelled", "job_deleted"})
_STEP_DONE = frozenset({"step_succeeded", "step_failed", "step_cancelled", "step_skipped"})
_STEP_RUNNING = frozenset({"step_dispatched", "step_started", "step_redelivered"})


class StreamPositionInvalid(InvalidRequest):
    code = "stream_position_invalid"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    seq: int
    index: int

    @classmethod
    def parse(cls, text: str) -> Position:
        """``<seq>.<index>`` as sent; a bare ``<seq>`` is after every event of that commit."""
        found = _POSITION.fullmatch(text.strip())
        if found is None or int(found.group(1)) >= 1 << 63:
            raise StreamPositionInvalid(f"{text[:40]!r} is no stream position (<seq>.<index>).")
        seq, index = found.groups()
        return cls(int(seq), int(index) if index is not None else 1 << 30)

    def __str__(self) -> str:
        return f"{self.seq}.{self.index}"


START = Position(0, -1)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: str
    data: dict[str, Any]
    id: str | None = None


def job_events(seq: int, commit: Commit) -> Iterator[tuple[Position, str, StreamEvent]]:
    """A commit's events as stream events, with their positions and types."""
    for index, record in enumerate(commit.events):
        position = Position(seq, index)
        kind = _type_of(record)
        body = msgspec.to_builtins(record.event)
        data = {"job_id": commit.job_id, "position": str(position), "at": commit.at.isoformat(), **body}
        data["event_id"] = record.event_id
        if kind in JOB_STATUS_OF:
            name = JOB_STATUS_OF[kind]
            data["status"] = name
        elif kind == "job_updated":
            name = UPDATED
        elif kind in LOGGED:
            name = "log"
            data["message"] = _line(kind, body)
        else:
            name = kind
        yield position, kind, StreamEvent(event=name, data=data, id=str(position))


def progress_event(tick: StepProgress) -> StreamEvent:
    return StreamEvent(event="progress", data=msgspec.to_builtins(tick))


@dataclass
class JobStream:
    """One client's stream of one job: ``open`` checks the job and reads what it missed;
    ``events`` then yields that and everything after, until the job ends."""

    feeds: LogFeeds
    joblog: JobLog
    tenant: str
    job_id: str
    after: Position | None
    backlog: list[StreamEvent] = field(default_factory=list)
    finished: bool = False
    _last: Position = START
    _running: dict[str, int] = field(default_factory=dict)
    _exit: AsyncExitStack = field(default_factory=AsyncExitStack)
    _follower: Follower | None = None

    async def open(self) -> None:
        """Follow the job, then fold its whole log (which steps run, whether it ended, whose it
        is: what a resume from the middle must know too), keeping what comes after ``after``."""
        try:
            self._follower = await self._exit.enter_async_context(self.feeds.follow(self.job_id))
            self._last = self.after or START
            seen = False
            async for page in self.feeds.history(self.job_id, 0):
                for seq, commit in page:
                    if commit.tenant != self.tenant:
                        raise JobNotFound(f"No job {self.job_id!r}.")
                    seen = True
                    self.backlog.extend(self._take(seq, commit))
            if not seen and not await self.joblog.command_pending(self.job_id):
                raise JobNotFound(f"No job {self.job_id!r}.")
            if not self.finished:
                ticks = await self.feeds.progress_now(self.job_id)
                self.backlog.extend(progress_event(t) for t in ticks if self._counts(t))
        except BaseException:
            await self.close()
            raise

    async def events(self) -> AsyncIterator[StreamEvent]:
        for event in self.backlog:
            yield event
        self.backlog = []
        assert self._follower is not None
        while not self.finished:
            arrival = await self._follower.next()
            if arrival is None:
                return  # too far behind, or the gateway is stopping: the client resumes
            for event in self._arrived(arrival):
                yield event

    async def close(self) -> None:
        await self._exit.aclose()

    def _arrived(self, arrival: Arrival) -> list[StreamEvent]:
        if arrival.progress is not None:
            return [progress_event(arrival.progress)] if self._counts(arrival.progress) else []
        assert arrival.commit is not None
        return self._take(arrival.seq, arrival.commit)

    def _take(self, seq: int, commit: Commit) -> list[StreamEvent]:
        """The events of a commit not sent yet; notes which steps run and whether the job ended."""
        out: list[StreamEvent] = []
        if commit.tenant != self.tenant:
            return out
        for position, kind, event in job_events(seq, commit):
            step = event.data.get("step")
            if kind in _STEP_RUNNING and isinstance(step, str):
                self._running[step] = int(event.data.get("attempt", 0))
            elif kind in _STEP_DONE and isinstance(step, str):
                self._running.pop(step, None)
            if kind in JOB_STATUS_OF:  # a late report after the end is news, not a new state
                self.finished = kind in TERMINAL
            if position <= self._last:
                continue
            self._last = position
            out.append(event)
        return out

    def _counts(self, tick: StepProgress) -> bool:
        """A tick of an attempt still running (not a late one of an attempt that ended)."""
        return self._running.get(tick.step) == tick.attempt


@dataclass(frozen=True)
class ListFilter:
    status: str | None = None
    kind: str | None = None
    tag: str | None = None


@dataclass
class _Meta:
    kind: str
    title: str
    status: str
    priority: int
    tags: list[str]


@dataclass
class JobListStream:
    """A live list of jobs: each change of a job's status (or title, tags, priority) among the
    jobs that match, as one event with the job's summary. Positions are those of the whole log."""

    feeds: LogFeeds
    tenant: str
    filters: ListFilter
    after: Position | None
    _meta: OrderedDict[str, _Meta] = field(default_factory=OrderedDict)
    _last: Position = START
    _exit: AsyncExitStack = field(default_factory=AsyncExitStack)
    _follower: Follower | None = None

    async def open(self) -> None:
        """Follow the log (``Unavailable`` now, before any answer, when NATS is away)."""
        self._follower = await self._exit.enter_async_context(self.feeds.follow(None))

    async def events(self) -> AsyncIterator[StreamEvent]:
        """What happened after ``after`` (read page by page from the log), then what happens."""
        assert self._follower is not None
        if self.after is not None:
            self._last = self.after
            async for page in self.feeds.history(None, max(self.after.seq - 1, 0)):
                for seq, commit in page:
                    for event in await self._take(seq, commit):
                        yield event
        while True:
            arrival = await self._follower.next()
            if arrival is None:
                return
            if arrival.commit is not None:
                for event in await self._take(arrival.seq, arrival.commit):
                    yield event

    async def close(self) -> None:
        await self._exit.aclose()

    async def _take(self, seq: int, commit: Commit) -> list[StreamEvent]:
        if commit.tenant != self.tenant:
            return []
        out = []
        for position, kind, event in job_events(seq, commit):
            if position <= self._last:
                continue
            self._last = position
            if kind not in JOB_STATUS_OF and event.event != UPDATED:
                continue
            meta = await self._meta_of(commit.job_id, seq, kind, event.data)
            if meta is None or not self._matches(meta):
                continue
            summary = {"job_id": commit.job_id, "position": str(position), "at": event.data["at"]}
            summary.update(kind=meta.kind, title=meta.title, status=meta.status)
            summary.update(priority=meta.priority, tags=meta.tags, type=kind)
            name = UPDATED if event.event == UPDATED else meta.status
            out.append(StreamEvent(event=name, data=summary, id=str(position)))
        return out

    async def _meta_of(self, job_id: str, seq: int, kind: str, data: dict[str, Any]) -> _Meta | None:
        """The job as it stands after this event: from this stream's own fold, or, for a job
        it saw no submit of, folded from the job's log up to this commit (not the read model,
        which may not have the job yet)."""
        meta = self._meta.get(job_id)
        if meta is None and kind != "job_submitted":
            async for page in self.feeds.history(job_id, 0):
                for earlier_seq, commit in page:
                    if earlier_seq >= seq:
                        break
                    for _, earlier, event in job_events(earlier_seq, commit):
                        meta = _fold(meta, earlier, event.data)
            if meta is None:  # no submit in its log: nothing to show
                return None
        meta = _fold(meta, kind, data)
        if meta is None:
            return None
        self._meta[job_id] = meta
        self._meta.move_to_end(job_id)
        while len(self._meta) > 10_000:
            self._meta.popitem(last=False)
        return meta

    def _matches(self, meta: _Meta) -> bool:
        f = self.filters
        return (
            (f.status is None or meta.status == f.status)
            and (f.kind is None or meta.kind == f.kind)
            and (f.tag is None or f.tag in meta.tags)
        )


def _fold(meta: _Meta | None, kind: str, data: dict[str, Any]) -> _Meta | None:
    """A job's summary after one more of its events."""
    if kind == "job_submitted":
        return _Meta(data["kind"], data["title"], "queued", data["priority"], list(data["tags"]))
    if meta is None:
        return None
    if kind == "job_updated":
        meta.title = data.get("title") or meta.title
        meta.priority = data["priority"] if data.get("priority") is not None else meta.priority
        meta.tags = list(data["tags"]) if data.get("tags") is not None else meta.tags
    elif kind in JOB_STATUS_OF:
        meta.status = JOB_STATUS_OF[kind]
    return meta


def _type_of(record: EventRecord) -> str:
    return type(record.event).__struct_config__.tag  # type: ignore[return-value]


def _line(kind: str, body: dict[str, Any]) -> str:
    if kind == "provider_called":
        call = body.get("call", {})
        return (
            f"{body.get('capability')} on {call.get('provider')}/{call.get('model')}: {call.get('outcome')}"
        )
    if kind == "budget_alerted":
        return f"budget alert on step {body.get('step')}"
    return f"a late report of {body.get('work_id')} was ignored ({body.get('outcome')})"
