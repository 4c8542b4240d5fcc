"""What every aggregate besides the job shares on the wire: the command around a body, the commit
of its log, and the answer to a command (sessions, schedules; ``docs/workflows.md``).

A job keeps its own envelope and commit (they came first and carry job-specific lineage); these
are their shape for any other log subject, generic in the events and views they carry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

import msgspec

from atelier_contracts import SCHEMA_VERSION

B = TypeVar("B")
E = TypeVar("E")
V = TypeVar("V")


class Addressed(msgspec.Struct, Generic[B], frozen=True, kw_only=True):
    """A command for the aggregate ``to`` (a session or schedule id); ``msg_id`` is also its
    ``Nats-Msg-Id``, and a command already among the aggregate's recent causes decides nothing."""

    msg_id: str
    to: str
    tenant: str
    sent_at: datetime
    body: B
    correlation_id: str = ""
    schema_version: int = SCHEMA_VERSION


class LogCommit(msgspec.Struct, Generic[E], frozen=True, kw_only=True):
    """One decision appended to an aggregate's log subject, guarded by ``prev_seq``."""

    commit_id: str
    to: str
    tenant: str
    causation_id: str
    prev_seq: int
    at: datetime
    events: list[E]


class Outcome(msgspec.Struct, Generic[V], frozen=True, kw_only=True):
    """The orchestrator's answer to a command whose sender waits (``REPLY_HEADER``)."""

    msg_id: str
    to: str
    accepted: bool
    code: str = ""
    message: str = ""
    view: V | None = None
    """The aggregate after the decision (accepted commands)."""
