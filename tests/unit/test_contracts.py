"""Every message type survives a round trip through its one decoder."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from atelier_contracts.commands import SubmitJob
from atelier_contracts.common import Artifact, BlobRef, ErrorInfo, Usage
from atelier_contracts.envelope import (
    Envelope,
    command_decoder,
    commit_decoder,
    encode,
    report_decoder,
    work_item_decoder,
)
from atelier_contracts.events import Commit, EventRecord, JobFailed, JobSubmitted, StepSpec, StepSucceeded
from atelier_contracts.ids import asset_id, new_job_id, uuid7
from atelier_contracts.work import WorkFailed, WorkItem, WorkStarted, WorkSucceeded
from atelier_orchestrator.domain.snapshot import JobSnapshot, StepSnapshot, snapshot_decoder

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BLOB = BlobRef(key="a" * 64, size=3, content_type="image/png")
ART = Artifact(name="image", kind="image", blob=BLOB, meta={"width": 1024})


def envelope(body: object) -> Envelope[object]:
    return Envelope(
        msg_id=uuid7(),
        job_id="job_1",
        tenant="t",
        correlation_id="c",
        causation_id=None,
        sent_at=NOW,
        body=body,
    )


def test_command_round_trip() -> None:
    env = envelope(SubmitJob(kind="story", title="T", input={"prompt": "p"}, priority=3, tags=["a"]))
    assert command_decoder.decode(encode(env)) == env


def test_work_item_round_trip() -> None:
    item = WorkItem(
        work_id="job_1.cover.1",
        job_id="job_1",
        tenant="t",
        step="cover",
        attempt=1,
        capability="image.generate",
        params={"size": 1024},
        inputs={"story.story": ART},
    )
    env = envelope(item)
    assert work_item_decoder.decode(encode(env)) == env


@pytest.mark.parametrize(
    "report",
    [
        WorkStarted(work_id="w", job_id="job_1", step="s", attempt=1, started_at=NOW, worker="ai@h:1"),
        WorkSucceeded(
            work_id="w",
            job_id="job_1",
            step="s",
            attempt=1,
            outputs=[ART],
            provider="offline",
            model="m",
            started_at=NOW,
            finished_at=NOW,
            usage=Usage(units={"images": 1}, cost_usd=0.01),
        ),
        WorkFailed(
            work_id="w",
            job_id="job_1",
            step="s",
            attempt=2,
            code="provider_error",
            message="x",
            retryable=True,
            started_at=NOW,
            finished_at=NOW,
        ),
    ],
)
def test_report_round_trip(report: object) -> None:
    env = envelope(report)
    decoded = report_decoder.decode(encode(env))
    assert decoded == env
    assert type(decoded.body) is type(report)


def test_commit_round_trip_keeps_event_types() -> None:
    commit = Commit(
        commit_id="c",
        job_id="job_1",
        tenant="t",
        causation_id="m",
        correlation_id="c",
        prev_seq=7,
        at=NOW,
        events=[
            EventRecord(
                event_id="c:0",
                event=JobSubmitted(
                    kind="story",
                    title="T",
                    input={},
                    priority=0,
                    tags=[],
                    steps=[StepSpec(name="s", capability="x")],
                ),
            ),
            EventRecord(
                event_id="c:1",
                event=StepSucceeded(
                    step="s",
                    attempt=1,
                    work_id="w",
                    outputs=[ART],
                    provider="p",
                    model="m",
                    started_at=NOW,
                    finished_at=NOW,
                ),
            ),
            EventRecord(
                event_id="c:2", event=JobFailed(error=ErrorInfo(code="step_failed", message="m", at=NOW))
            ),
        ],
    )
    decoded = commit_decoder.decode(encode(commit))
    assert decoded == commit
    assert [type(r.event) for r in decoded.events] == [JobSubmitted, StepSucceeded, JobFailed]


def test_snapshot_round_trip() -> None:
    snap = JobSnapshot(
        id="job_1",
        tenant="t",
        kind="story",
        title="T",
        input={"prompt": "p"},
        priority=0,
        tags=[],
        status="running",
        steps={"s": StepSnapshot(name="s", capability="x", outputs=[ART])},
        created_at=NOW,
        updated_at=NOW,
        version=9,
    )
    assert snapshot_decoder.decode(encode(snap)) == snap


def test_unknown_fields_are_ignored_so_old_readers_survive_new_writers() -> None:
    raw = msgspec.json.decode(encode(envelope(SubmitJob(kind="story", title="T", input={}))))
    raw["future_field"] = 1
    raw["body"]["another_future_field"] = [1, 2]
    assert command_decoder.decode(msgspec.json.encode(raw)).body.title == "T"


def test_an_unknown_tag_is_rejected_loudly() -> None:
    raw = msgspec.json.decode(encode(envelope(SubmitJob(kind="story", title="T", input={}))))
    raw["body"]["type"] = "launch_rockets"
    with pytest.raises(msgspec.ValidationError):
        command_decoder.decode(msgspec.json.encode(raw))


def test_ids_are_time_ordered_and_derived_ids_stable() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert ids == sorted(ids), "ids made in the same millisecond still sort in creation order"
    assert len(set(ids)) == 2000
    assert {(u.version, u.variant) for u in map(uuid.UUID, ids)} == {(7, uuid.RFC_4122)}
    assert new_job_id().startswith("job_")
    assert asset_id("j", "cover", "image") == asset_id("j", "cover", "image")
    assert asset_id("j", "cover", "image") != asset_id("j", "cover", "thumb")


def test_a_forked_child_draws_its_own_random_bits() -> None:
    """Random bits come from a pool filled once per 400 ids: a child forked after the parent has
    filled it must not hand out the same bits as its parent."""
    uuid7()  # the pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, uuid7().encode())
        os._exit(0)
    os.close(write)
    mine = uuid7()
    with os.fdopen(read) as pipe:
        theirs = pipe.read()
    os.waitpid(pid, 0)
    assert theirs[-12:] != mine[-12:], "the child's random bits repeat the parent's"


def test_the_public_views_hold_none_of_the_aggregates_internals() -> None:
    """The gateway reads ``JobView``/``StepView`` (and session and schedule views): what deciding
    needs besides lives only in the orchestrator's states, so it can change without a contract."""
    from atelier_contracts.schedules import ScheduleView
    from atelier_contracts.sessions import SessionView
    from atelier_contracts.snapshot import JobView, StepView
    from atelier_orchestrator.domain.schedule import ScheduleState
    from atelier_orchestrator.domain.session import SessionState

    internals = {"recent_causes", "attempt_base", "waits"}
    pairs = [
        (JobView, JobSnapshot),
        (StepView, StepSnapshot),
        (SessionView, SessionState),
        (ScheduleView, ScheduleState),
    ]
    for view, state in pairs:
        assert not internals & set(view.__struct_fields__), view.__name__
        assert set(view.__struct_fields__) <= set(state.__struct_fields__), "a state is its view and more"
    assert {"recent_causes"} <= set(JobSnapshot.__struct_fields__)
    assert {"attempt_base", "waits"} <= set(StepSnapshot.__struct_fields__)
