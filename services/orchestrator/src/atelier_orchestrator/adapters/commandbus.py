"""Commands the orchestrator sends itself (deadline sweeps), through the same durable stream."""

from __future__ import annotations

from nats.js import JetStreamContext

from atelier_contracts.commands import Command
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.subjects import MSG_ID_HEADER, command_subject


class JetStreamCommandBus:
    def __init__(self, js: JetStreamContext, timeout: float = 5.0) -> None:
        self.js = js
        self.timeout = timeout

    async def send(self, envelope: Envelope[Command]) -> None:
        await self.js.publish(
            command_subject(envelope.job_id),
            encode(envelope),
            timeout=self.timeout,
            headers={MSG_ID_HEADER: envelope.msg_id},
        )
