"""FastStream's NATS subscribers against the runtime kit's ``Consumer``, as the seam for
telemetry and metrics: the same durable pull consumer, the same trivial handler, each with its
tracing and Prometheus middleware on, in one run.

python -m bench.faststream_seam    # or: make bench. BENCH_MESSAGES sets the burst (default 5000).

- a burst: N messages stored first, then consumed; messages/s and the CPU per message;
- one at a time: publish a message, wait until its handler ran, 300 times; p50/p95 — what a
  step that is alone in the system waits;
- FastStream with manual acks and with nack-on-error, pull batches of 1 and of 16.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware
from nats.aio.msg import Msg
from nats.js.api import RetentionPolicy, StreamConfig
from prometheus_client import CollectorRegistry

from atelier_contracts.runtime.consumer import ACK, Consumer, ConsumerSpec, Outcome
from atelier_devstack.natsserver import start_nats

N = int(os.environ.get("BENCH_MESSAGES", "5000"))
ONE_BY_ONE = 300
PAYLOAD = b"x" * 200

Handled = Callable[[], None]


async def burst_and_single(
    url: str, stream: str, start: Callable[[Handled], Awaitable[Callable[[], Awaitable[None]]]]
) -> tuple[float, float, float, float]:
    """(messages/s, CPU µs a message, p50 ms, p95 ms) for one consumer implementation."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"{stream}.>"], retention=RetentionPolicy.WORK_QUEUE)
    )
    for _ in range(N):
        await js.publish(f"{stream}.x", PAYLOAD)
    count = 0
    done = asyncio.Event()
    single = asyncio.Event()

    def handled() -> None:
        nonlocal count
        count += 1
        single.set()
        if count == N:
            done.set()

    cpu0, t0 = time.process_time(), time.perf_counter()
    stop = await start(handled)
    await asyncio.wait_for(done.wait(), 300)
    rate = N / (time.perf_counter() - t0)
    cpu_us = (time.process_time() - cpu0) / N * 1e6
    delays = []
    for _ in range(ONE_BY_ONE):
        single.clear()
        sent = time.perf_counter()
        await js.publish(f"{stream}.x", PAYLOAD)
        await asyncio.wait_for(single.wait(), 30)
        delays.append((time.perf_counter() - sent) * 1000)
    await stop()
    await nc.close()
    delays.sort()
    return rate, cpu_us, statistics.median(delays), delays[int(len(delays) * 0.95)]


def kit(url: str) -> Callable[[Handled], Awaitable[Callable[[], Awaitable[None]]]]:
    async def start(handled: Handled) -> Callable[[], Awaitable[None]]:
        nc = await nats.connect(url)

        async def handle(_msg: Msg) -> Outcome:
            handled()
            return ACK

        stop = asyncio.Event()
        spec = ConsumerSpec(stream="KIT", durable="kit", filter_subject="KIT.>", concurrency=16)
        task = asyncio.create_task(Consumer(nc, spec, handle).run(stop))

        async def close() -> None:
            stop.set()
            await task
            await nc.close()

        return close

    return start


def faststream(
    url: str, stream: str, policy: AckPolicy, batch: int
) -> Callable[[Handled], Awaitable[Callable[[], Awaitable[None]]]]:
    async def start(handled: Handled) -> Callable[[], Awaitable[None]]:
        broker = NatsBroker(
            url,
            logger=None,  # its per-message log lines would be most of its cost; ours logs none
            middlewares=[
                NatsTelemetryMiddleware(),
                NatsPrometheusMiddleware(registry=CollectorRegistry()),
            ],
        )

        @broker.subscriber(
            f"{stream}.>",
            stream=JStream(name=stream, declare=False),
            durable="fs",
            pull_sub=PullSub(batch_size=batch, timeout=5.0),
            ack_policy=policy,
            max_workers=16,
        )
        async def handle(body: bytes, message: NatsMessage) -> None:
            handled()
            if policy is AckPolicy.MANUAL:
                await message.ack()

        await broker.start()
        return broker.stop

    return start


async def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, N={N}")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats(Path(tmp) / "nats")
        try:
            url = server.url
            cases = [
                ("runtime kit Consumer (spans + metrics in its seam)", "KIT", kit(url)),
                ("FastStream, manual ack, pull batch 1", "FSM1",
                 faststream(url, "FSM1", AckPolicy.MANUAL, 1)),
                ("FastStream, nack on error, pull batch 16", "FSN16",
                 faststream(url, "FSN16", AckPolicy.NACK_ON_ERROR, 16)),
                ("FastStream, manual ack, pull batch 16", "FSM16",
                 faststream(url, "FSM16", AckPolicy.MANUAL, 16)),
            ]  # fmt: skip
            rows = [(name, await burst_and_single(url, stream, start)) for name, stream, start in cases]
        finally:
            server.stop()
    base = rows[0][1][0]
    for name, (rate, cpu, p50, p95) in rows:
        print(
            f"{name:52} {rate:8,.0f} msg/s ({rate / base:.2f}x)  {cpu:6.0f} µs CPU/msg"
            f"  one at a time p50 {p50:6.1f} ms p95 {p95:6.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
