"""Publishes commands to JetStream, de-duplicated by their message id; optionally awaits the outcome.

What an error means is exact, because a client acts on it: ``Unavailable`` (503) only when
nothing reached NATS — the connection was down before we sent (nats-py would otherwise buffer
the command and send it on reconnect, long after we answered) or the server refused it;
``OutcomeUnknown`` (504) when the command went out and its storage was not confirmed in time.

Outcomes come back on one wildcard subscription per gateway, each request on its own subject
under it, so a request costs no subscribe and unsubscribe of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from atelier_contracts.commands import Command, CommandOutcome
from atelier_contracts.envelope import Envelope, encode
from atelier_contracts.runtime.publish import publish
from atelier_contracts.subjects import REPLY_HEADER, command_subject
from atelier_gateway.app.errors import OutcomeUnknown, Unavailable

log = logging.getLogger(__name__)

_outcome_decoder = msgspec.json.Decoder(CommandOutcome)


class JetStreamCommandPublisher:
    def __init__(self, nc: Client, js: JetStreamContext, timeout_s: float = 5.0) -> None:
        self.nc = nc
        self.js = js
        self.timeout_s = timeout_s
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(f"{self._prefix}.*", cb=self._on_outcome)

    async def publish(self, envelope: Envelope[Command]) -> None:
        await self._store(
            command_subject(envelope.job_id), envelope.msg_id, encode(envelope), envelope.job_id, {}
        )

    async def request(self, envelope: Envelope[Command], wait_s: float) -> CommandOutcome | None:
        subject = command_subject(envelope.job_id)
        answer = await self.ask(subject, envelope.msg_id, encode(envelope), envelope.job_id, wait_s)
        if answer is None:
            return None
        try:
            outcome = _outcome_decoder.decode(answer)
        except msgspec.DecodeError:
            log.warning("ignored an undecodable command outcome", extra={"job_id": envelope.job_id})
            return None
        return outcome if outcome.msg_id in ("", envelope.msg_id) else None

    async def ask(self, subject: str, msg_id: str, payload: bytes, about: str, wait_s: float) -> bytes | None:
        """Store a command on ``subject`` and wait up to ``wait_s`` for the orchestrator's answer
        (its raw bytes; None: none in time). ``about`` names the job or session in errors."""
        token = str(next(self._tokens))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        try:
            await self._store(subject, msg_id, payload, about, {REPLY_HEADER: f"{self._prefix}.{token}"})
            try:
                return await asyncio.wait_for(future, wait_s)
            except TimeoutError:
                return None
        finally:
            self._waiting.pop(token, None)

    async def _store(
        self, subject: str, msg_id: str, payload: bytes, about: str, headers: dict[str, str]
    ) -> None:
        if not self.nc.is_connected:
            raise Unavailable("NATS is unreachable; nothing was sent, try again.")
        try:
            await publish(self.js, subject, payload, msg_id=msg_id, headers=headers, wait_s=self.timeout_s)
        except TimeoutError as exc:  # nats-py's TimeoutError is one too: sent, never confirmed
            raise OutcomeUnknown(about) from exc
        except nats.errors.Error as exc:
            # Refused before it was written (closed, draining, buffer full), no stream to store
            # it (no responders), or a JetStream error: nothing was stored.
            raise Unavailable(
                "The command could not be stored in NATS; nothing was done, try again."
            ) from exc

    async def _on_outcome(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject[len(self._prefix) + 1 :])
        if future is not None and not future.done():  # else: answered after we stopped waiting
            future.set_result(msg.data)
