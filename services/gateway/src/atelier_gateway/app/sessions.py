"""Sessions: send a session's commands to the orchestrator and answer with what it decided.

Like a job's commands, each is stored in JetStream with a reply subject and the orchestrator
answers with the session as decided. A refusal is the refusal as an error; no answer in time is
the session as it reads now (the command is stored and will still be decided).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec

from atelier_contracts import ids
from atelier_contracts.aggregates import Addressed, Outcome
from atelier_contracts.envelope import encode
from atelier_contracts.faults import FaultInjection
from atelier_contracts.kinds import KINDS
from atelier_contracts.sessions import CreateSession, SessionCommand, SessionContext, SessionView, StartRound
from atelier_contracts.subjects import session_command_subject
from atelier_gateway.app.errors import REFUSALS, IllegalTransition, InputInvalid, SessionNotFound, Unavailable
from atelier_gateway.app.ports import CommandPublisher
from atelier_gateway.app.submit_job import check_input

_outcome = msgspec.json.Decoder(Outcome[SessionView])


class SessionReader(Protocol):
    async def session(self, tenant: str, session_id: str) -> SessionView | None: ...

    async def sessions(self, tenant: str, status: str | None, limit: int) -> list[SessionView]: ...


class SessionLog(Protocol):
    async def session_head(self, session_id: str) -> int | None:
        """Where the session's log ends (None: no such session); ``Unavailable`` when NATS is."""
        ...

    async def projected(self, job_id: str, seq: int, timeout_s: float) -> bool:
        """Wait until the read model has the session at ``seq``; False if not in ``timeout_s``."""
        ...


@dataclass(frozen=True)
class SessionCall:
    tenant: str
    session_id: str
    request_id: str
    msg_id: str | None = None
    """A stable message id (from an idempotency key); a fresh one when None."""


@dataclass(frozen=True)
class SessionPorts:
    publisher: CommandPublisher
    reader: SessionReader
    log: SessionLog
    clock: Callable[[], datetime]
    wait_s: float
    """How long a command waits for the orchestrator's answer."""
    read_wait_s: float
    """How long a read waits for the read model to catch up with the session's log."""


def new_session_id(tenant: str, idempotency_key: str | None) -> str:
    if idempotency_key:
        return ids.derived_id("ses", tenant, idempotency_key)
    return "ses_" + ids.uuid7().replace("-", "")


async def create_session(call: SessionCall, body: CreateSession, ports: SessionPorts) -> SessionView:
    if body.kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise InputInvalid(
            [{"loc": ["body", "kind"], "msg": f"one of {known}", "type": "enum"}],
            f"Unknown job kind {body.kind!r}.",
        )
    decided = await _send(call, body, ports)
    if decided is not None:
        return decided
    now = ports.clock()  # stored, not decided yet: the session as it will read
    return SessionView(
        id=call.session_id,
        tenant=call.tenant,
        kind=body.kind,
        title=body.title,
        status="open",
        context=body.context,
        rounds=[],
        created_at=now,
        updated_at=now,
    )


async def start_round(
    call: SessionCall, body: StartRound, ports: SessionPorts, faults: FaultInjection
) -> SessionView:
    before = await existing(call, ports)
    check_input(before.kind, body.input, faults)  # the round's job must be one its kind takes
    return await _send(call, body, ports) or before


async def command(call: SessionCall, body: SessionCommand, ports: SessionPorts) -> SessionView:
    before = await existing(call, ports)
    return await _send(call, body, ports) or before


async def existing(call: SessionCall, ports: SessionPorts) -> SessionView:
    """The session as the read model has it once caught up with its log (read your writes: a
    command is answered before the projector wrote it), or as SQL has it after ``read_wait_s``."""
    found = await ports.reader.session(call.tenant, call.session_id)
    try:
        head = await ports.log.session_head(call.session_id)
    except Unavailable:
        head = None  # the log is out of reach: SQL is all there is
    if head is not None and (found is None or found.version < head):
        await ports.log.projected(call.session_id, head, ports.read_wait_s)
        found = await ports.reader.session(call.tenant, call.session_id)
    if found is None:
        raise SessionNotFound(f"No session {call.session_id!r}.")
    return found


async def _send(call: SessionCall, body: SessionCommand, ports: SessionPorts) -> SessionView | None:
    message = Addressed[SessionCommand](
        msg_id=call.msg_id or ids.new_message_id(),
        to=call.session_id,
        tenant=call.tenant,
        sent_at=ports.clock(),
        correlation_id=call.request_id,
        body=body,
    )
    subject = session_command_subject(call.session_id)
    answer = await ports.publisher.ask(
        subject, message.msg_id, encode(message), call.session_id, ports.wait_s
    )
    if answer is None:
        return None
    outcome = _outcome.decode(answer)
    if not outcome.accepted:
        raise REFUSALS.get(outcome.code, IllegalTransition)(outcome.message or None)
    return outcome.view


def context_patch(fields: dict[str, Any]) -> SessionContext:
    """A context (or a patch of one) from a request body, its problems as 422s."""
    try:
        return msgspec.convert(fields, SessionContext)
    except msgspec.ValidationError as exc:
        raise InputInvalid([{"loc": ["body", "context"], "msg": str(exc), "type": "value_error"}]) from None
