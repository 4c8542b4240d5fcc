"""End to end through the HTTP API, beside a raw JetStream round trip measured in the same run.

python -m bench.e2e        # or: make bench. BENCH_N sets the burst size (default 2000).

It starts the whole platform (nats-server from the wheel, SQLite, the five services) in a temp
directory, and measures single-step ``task`` jobs on the offline ``text.generate``:

- the raw floor: publish → a worker process → publish the result, one at a time (its rate, its
  CPU a round trip) and in an open loop at ``BENCH_RATE`` (its latency);
- bursts of N jobs submitted one at a time while work runs, and with 256 submits in flight,
  until the read model (so the API) shows every one succeeded, with the CPU each process spent
  per job;
- an open loop at ``BENCH_RATE`` jobs/s (default 200) on a fixed schedule: latency from each
  job's scheduled submit time to ``GET /v1/jobs/{id}`` showing it succeeded;
- one job alone at priorities 0, 5 and 8: submit → succeeded, and the POST itself.

A job's end is the ``JobSucceeded`` commit seen on its log subject; the open loop then also
asks the API. Every figure is printed with its ratio to the raw floor of the same run: rates to
its rate, latencies to one round trip's time (the open loop's to the raw open loop's), CPU to
what a raw round trip costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats
import sqlalchemy as sa
from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.readmodel import jobs, make_engine
from atelier_contracts.runtime import service
from atelier_contracts.snapshot import projected_decoder
from atelier_contracts.subjects import PROJECTED_SUBJECT
from atelier_devstack.stack import Stack
from atelier_orchestrator.adapters.migrate import upgrade
from atelier_orchestrator.adapters.replay import read_log, rebuild
from bench import raw_worker
from bench.http import LeanClient

N = int(os.environ.get("BENCH_N", "2000"))
RATE = float(os.environ.get("BENCH_RATE", "200"))
OPEN_S = float(os.environ.get("BENCH_OPEN_S", "10"))
ALONE = int(os.environ.get("BENCH_ALONE", "20"))
IN_FLIGHT = 256
TICKS = os.sysconf("SC_CLK_TCK")


class _Event(msgspec.Struct):
    type: str = ""


class _Record(msgspec.Struct):
    event: _Event


class _Commit(msgspec.Struct):
    job_id: str
    events: list[_Record]


_commit = msgspec.json.Decoder(_Commit)
_END = {"job_succeeded": "succeeded", "job_failed": "failed", "job_cancelled": "cancelled"}


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


def job_body(priority: int = 0) -> dict[str, object]:
    return {
        "kind": "task",
        "title": "bench",
        "priority": priority,
        "input": {"capability": "text.generate", "prompt": "a trivial job"},
    }


@dataclass
class Watcher:
    """Sees every job's end on its log subject (a core subscription to the log's subjects)."""

    ended: dict[str, tuple[float, str]] = field(default_factory=dict)
    projected_lag: list[float] = field(default_factory=list)
    waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    count: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _lag_done: set[str] = field(default_factory=set)

    async def on_commit(self, msg: Msg) -> None:
        commit = _commit.decode(msg.data)
        for record in commit.events:
            status = _END.get(record.event.type)
            if status is None:
                continue
            now = time.perf_counter()
            self.ended[commit.job_id] = (now, status)
            self.count += 1
            self.changed.set()
            waiter = self.waiters.pop(commit.job_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)

    async def on_projected(self, msg: Msg) -> None:
        now = time.perf_counter()
        for job_id in projected_decoder.decode(msg.data).jobs:
            ended = self.ended.get(job_id)
            if ended is not None and job_id not in self._lag_done:
                self._lag_done.add(job_id)
                self.projected_lag.append(now - ended[0])

    def wait(self, job_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if job_id in self.ended:
            future.set_result(self.ended[job_id][0])
        else:
            self.waiters[job_id] = future
        return future

    async def until(self, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def cpu_meter(pids: dict[str, int], out: dict[str, float]) -> Iterator[None]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    bench0 = time.process_time()
    yield
    for name, pid in pids.items():
        out[name] = cpu_seconds(pid) - before[name]
    out["bench client"] = time.process_time() - bench0


@dataclass
class Raw:
    """The raw floor of this run: the rate one at a time, what one round trip costs in CPU
    (worker, nats-server and publisher together), and its latency in an open loop."""

    rate: float
    cpu_s: float
    open_loop: list[float]

    @property
    def round_trip_s(self) -> float:
        return 1 / self.rate


async def raw_floor(nc: Client, url: str, nats_pid: int, n: int, rate: float, seconds: float) -> Raw:
    """publish → worker process → publish result: ``n`` one at a time, then an open loop at
    ``rate`` for ``seconds``, each message's latency from its scheduled time to its result."""
    js = nc.jetstream()
    await js.add_stream(name=raw_worker.STREAM, subjects=["bench.raw.>"])
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before the clock runs
        [sys.executable, "-m", "bench.raw_worker", url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        await asyncio.to_thread(worker.stdout.readline)
        done = asyncio.Event()
        arrived: dict[int, float] = {}
        expected = n

        async def on_result(msg: Msg) -> None:
            arrived[int(msg.data)] = time.perf_counter()
            if len(arrived) == expected:
                done.set()

        sub = await nc.subscribe(raw_worker.RESULT, cb=on_result)
        cpu: dict[str, float] = {}
        with cpu_meter({"worker": worker.pid, "nats-server": nats_pid}, cpu):
            t0 = time.perf_counter()
            for i in range(n):
                await js.publish(raw_worker.WORK, str(i).encode())
            await asyncio.wait_for(done.wait(), 120)
            elapsed = time.perf_counter() - t0
        total = int(rate * seconds)
        done.clear()
        arrived.clear()
        expected = total
        start = time.perf_counter() + 0.05
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await js.publish(raw_worker.WORK, str(i).encode())
        await asyncio.wait_for(done.wait(), 120)
        await sub.unsubscribe()
        latencies = [arrived[i] - (start + i / rate) for i in range(total)]
        return Raw(rate=n / elapsed, cpu_s=sum(cpu.values()) / n, open_loop=latencies)
    finally:
        worker.terminate()
        worker.wait()


async def submit(client: LeanClient, priority: int = 0) -> tuple[str, float]:
    t0 = time.perf_counter()
    status, body = await client.request("POST", "/v1/jobs", job_body(priority))
    elapsed = time.perf_counter() - t0
    if status != 202:
        raise RuntimeError(f"submit answered {status}: {body}")
    return str(body["id"]), elapsed


async def projected_successes(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "succeeded")
        return int((await conn.execute(query)).scalar_one())


async def burst(client: LeanClient, watcher: Watcher, engine: AsyncEngine, n: int, in_flight: int) -> float:
    """Jobs/s from the first submit until the read model shows the last job succeeded (so the
    API does); submits keep ``in_flight`` open."""
    start_count = watcher.count
    start_projected = await projected_successes(engine)
    sem = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with sem:
            await submit(client)

    t0 = time.perf_counter()
    if in_flight == 1:
        for _ in range(n):
            await submit(client)
    else:
        await asyncio.gather(*(one() for _ in range(n)))
    await watcher.until(start_count + n, within=max(60.0, n / 5))
    async with asyncio.timeout(max(60.0, n / 5)):
        while await projected_successes(engine) < start_projected + n:  # noqa: ASYNC110 - SQL has no event
            await asyncio.sleep(0.005)
    return n / (time.perf_counter() - t0)


async def open_loop(
    client: LeanClient, watcher: Watcher, rate: float, seconds: float
) -> dict[str, list[float]]:
    """Submits on a fixed schedule; latency from the scheduled time to the API showing the end."""
    total = int(rate * seconds)
    latencies: list[float] = []
    in_log: list[float] = []
    posts: list[float] = []
    gets: list[float] = []
    lagging = 0
    t0 = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        nonlocal lagging
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lagging += 1
        job_id, post_s = await submit(client)
        posts.append(post_s)
        in_log.append(await asyncio.wait_for(watcher.wait(job_id), 120) - scheduled)
        while True:  # the result is observable once the API shows it
            g0 = time.perf_counter()
            _, job = await client.request("GET", f"/v1/jobs/{job_id}")
            gets.append(time.perf_counter() - g0)
            if job["status"] == "succeeded":
                break
            await asyncio.sleep(0.001)
        latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(one(i) for i in range(total)))
    print(
        f"open loop: {len(gets) / max(total, 1):.2f} GETs a job, "
        f"GET p50 {ms(percentile(gets, 0.5))}, p95 {ms(percentile(gets, 0.95))}"
    )
    return {"latency": latencies, "in_log": in_log, "post": posts, "late_starts": [float(lagging)]}


async def alone(
    client: LeanClient, watcher: Watcher, priority: int, n: int
) -> tuple[list[float], list[float]]:
    ends, posts = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        job_id, post_s = await submit(client, priority)
        ended = await asyncio.wait_for(watcher.wait(job_id), 30)
        ends.append(ended - t0)
        posts.append(post_s)
    return ends, posts


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


async def run(stack: Stack) -> None:
    url = f"nats://127.0.0.1:{stack.nats_port}"
    nc = await nats.connect(url)
    watcher = Watcher()
    await nc.subscribe("atelier.job.>", cb=watcher.on_commit)
    await nc.subscribe(PROJECTED_SUBJECT, cb=watcher.on_projected)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, N={N}")

    pids = {name: proc.pid for name, proc in stack.procs.items()}
    assert stack.nats is not None
    assert stack.nats.proc is not None
    pids["nats-server"] = stack.nats.proc.pid
    floor = await raw_floor(nc, url, pids["nats-server"], N, RATE, min(OPEN_S, 3.0))
    raw = floor.rate
    raw_p50, raw_p95 = percentile(floor.open_loop, 0.5), percentile(floor.open_loop, 0.95)
    print(
        f"raw JetStream round trip (publish → worker → result), one at a time: {raw:,.0f}/s  1.00; "
        f"one round trip {ms(floor.round_trip_s)}, CPU {ms(floor.cpu_s)} "
        f"(worker, nats-server and publisher); open loop at {RATE:.0f}/s: "
        f"p50 {ms(raw_p50)}, p95 {ms(raw_p95)}"
    )

    def row(label: str, rate: float) -> None:
        print(f"{label}: {rate:,.0f} jobs/s  {rate / raw:.3f}x raw")

    def rt(seconds: float) -> str:
        """A latency, and as how many raw round trips (one at a time) it lasts."""
        return f"{ms(seconds)} ({seconds / floor.round_trip_s:.0f}x raw)"

    def cpu_line(cpu: dict[str, float], n: int) -> str:
        per_job = {name: s / n for name, s in cpu.items()}
        total = sum(per_job.values())
        each = ", ".join(f"{name} {ms(s)}" for name, s in per_job.items())
        return f"{each}; all {ms(total)} ({total / floor.cpu_s:.1f}x a raw round trip's)"

    client = LeanClient("127.0.0.1", stack.ports["gateway"], IN_FLIGHT)
    engine = make_engine(stack.database_url)
    try:
        await burst(client, watcher, engine, 50, 1)  # warm-up: connections, caches, JIT-free but lazy imports
        cpu: dict[str, float] = {}
        with cpu_meter(pids, cpu):
            one_at_a_time = await burst(client, watcher, engine, N, 1)
        row(f"burst of {N}, submitted one at a time", one_at_a_time)
        print("CPU per job: " + cpu_line(cpu, N))
        row(
            f"burst of {N}, {IN_FLIGHT} submits in flight", await burst(client, watcher, engine, N, IN_FLIGHT)
        )

        watcher.projected_lag.clear()
        open_cpu: dict[str, float] = {}
        with cpu_meter(pids, open_cpu):
            loop = await open_loop(client, watcher, RATE, OPEN_S)
        print(
            "open loop CPU (cores busy): "
            + ", ".join(f"{k} {v / OPEN_S:.2f}" for k, v in open_cpu.items())
            + "; a job: "
            + cpu_line(open_cpu, int(RATE * OPEN_S))
        )
        lag = watcher.projected_lag
        print(
            f"open loop: JobSucceeded → projected "
            f"p50 {rt(percentile(lag, 0.5))}, p95 {rt(percentile(lag, 0.95))}"
        )
        lat, post, log_lat = loop["latency"], loop["post"], loop["in_log"]
        p50, p95 = percentile(lat, 0.5), percentile(lat, 0.95)
        print(
            f"open loop at {RATE:.0f}/s for {OPEN_S:.0f} s: scheduled submit → API shows succeeded "
            f"p50 {ms(p50)} ({p50 / raw_p50:.0f}x raw's open loop), p95 {ms(p95)} ({p95 / raw_p95:.0f}x), "
            f"p99 {ms(percentile(lat, 0.99))} (JobSucceeded in the log: "
            f"p50 {ms(percentile(log_lat, 0.5))}, p95 {ms(percentile(log_lat, 0.95))}); "
            f"POST p50 {rt(percentile(post, 0.5))}, p95 {rt(percentile(post, 0.95))}; "
            f"submits that started late: {int(loop['late_starts'][0])}"
        )
        for priority in (0, 5, 8):
            ends, posts = await alone(client, watcher, priority, ALONE)
            print(
                f"one job alone, priority {priority}: submit → succeeded p50 {rt(statistics.median(ends))}, "
                f"p95 {rt(percentile(ends, 0.95))}; POST p50 {rt(statistics.median(posts))}, "
                f"p95 {rt(percentile(posts, 0.95))}"
            )
    finally:
        await client.close()
        await engine.dispose()
    failed = sum(1 for _, status in watcher.ended.values() if status != "succeeded")
    print(f"jobs ended: {len(watcher.ended)}, not succeeded: {failed}")
    await rebuild_rate(nc, stack.state_dir / "rebuilt.db", raw)
    await nc.close()


async def rebuild_rate(nc: Client, path: Path, raw: float) -> None:
    """Every read model rebuilt from this run's log into a fresh database (what `rebuild` does)."""
    events = 0
    async for commit, _ in read_log(nc):
        events += len(commit.events)
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    try:
        t0 = time.perf_counter()
        commits = await rebuild(nc, engine)
        took = time.perf_counter() - t0
    finally:
        await engine.dispose()
    print(
        f"rebuild of this run's log: {commits:,} commits, {events:,} events in {took:.1f} s: "
        f"{events / took:,.0f} events/s ({events / took / raw:.1f}x raw)"
    )


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="atelier-bench-e2e-"))
    stack = Stack.with_free_ports(
        tmp / "state", ATELIER_LOG_LEVEL=os.environ.get("ATELIER_LOG_LEVEL", "INFO")
    )
    try:
        stack.start()
        service.run(run(stack))  # the loop and GC settings the services run with
    finally:
        stack.stop()
        if not os.environ.get("BENCH_KEEP"):  # BENCH_KEEP=1 keeps the logs and the database
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
