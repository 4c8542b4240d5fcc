"""Work items onto the work stream, de-duplicated by their work id; cancellations to workers."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js.kv import KeyValue

from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.runtime.publish import publish
from atelier_contracts.subjects import cancel_subject, work_subject
from atelier_contracts.work import WorkItem


class JetStreamWorkQueue:
    def __init__(self, nc: Client, cancelled: KeyValue, timeout: float = 5.0) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.cancelled = cancelled
        self.timeout = timeout

    async def put(self, envelope: Envelope[WorkItem], capability: str, priority: int) -> None:
        await publish(
            self.js,
            work_subject(capability, priority),
            encode(envelope),
            msg_id=envelope.msg_id,
            wait_s=self.timeout,
        )

    async def cancel(self, job_id: str, seq: int) -> None:
        # The KV entry outlives worker restarts (queued items are skipped); the core message
        # reaches work already running. Both carry the cancelling commit's sequence.
        entry = str(seq).encode()
        await self.cancelled.put(job_id, entry)
        await self.nc.publish(cancel_subject(job_id), b"seq:" + entry)

    async def abandon(self, job_id: str, work_id: str) -> None:
        await self.nc.publish(cancel_subject(job_id), work_id.encode())
