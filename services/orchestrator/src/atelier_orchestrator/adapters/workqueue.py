"""Work items onto the work stream, de-duplicated by their work id."""

from __future__ import annotations

from nats.js import JetStreamContext

from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.subjects import MSG_ID_HEADER, work_subject
from atelier_contracts.work import WorkItem


class JetStreamWorkQueue:
    def __init__(self, js: JetStreamContext, timeout: float = 5.0) -> None:
        self.js = js
        self.timeout = timeout

    async def put(self, envelope: Envelope[WorkItem], capability: str) -> None:
        await self.js.publish(
            work_subject(capability),
            encode(envelope),
            timeout=self.timeout,
            headers={MSG_ID_HEADER: envelope.msg_id},
        )
