"""The raw JetStream round trip's worker: pull a message, publish a result, ack. One process.

python -m bench.raw_worker NATS_URL   (started by ``bench.e2e``; stops when its parent does)
"""

from __future__ import annotations

import asyncio
import sys

import nats
from nats.js.api import AckPolicy, ConsumerConfig

STREAM = "BENCH_RAW"
WORK = "bench.raw.work"
RESULT = "bench.raw.result"


async def main(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        WORK, durable="raw-worker", stream=STREAM, config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    )
    print("ready", flush=True)
    while True:
        try:
            msgs = await sub.fetch(64, timeout=1)
        except TimeoutError:
            continue
        for msg in msgs:
            await js.publish(RESULT, msg.data)
            await msg.ack()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
