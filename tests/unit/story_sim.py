"""A pure in-memory driver for the job aggregate: decide, commit, fold — no NATS, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from atelier_contracts.commands import SubmitJob
from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.events import Commit, EventRecord, JobEvent, StepDispatched
from atelier_contracts.work import WorkFailed, WorkReport, WorkStarted, WorkSucceeded
from atelier_orchestrator.domain.decide import Context, decide
from atelier_orchestrator.domain.snapshot import JobSnapshot
from atelier_orchestrator.domain.state import apply_commit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Sim:
    job_id: str = "job_test"
    tenant: str = "t1"
    state: JobSnapshot | None = None
    commits: list[tuple[Commit, int]] = field(default_factory=list)
    clock: int = 0
    max_fan_out: int = 200

    def now(self) -> datetime:
        self.clock += 1
        return T0 + timedelta(seconds=self.clock)

    def send(self, message: SubmitJob | WorkReport, msg_id: str = "") -> list[JobEvent]:
        now = self.now()
        ctx = Context(self.job_id, self.tenant, now, msg_id, max_fan_out=self.max_fan_out)
        events = decide(self.state, message, ctx)
        if events:
            self.commit(events, now, msg_id)
        return events

    def commit(self, events: list[JobEvent], now: datetime | None = None, msg_id: str = "") -> None:
        """Append ``events`` as one commit (``send`` does; a test may append part of a decision)."""
        now = now or self.now()
        if events:
            prev = self.commits[-1][1] if self.commits else 0
            seq = prev + 3  # stream sequences are global: leave gaps like a shared stream does
            commit = Commit(
                commit_id=f"c{seq}",
                job_id=self.job_id,
                tenant=self.tenant,
                causation_id=msg_id or f"m{seq}",
                correlation_id="corr",
                prev_seq=prev,
                at=now,
                events=[EventRecord(event_id=f"c{seq}:{i}", event=e) for i, e in enumerate(events)],
            )
            self.state = apply_commit(self.state, commit, seq)
            self.commits.append((commit, seq))

    def replay(self) -> JobSnapshot | None:
        state = None
        for commit, seq in self.commits:
            state = apply_commit(state, commit, seq)
        return state

    def events(self) -> list[JobEvent]:
        return [r.event for c, _ in self.commits for r in c.events]


def submit(kind: str = "story") -> SubmitJob:
    return SubmitJob(kind=kind, title="The Lighthouse Cat", input={"prompt": "a cat keeps a lighthouse"})


def started(d: StepDispatched) -> WorkStarted:
    return WorkStarted(work_id=d.work_id, job_id="job_test", step=d.step, attempt=d.attempt, started_at=T0)


def succeeded(d: StepDispatched) -> WorkSucceeded:
    blob = BlobRef(key=f"{d.step:0<64}"[:64], size=10, content_type="application/octet-stream")
    return WorkSucceeded(
        work_id=d.work_id,
        job_id="job_test",
        step=d.step,
        attempt=d.attempt,
        outputs=[Artifact(name="out", kind=d.capability.split(".")[0], blob=blob)],
        provider="offline",
        model="m1",
        started_at=T0,
        finished_at=T0,
    )


def failed(d: StepDispatched, retryable: bool = True) -> WorkFailed:
    return WorkFailed(
        work_id=d.work_id,
        job_id="job_test",
        step=d.step,
        attempt=d.attempt,
        code="provider_error",
        message="boom",
        retryable=retryable,
        started_at=T0,
        finished_at=T0,
    )
