"""Publishes commands to JetStream, de-duplicated by their message id; optionally awaits the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from atelier_contracts.commands import Command, CommandOutcome
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.subjects import MSG_ID_HEADER, REPLY_HEADER, command_subject
from atelier_gateway.app.errors import Unavailable

log = logging.getLogger(__name__)

_outcome_decoder = msgspec.json.Decoder(CommandOutcome)


class JetStreamCommandPublisher:
    def __init__(self, nc: Client, js: JetStreamContext, timeout_s: float = 5.0) -> None:
        self.nc = nc
        self.js = js
        self.timeout_s = timeout_s

    async def publish(self, envelope: Envelope[Command]) -> None:
        await self._store(envelope, {})

    async def request(self, envelope: Envelope[Command], wait_s: float) -> CommandOutcome | None:
        inbox = self.nc.new_inbox()
        try:
            # Subscribed before the command is stored, so even an instant answer finds us.
            sub = await self.nc.subscribe(inbox)
        except nats.errors.Error as exc:
            raise Unavailable("NATS is unreachable; try again.") from exc
        try:
            await self._store(envelope, {REPLY_HEADER: inbox})
            return await self._outcome(sub, envelope, wait_s)
        finally:
            # A dead connection drops the interest on the server anyway.
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _store(self, envelope: Envelope[Command], headers: dict[str, str]) -> None:
        try:
            await self.js.publish(
                command_subject(envelope.job_id),
                encode(envelope),
                headers={MSG_ID_HEADER: envelope.msg_id, **headers},
                timeout=self.timeout_s,
            )
        except (TimeoutError, nats.errors.Error) as exc:
            # Covers a closed or reconnecting connection, no stream, and an ack that never came.
            raise Unavailable("The command could not be stored in NATS; try again.") from exc

    async def _outcome(
        self, sub: Subscription, envelope: Envelope[Command], wait_s: float
    ) -> CommandOutcome | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except (TimeoutError, nats.errors.Error):
                return None
            try:
                outcome = _outcome_decoder.decode(msg.data)
            except msgspec.DecodeError:
                log.warning("ignored an undecodable command outcome", extra={"job_id": envelope.job_id})
                continue
            if outcome.msg_id in ("", envelope.msg_id):  # the inbox is ours alone; be strict anyway
                return outcome
        return None
