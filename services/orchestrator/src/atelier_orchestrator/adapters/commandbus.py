"""Commands the orchestrator sends itself, through the same durable stream as anyone's: deadline
sweeps, the job of a session's round, a round's end to its session."""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext

from atelier_contracts.aggregates import Addressed
from atelier_contracts.commands import Command
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.runtime.publish import publish
from atelier_contracts.subjects import command_subject


class JetStreamCommandBus:
    def __init__(self, js: JetStreamContext, timeout: float = 5.0) -> None:
        self.js = js
        self.timeout = timeout

    async def send(self, envelope: Envelope[Command]) -> None:
        await self._publish(command_subject(envelope.job_id), envelope.msg_id, encode(envelope))

    async def to_aggregate(self, subject: str, command: Addressed[Any]) -> None:
        """A session's or a schedule's command, on its subject."""
        await self._publish(subject, command.msg_id, encode(command))

    async def _publish(self, subject: str, msg_id: str, payload: bytes) -> None:
        await publish(self.js, subject, payload, msg_id=msg_id, wait_s=self.timeout)
