"""JobService over an in-memory event store: conflicts, stale caches, idempotent no-ops."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from msgspec.structs import replace

from atelier_contracts.commands import SubmitJob
from atelier_contracts.envelope import Envelope
from atelier_contracts.events import Commit, StepDispatched
from atelier_contracts.work import WorkStarted
from atelier_orchestrator.adapters.eventstore import ConcurrencyConflict
from atelier_orchestrator.app.handlers import JobService
from atelier_orchestrator.domain.snapshot import JobSnapshot
from atelier_orchestrator.domain.state import apply_commit

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class MemoryEventStore:
    """The fake of the event-log port: a list of commits per job, the same conflict rule."""

    def __init__(self) -> None:
        self.log: dict[str, list[tuple[Commit, int]]] = {}
        self.seq = 0

    async def load(self, job_id: str, assume_new: bool = False) -> tuple[JobSnapshot | None, int]:
        state, seq = None, 0
        if assume_new:  # as the real store does for a job it has not cached: no read at all
            return state, seq
        for commit, s in self.log.get(job_id, []):
            state, seq = apply_commit(state, commit, s), s
        return state, seq

    async def append(self, commit: Commit, new_state: JobSnapshot) -> int:
        if commit.prev_seq != await self.last_seq(commit.job_id):
            raise ConcurrencyConflict(commit.job_id)
        self.seq += 1
        self.log.setdefault(commit.job_id, []).append((commit, self.seq))
        return self.seq

    async def last_seq(self, job_id: str) -> int:
        entries = self.log.get(job_id)
        return entries[-1][1] if entries else 0

    def forget(self, job_id: str) -> None:
        pass

    async def read(self, job_id: str, after: int = 0) -> AsyncIterator[tuple[Commit, int]]:
        for commit, seq in list(self.log.get(job_id, [])):
            if seq > after:
                yield commit, seq


class StaleOnceStore(MemoryEventStore):
    """Answers the first load with an older snapshot, as a replica's cache would."""

    def __init__(self) -> None:
        super().__init__()
        self.stale: tuple[JobSnapshot | None, int] | None = None

    async def load(self, job_id: str, assume_new: bool = False) -> tuple[JobSnapshot | None, int]:
        if self.stale is not None:
            stale, self.stale = self.stale, None
            return stale
        return await super().load(job_id)


def envelope(body: object, msg_id: str) -> Envelope[object]:
    return Envelope(
        msg_id=msg_id,
        job_id="job_x",
        tenant="t",
        correlation_id="c",
        causation_id=None,
        sent_at=NOW,
        body=body,
    )


def submit() -> SubmitJob:
    return SubmitJob(kind="story", title="T", input={"prompt": "p"})


async def test_a_repeated_submit_appends_nothing() -> None:
    store = MemoryEventStore()
    jobs = JobService(store, clock=lambda: NOW)
    first = await jobs.handle(envelope(submit(), "m1"))  # type: ignore[arg-type]
    assert first.events
    assert first.job is not None
    assert first.job.version == 1
    again = await jobs.handle(envelope(submit(), "m2"))  # type: ignore[arg-type]
    assert again.events == []
    assert again.job == first.job
    assert len(store.log["job_x"]) == 1


async def test_a_report_judged_on_a_stale_snapshot_is_judged_again_not_dropped() -> None:
    store = StaleOnceStore()
    jobs = JobService(store, clock=lambda: NOW)
    events = (await jobs.handle(envelope(submit(), "m1"))).events  # type: ignore[arg-type]
    dispatched = next(e for e in events if isinstance(e, StepDispatched))
    state, seq = await store.load("job_x")
    assert state is not None
    # A stale snapshot in which the step was never dispatched: the report looks unknown there.
    store.stale = (
        replace(state, steps={**state.steps, "story": replace(state.steps["story"], work_id=None)}),
        seq,
    )
    store.seq += 5  # the stale copy claims an older position than the log's
    store.stale = (store.stale[0], seq - 1 if seq > 1 else 0)
    started = WorkStarted(work_id=dispatched.work_id, job_id="job_x", step="story", attempt=1, started_at=NOW)
    events = (await jobs.handle(envelope(started, "m3"))).events  # type: ignore[arg-type]
    assert [type(e).__name__ for e in events] == ["JobStarted", "StepStarted"]


async def test_a_refusal_judged_on_a_stale_snapshot_is_judged_again() -> None:
    from atelier_contracts.commands import CancelJob
    from atelier_contracts.snapshot import JobStatus

    store = StaleOnceStore()
    jobs = JobService(store, clock=lambda: NOW)
    await jobs.handle(envelope(submit(), "m1"))  # type: ignore[arg-type]
    state, seq = await store.load("job_x")
    assert state is not None
    # The cache believes the job already succeeded; the log says it is queued: cancel is allowed.
    store.stale = (replace(state, status=JobStatus.SUCCEEDED), seq - 1)
    events = (await jobs.handle(envelope(CancelJob(), "m2"))).events  # type: ignore[arg-type]
    assert type(events[-1]).__name__ == "JobCancelled"


class Crash(Exception):
    pass


async def test_a_commit_appended_but_not_relayed_is_relayed_when_its_message_comes_again() -> None:
    store = MemoryEventStore()
    relayed: list[int] = []
    crash = True

    async def relay(commit: Commit, seq: int, job: JobSnapshot | None) -> None:
        if crash:
            raise Crash  # killed between the append and the publish
        relayed.append(seq)

    jobs = JobService(store, relay=relay, clock=lambda: NOW)
    with pytest.raises(Crash):
        await jobs.handle(envelope(submit(), "m1"))  # type: ignore[arg-type]
    assert len(store.log["job_x"]) == 1
    assert relayed == []
    crash = False
    again = await jobs.handle(envelope(submit(), "m1"), redelivered=True)  # type: ignore[arg-type]
    assert again.events == [], "nothing is decided twice"
    assert relayed == [1], "the commit the message caused is relayed"
    # A first delivery that decides nothing caused no commit: nothing to read back or relay.
    await jobs.handle(envelope(submit(), "m2"))  # type: ignore[arg-type]
    assert relayed == [1]


async def test_each_appended_commit_is_relayed_once_as_it_is_appended() -> None:
    store = MemoryEventStore()
    relayed: list[tuple[str, int]] = []

    async def relay(commit: Commit, seq: int, job: JobSnapshot | None) -> None:
        relayed.append((commit.causation_id, seq))

    jobs = JobService(store, relay=relay, clock=lambda: NOW)
    await jobs.handle(envelope(submit(), "m1"))  # type: ignore[arg-type]
    from atelier_contracts.commands import CancelJob

    await jobs.handle(envelope(CancelJob(), "m2"))  # type: ignore[arg-type]
    assert relayed == [("m1", 1), ("m2", 2)]


async def test_a_plan_too_large_for_one_commit_is_appended_as_several_and_survives_a_crash() -> None:
    from msgspec.structs import replace as set_fields

    from atelier_contracts.events import StepsPlanned
    from atelier_contracts.work import WorkSucceeded
    from tests.unit.story_sim import succeeded

    store = MemoryEventStore()
    relayed: list[int] = []
    crash_after = 2

    async def relay(commit: Commit, seq: int, job: JobSnapshot | None) -> None:
        if len(relayed) == crash_after:
            raise Crash  # killed in the middle of appending the plan
        relayed.append(seq)

    jobs = JobService(store, relay=relay, clock=lambda: NOW, commit_budget=16 * 1024)
    body = SubmitJob(kind="gallery", title="G", input={"prompt": "foxes", "count": 150})
    first = await jobs.handle(envelope(body, "m1"))  # type: ignore[arg-type]
    ideas = next(e for e in first.events if isinstance(e, StepDispatched))
    items = [f"idea number {i} with a few more words to weigh" for i in range(150)]
    report: WorkSucceeded = set_fields(succeeded(ideas), job_id="job_x", data={"items": items})
    with pytest.raises(Crash):
        await jobs.handle(envelope(report, "r1"))  # type: ignore[arg-type]
    assert len(store.log["job_x"]) == 1 + 2, "the submit, and two commits of the plan before the crash"
    cut, _ = await store.load("job_x")
    assert cut is not None
    assert cut.steps["ideas"].status != "succeeded", "the step succeeds in the plan's last commit"
    assert 0 < len(cut.steps) - 2 < 150, "part of the plan is in"
    crash_after = 10_000
    await jobs.handle(envelope(report, "r1"), redelivered=True)  # type: ignore[arg-type]
    commits = [c for c, _ in store.log["job_x"]]
    assert len(commits) > 3, "the plan took several commits"
    planned = [
        s.name for c in commits for r in c.events if isinstance(r.event, StepsPlanned) for s in r.event.steps
    ]
    assert len(planned) == 150 == len(set(planned))
    dispatched = [r.event.step for c in commits for r in c.events if isinstance(r.event, StepDispatched)]
    assert Counter(dispatched) == dict.fromkeys(["ideas", *(f"picture_{i:03d}" for i in range(1, 151))], 1)
    state, _ = await store.load("job_x")
    assert state is not None
    assert state.steps["ideas"].status == "succeeded"


async def test_a_delete_appended_but_not_relayed_is_relayed_when_it_comes_again() -> None:
    """The job reads as deleted now; its command must still reach the workers (cancellation)."""
    from atelier_contracts.commands import DeleteJob

    store = MemoryEventStore()
    relayed: list[str] = []
    crash = False

    async def relay(commit: Commit, seq: int, job: JobSnapshot | None) -> None:
        if crash:
            raise Crash
        relayed.append(commit.causation_id)

    jobs = JobService(store, relay=relay, clock=lambda: NOW)
    await jobs.handle(envelope(submit(), "m1"))  # type: ignore[arg-type]
    crash = True
    with pytest.raises(Crash):
        await jobs.handle(envelope(DeleteJob(), "del-1"))  # type: ignore[arg-type]
    crash = False
    again = await jobs.handle(envelope(DeleteJob(), "del-1"), redelivered=True)  # type: ignore[arg-type]
    assert again.events == []
    assert relayed == ["m1", "del-1"], "the delete's commit relayed on its redelivery"
    # A dead letter sent again is a new delivery: known by its id in the job's causes all the same.
    relayed.clear()
    await jobs.handle(envelope(DeleteJob(), "del-1"))  # type: ignore[arg-type]
    assert relayed == ["del-1"]
