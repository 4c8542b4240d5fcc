"""Commands to the aggregates besides jobs (sessions, schedules), answered with what the
orchestrator decided; and their reads, read-your-writes.

Like a job's commands, each is stored in JetStream with a reply subject and the orchestrator
answers with the aggregate as decided. A refusal is the refusal as an error; no answer in time is
the aggregate as it reads now (the command is stored and will still be decided).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from atelier_contracts import ids
from atelier_contracts.aggregates import Addressed, Outcome
from atelier_contracts.envelope import encode
from atelier_gateway.app.errors import REFUSALS, AppError, IllegalTransition, Unavailable
from atelier_gateway.app.ports import CommandPublisher

V = TypeVar("V")


class Documents(Protocol[V]):
    """An aggregate type's read model (one row per aggregate, its state as JSON)."""

    async def get(self, tenant: str, key: str) -> V | None: ...

    async def newest(self, tenant: str, status: str | None, limit: int) -> list[V]: ...


class Heads(Protocol):
    async def log_head(self, stream: str, subject: str) -> int | None:
        """Where a log subject ends (None: empty); ``Unavailable`` when NATS is."""
        ...

    async def projected(self, job_id: str, seq: int, timeout_s: float) -> bool:
        """Wait until the read model has the aggregate at ``seq``; False if not in ``timeout_s``."""
        ...


@dataclass(frozen=True)
class Aggregate(Generic[V]):
    """How to reach one type of aggregate: its subjects, its answer, its missing error."""

    name: str
    stream: str
    log_subject: Callable[[str], str]
    command_subject: Callable[[str], str]
    outcome: msgspec.json.Decoder[Outcome[V]]
    not_found: type[AppError]
    version: Callable[[V], int]

    def new_id(self, prefix: str, tenant: str, idempotency_key: str | None) -> str:
        if idempotency_key:  # one aggregate per key, however often the create is sent
            return ids.derived_id(prefix, tenant, idempotency_key)
        return f"{prefix}_" + ids.uuid7().replace("-", "")


@dataclass(frozen=True)
class Call:
    tenant: str
    key: str
    """The aggregate's id."""
    request_id: str
    msg_id: str | None = None
    """A stable message id (from an idempotency key); a fresh one when None."""


@dataclass(frozen=True)
class Ports(Generic[V]):
    publisher: CommandPublisher
    documents: Documents[V]
    log: Heads
    clock: Callable[[], datetime]
    wait_s: float
    """How long a command waits for the orchestrator's answer."""
    read_wait_s: float
    """How long a read waits for the read model to catch up with the log."""


async def send(aggregate: Aggregate[V], call: Call, body: Any, ports: Ports[V]) -> V | None:
    """The aggregate as decided, or None when no answer came in time."""
    message = Addressed[Any](
        msg_id=call.msg_id or ids.new_message_id(),
        to=call.key,
        tenant=call.tenant,
        sent_at=ports.clock(),
        correlation_id=call.request_id,
        body=body,
    )
    subject = aggregate.command_subject(call.key)
    answer = await ports.publisher.ask(subject, message.msg_id, encode(message), call.key, ports.wait_s)
    if answer is None:
        return None
    outcome = aggregate.outcome.decode(answer)
    if not outcome.accepted:
        raise REFUSALS.get(outcome.code, IllegalTransition)(outcome.message or None)
    return outcome.view


async def existing(aggregate: Aggregate[V], call: Call, ports: Ports[V]) -> V:
    """The aggregate as the read model has it once caught up with its log (a command is answered
    before the projector wrote it), or as SQL has it after ``read_wait_s``."""
    found = await ports.documents.get(call.tenant, call.key)
    try:
        head = await ports.log.log_head(aggregate.stream, aggregate.log_subject(call.key))
    except Unavailable:
        head = None  # the log is out of reach: SQL is all there is
    if head is not None and (found is None or aggregate.version(found) < head):
        await ports.log.projected(call.key, head, ports.read_wait_s)
        found = await ports.documents.get(call.tenant, call.key)
    if found is None:
        raise aggregate.not_found(f"No {aggregate.name} {call.key!r}.")
    return found


async def command(aggregate: Aggregate[V], call: Call, body: Any, ports: Ports[V]) -> V:
    """A command on an existing aggregate: as decided, or as it reads when not decided in time."""
    before = await existing(aggregate, call, ports)
    return await send(aggregate, call, body, ports) or before
