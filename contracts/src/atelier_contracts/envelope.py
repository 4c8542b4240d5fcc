"""The envelope around commands and work messages, and the decoders built once."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

import msgspec

from atelier_contracts import SCHEMA_VERSION
from atelier_contracts.commands import Command
from atelier_contracts.events import Commit
from atelier_contracts.work import WorkItem, WorkReport

T = TypeVar("T")


class Envelope(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """Identity and lineage of a message; ``msg_id`` is also its ``Nats-Msg-Id``."""

    msg_id: str
    job_id: str
    tenant: str
    correlation_id: str
    causation_id: str | None
    sent_at: datetime
    body: T
    schema_version: int = SCHEMA_VERSION


encoder = msgspec.json.Encoder()
command_decoder = msgspec.json.Decoder(Envelope[Command])
work_item_decoder = msgspec.json.Decoder(Envelope[WorkItem])
report_decoder = msgspec.json.Decoder(Envelope[WorkReport])
commit_decoder = msgspec.json.Decoder(Commit)


def encode(message: object) -> bytes:
    return encoder.encode(message)
