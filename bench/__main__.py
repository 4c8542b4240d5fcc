"""Core figures of the event log, measured in one run on this machine so ratios compare.

python -m bench            # or: make bench
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from atelier_contracts.commands import SubmitJob
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.events import (
    Commit,
    EventRecord,
    JobEvent,
    JobSubmitted,
    StepDispatched,
    StepSpec,
    StepsPlanned,
    StepSucceeded,
)
from atelier_contracts.ids import new_job_id, new_message_id
from atelier_contracts.readmodel import make_engine
from atelier_contracts.runtime.nats import connect, ensure_streams
from atelier_contracts.subjects import (
    EXPECTED_LAST_SUBJECT_SEQ_HEADER,
    JOBS_STREAM,
    MSG_ID_HEADER,
    job_subject,
)
from atelier_devstack.natsserver import start_nats
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.adapters.migrate import upgrade
from atelier_orchestrator.adapters.projection import SqlProjection
from atelier_orchestrator.adapters.replay import read_log
from atelier_orchestrator.app.handlers import JobService
from bench.e2e import rebuild_rate

N = int(os.environ.get("BENCH_N", "2000"))


def submit_envelope(job_id: str) -> Envelope[SubmitJob]:
    msg_id = new_message_id()
    body = SubmitJob(kind="story", title="bench", input={"prompt": "a bench story"})
    return Envelope(
        msg_id=msg_id, job_id=job_id, tenant="bench", correlation_id=msg_id, causation_id=None,
        sent_at=datetime.now(UTC), body=body,
    )  # fmt: skip


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    server = start_nats(tmp / "nats")
    try:
        await run(server.url, tmp)
    finally:
        server.stop()


async def run(nats_url: str, tmp: Path) -> None:
    nc = await connect(nats_url, "bench")
    js = nc.jetstream()
    await ensure_streams(js)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, N={N}")

    # 1. Raw conditional publish, awaiting each ack: the floor for any append. (On a stream of its
    # own, so the job log holds only real jobs for the rebuild below.)
    await js.add_stream(name="BENCH_RAW_LOG", subjects=["bench.log.>"])
    t0 = time.perf_counter()
    for _ in range(N):
        job_id = new_job_id()
        await js.publish(
            f"bench.log.{job_id}", encode_commit_like(job_id, 0),
            headers={MSG_ID_HEADER: new_message_id(), EXPECTED_LAST_SUBJECT_SEQ_HEADER: "0"},
        )  # fmt: skip
    raw = time.perf_counter() - t0
    print(f"raw js.publish with expected-seq, one at a time: {rate(N, raw)}")

    # 2. JobService: load (miss) + decide + append of a first commit, one at a time.
    service = JobService(JetStreamEventStore(js))
    ids = [new_job_id() for _ in range(N)]
    t0 = time.perf_counter()
    for job_id in ids:
        await service.handle(submit_envelope(job_id))  # type: ignore[arg-type]
    handled = time.perf_counter() - t0
    print(f"SubmitJob decided and appended, one at a time: {rate(N, handled)} ({raw / handled:.2f}x raw)")

    # 3. The same with 16 in flight (the orchestrator's default concurrency).
    ids2 = [new_job_id() for _ in range(N)]
    sem = asyncio.Semaphore(16)

    async def one(job_id: str) -> None:
        async with sem:
            await service.handle(submit_envelope(job_id))  # type: ignore[arg-type]

    t0 = time.perf_counter()
    await asyncio.gather(*(one(j) for j in ids2))
    conc = time.perf_counter() - t0
    print(f"SubmitJob decided and appended, 16 in flight: {rate(N, conc)} ({raw / conc:.2f}x raw)")

    # 4. Loading a job from the log without the cache, by its number of commits.
    store = JetStreamEventStore(js, cache_size=0)
    for commits in (1, 10, 50):
        job_id = ids[0] if commits == 1 else new_job_id()
        if commits > 1:
            for i in range(commits):
                await js.publish(job_subject(job_id), encode_commit_like(job_id, i))
        samples = []
        for _ in range(30):
            t0 = time.perf_counter()
            if commits == 1:
                await store.load(job_id)
            else:
                async for _ in store.read(job_id):
                    pass
            samples.append(time.perf_counter() - t0)
        p50_ms = statistics.median(samples) * 1e3
        print(f"read a job of {commits:>2} commits (direct get per commit): p50 {p50_ms:.2f} ms")
        if commits > 1:  # not a job the rebuild could fold: gone again
            await js.purge_stream(JOBS_STREAM, subject=job_subject(job_id))

    # 5. Projection into SQLite, one transaction per commit.
    db = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, db)
    engine = make_engine(db)
    projection = SqlProjection(engine)
    wanted = set(ids)
    log = [(c, s) async for c, s in read_log(nc) if c.job_id in wanted]
    half = len(log) // 2
    t0 = time.perf_counter()
    for commit, seq in log[:half]:
        await projection.apply_batch([(commit, seq)])
    proj = time.perf_counter() - t0
    print(f"projection into SQLite, one transaction per commit: {rate(half, proj)}")
    t0 = time.perf_counter()
    for i in range(half, len(log), 100):
        await projection.apply_batch(log[i : i + 100])
    proj = time.perf_counter() - t0
    print(f"projection into SQLite, 100 commits per transaction: {rate(len(log) - half, proj)}")
    projection.close()
    await engine.dispose()

    # 6. The projector's cost per commit by the size of the job: 5 steps against 150, the same
    # commits (they dispatch and finish the job's first five steps in turn), so that only the
    # job's size differs. In a batch of 100, commits that touch the same step write its row once:
    # commits spread over 50 steps write 10 times the rows, a cost of the work, not of the size,
    # shown apart ("150 steps, spread").
    single: dict[int, float] = {}  # cost per commit, one per transaction, by steps
    for one_per_transaction in (True, False):
        costs: dict[int | str, float] = {}
        for steps, touched in ((5, 5), (150, 5), (150, 150)):
            engine = make_engine(db)
            projection = SqlProjection(engine)
            fan_out = fan_out_commits(new_job_id(), steps, count=600, touched=touched)
            t0 = time.perf_counter()
            if one_per_transaction:
                for item in fan_out:
                    await projection.apply_batch([item])
            else:
                for i in range(0, len(fan_out), 100):
                    await projection.apply_batch(fan_out[i : i + 100])
            costs[steps if touched == 5 else "spread"] = (time.perf_counter() - t0) / len(fan_out)
            projection.close()
            await engine.dispose()
        if one_per_transaction:
            single = {5: costs[5], 150: costs[150]}
        how = "one commit per transaction" if one_per_transaction else "100 commits per transaction"
        print(
            f"projector cost per commit, {how}: 5 steps {costs[5] * 1e6:.0f} µs, "
            f"150 steps {costs[150] * 1e6:.0f} µs ({costs[150] / costs[5]:.2f}x); "
            f"150 steps, spread over all {costs['spread'] * 1e6:.0f} µs ({costs['spread'] / costs[5]:.2f}x)"
        )

    # 6b. A job that grows to 150 steps by a plan (StepsPlanned, 50 steps a commit), as a shot
    # list fans out: the plan's commits, then the same dispatch/succeed commits as above.
    engine = make_engine(db)
    projection = SqlProjection(engine)
    planned = fan_out_commits(new_job_id(), steps=150, count=600, by_plan=True)
    plan_commits, rest = planned[:4], planned[4:]
    t0 = time.perf_counter()
    for item in plan_commits:
        await projection.apply_batch([item])
    plan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for item in rest:
        await projection.apply_batch([item])
    rest_s = time.perf_counter() - t0
    projection.close()
    await engine.dispose()
    print(
        f"a job planned to 150 steps: the plan (submit + 3 commits of 50 steps) {plan_s * 1e3:.1f} ms; "
        f"then {rest_s / len(rest) * 1e6:.0f} µs a commit, one per transaction "
        f"({rest_s / len(rest) / single[5]:.2f}x a 5-step job's)"
    )

    # 7. Rebuild of every read model from the whole log (all of it JobSubmitted commits: the
    # heaviest kind to fold).
    await rebuild_rate(nc, tmp / "rebuilt.db", N / raw)

    await nc.close()


def fan_out_commits(
    job_id: str, steps: int, count: int, by_plan: bool = False, touched: int | None = None
) -> list[tuple[Commit, int]]:
    """A job of ``steps`` steps, then ``count`` commits that each dispatch or finish one of them,
    the first ``touched`` (all, unless given) in turn. ``by_plan``: the job starts with one
    planning step, whose plan adds the steps in commits of 50."""
    at = datetime.now(UTC)
    specs = [StepSpec(name=f"shot{i:03d}", capability="image.generate") for i in range(steps)]
    if by_plan:
        shots = StepSpec(name="shots", capability="text.generate", planner="shots")
        first = JobSubmitted(kind="bench", title="planned", input={}, priority=0, tags=[], steps=[shots])
        events: list[list[JobEvent]] = [[first]]
        events += [[StepsPlanned(by="shots", steps=specs[i : i + 50])] for i in range(0, steps, 50)]
    else:
        first = JobSubmitted(kind="bench", title="fan-out", input={}, priority=0, tags=[], steps=specs)
        events = [[first]]
    for i in range(count - 1):
        name = specs[(i // 2) % (touched or steps)].name
        work = f"{job_id}.{name}.{i}"
        if i % 2 == 0:
            events.append(
                [StepDispatched(step=name, attempt=i + 1, work_id=work, capability="image.generate")]
            )
        else:
            done = StepSucceeded(
                step=name,
                attempt=i,
                work_id=work,
                outputs=[],
                provider="p",
                model="m",
                started_at=at,
                finished_at=at,
            )
            events.append([done])
    return [
        (
            Commit(
                commit_id=f"{job_id}-c{seq}",
                job_id=job_id,
                tenant="bench",
                causation_id=f"m{seq}",
                correlation_id="bench",
                prev_seq=seq - 1,
                at=at,
                events=[EventRecord(event_id=f"{job_id}-c{seq}:{k}", event=e) for k, e in enumerate(evs)],
            ),
            seq,
        )
        for seq, evs in enumerate(events, start=1)
    ]


def encode_commit_like(job_id: str, i: int) -> bytes:
    """A real single-event commit, so reads decode what the orchestrator writes."""
    from atelier_contracts.events import JobStarted

    commit = Commit(
        commit_id=f"b{i}", job_id=job_id, tenant="bench", causation_id="b", correlation_id="b",
        prev_seq=0, at=datetime.now(UTC), events=[EventRecord(event_id=f"b{i}:0", event=JobStarted())],
    )  # fmt: skip
    return encode(commit)


if __name__ == "__main__":
    asyncio.run(main())
