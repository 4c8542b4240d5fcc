"""1,000 concurrent SSE clients on one gateway process: memory per client, and the delay from an
event's commit to its arrival at the clients.

python -m bench.streams     # or: make bench. BENCH_CLIENTS sets the clients (default 1000).

It starts nats-server and one gateway process (SQLite), writes each job's first commit to the
log itself (the orchestrator's part is not what is measured), and opens the clients with a raw
socket reader (httpx would spend more CPU than the gateway). Two shapes:

- each client follows its own job (1,000 feeds, a subscription pair each): one commit appended
  to every job, one after another, and each client's delay from its job's append to the event;
- every client follows one job (one feed fanned out 1,000 times): one commit, its delay at each.

Memory is the gateway's resident set before and after the clients connected, over the clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from nats.js import JetStreamContext

from atelier_contracts.envelope import encode
from atelier_contracts.events import Commit, EventRecord, JobEvent, JobStarted, JobSubmitted
from atelier_contracts.ids import new_job_id, new_message_id
from atelier_contracts.runtime.nats import connect, ensure_streams
from atelier_contracts.subjects import EXPECTED_LAST_SUBJECT_SEQ_HEADER, MSG_ID_HEADER, job_subject
from atelier_devstack.natsserver import start_nats
from atelier_devstack.stack import Stack

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "1000"))


class Client:
    """One SSE connection: when each ``data:`` line arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.first = asyncio.Event()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self, port: int, job_id: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /v1/jobs/{job_id}/stream HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        try:
            while line := await reader.readline():
                if line.startswith(b"data:"):
                    self.arrivals.append(time.perf_counter())
                    self.first.set()
                    self.changed.set()
        finally:
            writer.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def append(js: JetStreamContext, job_id: str, prev: int, event: JobEvent) -> int:
    commit = Commit(
        commit_id=new_message_id(), job_id=job_id, tenant="default", causation_id="bench",
        correlation_id="bench", prev_seq=prev, at=datetime.now(UTC),
        events=[EventRecord(event_id=f"{new_message_id()}:0", event=event)],
    )  # fmt: skip
    headers = {MSG_ID_HEADER: commit.commit_id, EXPECTED_LAST_SUBJECT_SEQ_HEADER: str(prev)}
    ack = await js.publish(job_subject(job_id), encode(commit), headers=headers)
    return ack.seq


def submitted() -> JobSubmitted:
    return JobSubmitted(kind="task", title="bench", input={}, priority=0, tags=[], steps=[])


def percentiles(delays: list[float]) -> tuple[float, float]:
    delays = sorted(delays)
    return statistics.median(delays), delays[int(len(delays) * 0.95)]


async def wait_all(clients: list[Client], count: int, within: float = 120) -> None:
    deadline = time.monotonic() + within
    for c in clients:
        while len(c.arrivals) < count:
            c.changed.clear()
            if len(c.arrivals) >= count:
                break
            await asyncio.wait_for(c.changed.wait(), max(deadline - time.monotonic(), 0.01))


async def measure(stack: Stack) -> None:
    port = stack.ports["gateway"]
    pid = stack.procs["gateway"].pid
    nc = await connect(f"nats://127.0.0.1:{stack.nats_port}", "bench-streams")
    js = nc.jetstream()
    await ensure_streams(js)
    try:
        jobs = [new_job_id() for _ in range(CLIENTS)]
        heads = {j: await append(js, j, 0, submitted()) for j in jobs}
        idle = rss_kib(pid)

        # -- each client its own job ------------------------------------------------------------
        clients = [Client() for _ in jobs]
        t0 = time.perf_counter()
        opening = asyncio.Semaphore(64)

        async def open_one(c: Client, job_id: str) -> None:
            async with opening:
                c.task = asyncio.create_task(c.run(port, job_id))
                await asyncio.wait_for(c.first.wait(), 60)

        await asyncio.gather(*(open_one(c, j) for c, j in zip(clients, jobs, strict=True)))
        opened_s = time.perf_counter() - t0
        connected = rss_kib(pid)
        sent: dict[str, float] = {}
        for job_id in jobs:
            sent[job_id] = time.perf_counter()
            heads[job_id] = await append(js, job_id, heads[job_id], JobStarted())
        await wait_all(clients, 2)
        own = [c.arrivals[1] - sent[j] for c, j in zip(clients, jobs, strict=True)]
        for c in clients:
            assert c.task is not None
            c.task.cancel()
        await asyncio.gather(*(c.task for c in clients if c.task), return_exceptions=True)

        # -- every client one job ------------------------------------------------------------
        shared = jobs[0]
        fans = [Client() for _ in jobs]
        await asyncio.gather(*(open_one(c, shared) for c in fans))
        t_sent = time.perf_counter()
        await append(js, shared, heads[shared], JobStarted())
        await wait_all(fans, 3)  # the backlog's two events, then this one
        fanned = [c.arrivals[2] - t_sent for c in fans]
        for c in fans:
            assert c.task is not None
            c.task.cancel()
        await asyncio.gather(*(c.task for c in fans if c.task), return_exceptions=True)
    finally:
        await nc.close()

    o50, o95 = percentiles(own)
    f50, f95 = percentiles(fanned)
    print(
        f"{CLIENTS} clients opened in {opened_s:.1f} s ({CLIENTS / opened_s:,.0f}/s, each with its backlog)"
    )
    print(
        f"gateway RSS: {idle / 1024:.0f} MiB idle, {connected / 1024:.0f} MiB with {CLIENTS} streams: "
        f"{(connected - idle) / CLIENTS:.0f} KiB a client"
    )
    print(
        f"a commit on each of {CLIENTS} jobs → its client: p50 {o50 * 1000:.1f} ms, p95 {o95 * 1000:.1f} ms"
    )
    print(f"one commit → {CLIENTS} clients of its job: p50 {f50 * 1000:.1f} ms, p95 {f95 * 1000:.1f} ms")


@contextlib.contextmanager
def gateway_only(tmp: Path) -> Iterator[Stack]:
    stack = Stack.with_free_ports(tmp)
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    stack.nats = start_nats(tmp / "nats", 0, tmp / "logs" / "nats.log")
    stack.nats_port = stack.nats.port
    try:
        stack.migrate()
        stack.start_service("gateway")
        stack.wait_healthy("gateway")
        yield stack
    finally:
        stack.stop()


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * CLIENTS + 1024)), hard))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp, gateway_only(Path(tmp)) as stack:
        asyncio.run(measure(stack))


if __name__ == "__main__":
    main()
