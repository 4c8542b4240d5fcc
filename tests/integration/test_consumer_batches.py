"""A batch consumer's gathering: a batch waits a moment from its first message for more."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from atelier_contracts.runtime.consumer import ACK, Consumer, ConsumerSpec, Outcome
from atelier_contracts.runtime.nats import ensure_streams
from atelier_contracts.subjects import JOBS_STREAM, job_subject
from tests.support import eventually

pytestmark = pytest.mark.integration


async def test_a_batch_waits_for_more_until_its_time_is_up_or_a_quarter_of_its_room_is_full(
    nc: Client,
) -> None:
    loop = asyncio.get_running_loop()
    batches: list[tuple[float, list[bytes]]] = []

    async def handle(msgs: list[Msg]) -> list[Outcome]:
        batches.append((loop.time(), [m.data for m in msgs]))
        return [ACK] * len(msgs)

    spec = ConsumerSpec(
        stream=JOBS_STREAM, durable="gathering", filter_subject=job_subject("*"), concurrency=8, gather_s=2.0
    )
    await ensure_streams(nc.jetstream())
    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(nc, spec, batch_handler=handle).run(stop))
    try:
        js = nc.jetstream()

        async def handled(n: int) -> bool:
            return sum(len(b) for _, b in batches) == n

        sent = loop.time()
        await js.publish(job_subject("job_a"), b"a")
        await eventually(lambda: handled(1), within=10.0)
        assert batches[0][0] - sent >= 1.9, "one message alone waited its gathering time"

        await js.publish(job_subject("job_b"), b"b")
        await js.publish(job_subject("job_c"), b"c")  # a quarter of the room (8): no more waiting
        await eventually(lambda: handled(3), within=1.5)
        assert [b for _, b in batches] == [[b"a"], [b"b", b"c"]]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
