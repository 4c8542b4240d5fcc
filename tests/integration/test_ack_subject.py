"""What a delivered message's ack subject says (``stream_sequence``, ``deliveries``), read as
nats-py's ``msg.metadata`` reads it, for a first delivery and a redelivery."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from atelier_contracts.runtime.pull import deliveries, stream_sequence

pytestmark = pytest.mark.integration


async def test_the_ack_subject_gives_the_sequence_and_the_deliveries_as_nats_py_does(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="ACKS", subjects=["acks.>"])
    for i in range(3):
        await js.publish(f"acks.{i}", b"x")
    sub = await js.pull_subscribe("acks.>", "reader", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT))
    first = await sub.fetch(3, timeout=5)
    assert [(stream_sequence(m), deliveries(m)) for m in first] == [(1, 1), (2, 1), (3, 1)]
    await first[1].nak()
    again = (await sub.fetch(1, timeout=5))[0]
    assert (stream_sequence(again), deliveries(again)) == (2, 2), "the redelivery of the second"
    for msg in [*first, again]:
        assert (stream_sequence(msg), deliveries(msg)) == (
            msg.metadata.sequence.stream,
            msg.metadata.num_delivered,
        )
