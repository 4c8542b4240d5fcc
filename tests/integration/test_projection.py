"""The projector on real SQL: whatever the batching, the read model shows exactly the fold of the
log — the job, each step in its own row, in pipeline order — and duplicates and gaps are told."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC

import msgspec
import pytest
import sqlalchemy as sa
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.commands import RetryStep
from atelier_contracts.envelope import encode
from atelier_contracts.events import StepDispatched
from atelier_contracts.readmodel import assemble, job_events, job_steps, jobs, make_engine, steps_of
from atelier_contracts.runtime.consumer import Retry
from atelier_contracts.snapshot import Projected
from atelier_orchestrator.adapters.projection import Applied, SqlProjection
from atelier_orchestrator.domain.snapshot import JobSnapshot, snapshot_decoder, step_decoder
from atelier_orchestrator.entrypoints.subscribers import on_commits_project
from tests.unit.story_sim import Sim, failed, submit, succeeded

pytestmark = pytest.mark.integration


def dispatched(events: list[object]) -> list[StepDispatched]:
    return [e for e in events if isinstance(e, StepDispatched)]


def a_story_with_a_retry_and_a_regenerated_asset() -> Sim:
    sim = Sim()
    queue = dispatched(sim.send(submit()))
    while queue:
        step = queue.pop(0)
        if step.step == "cover" and step.attempt == 1:
            queue += dispatched(sim.send(failed(step)))  # retried
        else:
            queue += dispatched(sim.send(succeeded(step)))
    assert sim.state is not None
    assert sim.state.status == "succeeded"
    queue = dispatched(sim.send(RetryStep(step="cover")))  # type: ignore[arg-type]
    while queue:
        queue += dispatched(sim.send(succeeded(queue.pop(0))))
    return sim


async def read_back(url: str, job_id: str) -> tuple[JobSnapshot, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            raw = (await conn.execute(sa.select(jobs.c.snapshot).where(jobs.c.id == job_id))).scalar_one()
            steps = (await conn.execute(steps_of([job_id]))).all()
            rows = (await conn.execute(sa.select(sa.func.count()).select_from(job_steps))).scalar_one()
    finally:
        await engine.dispose()
    return assemble([(job_id, raw)], steps, snapshot_decoder, step_decoder)[job_id], rows


@pytest.mark.parametrize("batch", [1, 3, 1000])
async def test_the_read_model_is_the_fold_of_the_log_however_it_is_batched(
    database_url: str, batch: int
) -> None:
    sim = a_story_with_a_retry_and_a_regenerated_asset()
    engine = make_engine(database_url)
    projection = SqlProjection(engine)
    try:
        for i in range(0, len(sim.commits), batch):
            outcomes = await projection.apply_batch(sim.commits[i : i + batch])
            assert set(outcomes) == {Applied.APPLIED}
    finally:
        projection.close()
        await engine.dispose()
    projected, step_rows = await read_back(database_url, sim.job_id)
    assert projected == sim.replay()
    assert list(projected.steps) == ["story", "cover", "narration", "audio", "thumbnail", "package"]
    assert step_rows == 6


async def test_duplicates_and_gaps_are_told_apart(database_url: str) -> None:
    sim = a_story_with_a_retry_and_a_regenerated_asset()
    engine = make_engine(database_url)
    projection = SqlProjection(engine)
    try:
        first, second, third = sim.commits[:3]
        assert await projection.apply_batch([first, third]) == [Applied.APPLIED, Applied.OUT_OF_ORDER]
        assert await projection.apply_batch([first, second, third]) == [
            Applied.DUPLICATE,
            Applied.APPLIED,
            Applied.APPLIED,
        ]
        # A restarted projector (no cache) goes on from the rows.
        fresh = SqlProjection(engine)
        try:
            assert await fresh.apply_batch(sim.commits[2:]) == [Applied.DUPLICATE] + [Applied.APPLIED] * (
                len(sim.commits) - 3
            )
        finally:
            fresh.close()
    finally:
        projection.close()
        await engine.dispose()
    projected, _ = await read_back(database_url, sim.job_id)
    assert projected == sim.replay()


async def test_a_row_written_before_steps_had_their_table_moves_them_there(database_url: str) -> None:
    sim = a_story_with_a_retry_and_a_regenerated_asset()
    half = len(sim.commits) // 2
    state = Sim(commits=sim.commits[:half]).replay()
    assert state is not None
    engine = make_engine(database_url)
    async with engine.begin() as conn:  # as the projector wrote rows before migration 0004
        await conn.execute(
            sa.insert(jobs).values(
                id=state.id, tenant=state.tenant, kind=state.kind, title=state.title, status=state.status,
                priority=state.priority, tags=state.tags, created_at=state.created_at,
                updated_at=state.updated_at, last_seq=state.version, next_deadline_at=state.next_deadline,
                snapshot=msgspec.json.encode(state).decode(), deleted=False,
            )
        )  # fmt: skip
    assert (await read_back(database_url, sim.job_id))[0] == state, "read as it is"
    projection = SqlProjection(engine)
    try:
        assert set(await projection.apply_batch(sim.commits[half : half + 1])) == {Applied.APPLIED}
    finally:
        projection.close()
        await engine.dispose()
    projected, step_rows = await read_back(database_url, sim.job_id)
    assert projected == Sim(commits=sim.commits[: half + 1]).replay()
    assert step_rows == 6, "every step now has its row, not only those the commit changed"


async def test_a_commit_that_cannot_be_projected_holds_back_no_other(database_url: str) -> None:
    good = a_story_with_a_retry_and_a_regenerated_asset()
    other = Sim(job_id="job_broken")
    other.send(submit())
    broken_commit = msgspec.structs.replace(other.commits[0][0], events=good.commits[1][0].events)
    batch = [good.commits[0], (broken_commit, 99), good.commits[1]]  # not a JobSubmitted first

    def msg(seq: int) -> Msg:
        reply = f"$JS.ACK.ATELIER_JOBS.orchestrator-projector.1.{seq}.{seq}.1700000000000000000.0"
        return Msg(_client=None, subject="atelier.job.x", reply=reply, data=b"")  # type: ignore[arg-type]

    notices: list[Projected] = []

    async def notify(projected: Projected) -> None:
        notices.append(projected)

    engine = make_engine(database_url)
    projection = SqlProjection(engine)
    handle = on_commits_project(projection, notify)
    try:
        msgs = [msg(seq) for _, seq in batch]
        for m, (commit, _) in zip(msgs, batch, strict=True):
            m.data = encode(commit)
        outcomes = await handle(msgs)
    finally:
        projection.close()
        await engine.dispose()
    assert outcomes[0] is None
    assert outcomes[2] is None, "both good commits applied"
    assert isinstance(outcomes[1], Retry), "only the broken one comes back"
    assert notices == [Projected(jobs={good.job_id: good.commits[1][1]})]


async def test_two_projectors_on_one_database_correct_each_others_caches(database_url: str) -> None:
    """Each projector trusts its cache of where a job stands; a row another one moved is found
    out by the write, and the batch is written again after asking SQL: nothing lost, nothing
    applied twice, duplicates still told."""
    sim = a_story_with_a_retry_and_a_regenerated_asset()
    commits = sim.commits
    assert len(commits) >= 4
    engine = make_engine(database_url)
    a, b = SqlProjection(engine), SqlProjection(engine)
    try:
        assert await a.apply_batch(commits[:2]) == [Applied.APPLIED] * 2  # a's cache: the 2nd
        assert await b.apply_batch([commits[2]]) == [Applied.APPLIED]  # b moved the row on
        # a's cache says the row is at the 2nd commit: the 3rd looks new to it, the 4th early.
        assert await a.apply_batch([commits[2]]) == [Applied.DUPLICATE]
        assert await a.apply_batch([commits[3]]) == [Applied.APPLIED]
        # b's cache is now behind: its next commit finds the row moved.
        assert await b.apply_batch([commits[4]]) == [Applied.APPLIED]
        # A first commit that b already inserted is a duplicate to a new projector too.
        assert await SqlProjection(engine).apply_batch([commits[0]]) == [Applied.DUPLICATE]
        for i in range(5, len(commits)):
            assert await (a, b)[i % 2].apply_batch([commits[i]]) == [Applied.APPLIED]
        async with engine.connect() as conn:
            events = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(job_events)
                    .where(job_events.c.job_id == sim.job_id)
                )
            ).scalar_one()
    finally:
        a.close()
        b.close()
        await engine.dispose()
    projected, _ = await read_back(database_url, sim.job_id)
    assert projected == sim.replay()
    assert events == sum(len(c.events) for c, _ in commits), "every event once"


@contextlib.asynccontextmanager
async def two_commits_projected(database_url: str) -> AsyncIterator[tuple[Sim, AsyncEngine, SqlProjection]]:
    """A story job's first two commits projected; the projector that did it, still running."""
    sim = a_story_with_a_retry_and_a_regenerated_asset()
    engine = make_engine(database_url)
    projection = SqlProjection(engine)
    try:
        assert await projection.apply_batch(sim.commits[:2]) == [Applied.APPLIED] * 2
        yield sim, engine, projection
    finally:
        projection.close()
        await engine.dispose()


async def test_a_row_gone_under_a_projector_that_trusts_its_cache_is_found_out(database_url: str) -> None:
    """The cache says where the row stands; the row was removed meanwhile (by hand, or a purge):
    the update that finds no row rolls the batch back, and asking SQL gives the answer a
    projector without a cache gives."""
    async with two_commits_projected(database_url) as (sim, engine, projection):
        async with engine.begin() as conn:
            await conn.execute(sa.delete(job_steps).where(job_steps.c.job_id == sim.job_id))
            await conn.execute(sa.delete(job_events).where(job_events.c.job_id == sim.job_id))
            await conn.execute(sa.delete(jobs).where(jobs.c.id == sim.job_id))
        assert await projection.apply_batch([sim.commits[2]]) == [Applied.OUT_OF_ORDER]
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(sa.func.count()).select_from(job_events))).scalar_one()
        assert rows == 0, "nothing of the batch was kept"


async def test_a_derived_column_an_older_version_left_wrong_is_mended_by_the_next_commit(
    database_url: str,
) -> None:
    """``next_deadline_at`` is computed from the snapshot: a row written before the column existed
    (NULL, migration 0002) or by another version of the rule is mended though it did not change."""
    async with two_commits_projected(database_url) as (sim, engine, projection):
        async with engine.begin() as conn:
            await conn.execute(sa.update(jobs).where(jobs.c.id == sim.job_id).values(next_deadline_at=None))
        assert await projection.apply_batch([sim.commits[2]]) == [Applied.APPLIED]
        async with engine.connect() as conn:
            stored = (
                await conn.execute(sa.select(jobs.c.next_deadline_at).where(jobs.c.id == sim.job_id))
            ).scalar_one()
    projected, _ = await read_back(database_url, sim.job_id)
    assert projected.next_deadline is not None, "the job has a deadline ahead"
    assert stored is not None
    assert stored.replace(tzinfo=UTC) == projected.next_deadline
