"""Publishes commands to JetStream, de-duplicated by their message id."""

from __future__ import annotations

import nats.errors
from nats.js import JetStreamContext

from atelier_contracts.commands import Command
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.subjects import MSG_ID_HEADER, command_subject
from atelier_gateway.app.errors import Unavailable


class JetStreamCommandPublisher:
    def __init__(self, js: JetStreamContext, timeout_s: float = 5.0) -> None:
        self.js = js
        self.timeout_s = timeout_s

    async def publish(self, envelope: Envelope[Command]) -> None:
        try:
            await self.js.publish(
                command_subject(envelope.job_id),
                encode(envelope),
                headers={MSG_ID_HEADER: envelope.msg_id},
                timeout=self.timeout_s,
            )
        except (TimeoutError, nats.errors.Error) as exc:
            # Covers a closed or reconnecting connection, no stream, and an ack that never came.
            raise Unavailable("The command could not be stored in NATS; try again.") from exc
