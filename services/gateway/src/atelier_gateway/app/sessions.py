"""Sessions: their commands and reads (``app/aggregates.py``), and what only they check."""

from __future__ import annotations

from typing import Any

import msgspec

from atelier_contracts.aggregates import Outcome
from atelier_contracts.faults import FaultInjection
from atelier_contracts.presets import PresetRegistry
from atelier_contracts.sessions import CreateSession, SessionContext, SessionView, StartRound
from atelier_contracts.subjects import SESSIONS_STREAM, session_command_subject, session_subject
from atelier_gateway.app.aggregates import Aggregate, Call, Ports, existing, send
from atelier_gateway.app.errors import InputInvalid, SessionNotFound
from atelier_gateway.app.ports import UploadStore
from atelier_gateway.app.submit_job import kind_named, prepared_input

SESSIONS = Aggregate[SessionView](
    name="session",
    stream=SESSIONS_STREAM,
    log_subject=session_subject,
    command_subject=session_command_subject,
    outcome=msgspec.json.Decoder(Outcome[SessionView]),
    not_found=SessionNotFound,
    version=lambda view: view.version,
)


async def create_session(call: Call, body: CreateSession, ports: Ports[SessionView]) -> SessionView:
    kind_named(body.kind)
    decided = await send(SESSIONS, call, body, ports)
    if decided is not None:
        return decided
    now = ports.clock()  # stored, not decided yet: the session as it will read
    return SessionView(
        id=call.key,
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
    call: Call,
    body: StartRound,
    ports: Ports[SessionView],
    faults: FaultInjection,
    uploads: UploadStore,
    presets: PresetRegistry,
) -> SessionView:
    """A round, its input prepared as a submit's is (``prepared_input``): a round's job is held to
    everything a submitted job is."""
    before = await existing(SESSIONS, call, ports)
    round_input = await prepared_input(call.tenant, before.kind, body.input, faults, uploads, presets)
    return await send(SESSIONS, call, msgspec.structs.replace(body, input=round_input), ports) or before


def context_patch(fields: dict[str, Any]) -> SessionContext:
    """A context (or a patch of one) from a request body, its problems as 422s."""
    try:
        return msgspec.convert(fields, SessionContext)
    except msgspec.ValidationError as exc:
        raise InputInvalid([{"loc": ["body", "context"], "msg": str(exc), "type": "value_error"}]) from None
