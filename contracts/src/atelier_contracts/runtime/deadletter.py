"""Dead letters: where a consumer puts a message it gives up on, and how one is re-driven.

A consumer gives up on a message that cannot be decoded, is larger than it takes, or failed
as many deliveries as its spec allows (``ConsumerSpec.dead_after``). The message goes, as it
was, to ``ATELIER_DEAD`` on ``atelier.dead.<consumer>``, with headers saying where it came from
and why; only then is the original acked, so a crash in between delivers it again (and the
copy is deduplicated by its origin). ``atelier-orchestrator dead-letters`` lists them and
``--redrive`` publishes them again where they came from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from atelier_contracts.runtime.publish import publish
from atelier_contracts.runtime.pull import read_stream, stream_sequence
from atelier_contracts.subjects import DEAD_STREAM, LOG_STREAMS, MSG_ID_HEADER, dead_subject

ORIGIN_SUBJECT = "Atelier-Dead-Subject"
ORIGIN_STREAM = "Atelier-Dead-Stream"
ORIGIN_SEQ = "Atelier-Dead-Seq"
ORIGIN_MSG_ID = "Atelier-Dead-Msg-Id"
CONSUMER = "Atelier-Dead-Consumer"
ERROR = "Atelier-Dead-Error"
DELIVERIES = "Atelier-Dead-Deliveries"
TRUNCATED = "Atelier-Dead-Truncated"
"""Set (to the original size) when the message was too large to keep whole."""
HEADROOM = 8 * 1024
"""Room left in a NATS message for the headers, when the body has to be cut."""


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    """Its sequence in ``ATELIER_DEAD``."""
    consumer: str
    subject: str
    stream: str
    origin_seq: int
    error: str
    deliveries: int
    buried_at: datetime | None
    size: int
    truncated: bool
    data: bytes
    headers: dict[str, str]
    """The original message's own headers."""


async def bury(nc: Client, durable: str, msg: Msg, error: str, deliveries: int) -> None:
    """Keep ``msg`` in the dead-letter stream with ``error``; raises if it could not be stored."""
    stream, seq = _origin(msg)
    own = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Atelier-Dead-")}
    headers = {
        **{k: v for k, v in own.items() if k != MSG_ID_HEADER},
        ORIGIN_SUBJECT: msg.subject,
        ORIGIN_STREAM: stream,
        ORIGIN_SEQ: str(seq),
        CONSUMER: durable,
        ERROR: " ".join(error.split())[:2000],  # one line: a header cannot hold a newline
        DELIVERIES: str(deliveries),
        # The same message buried twice (redelivered before its ack landed) is stored once.
        MSG_ID_HEADER: f"dead:{stream}:{seq}",
    }
    if MSG_ID_HEADER in own:
        headers[ORIGIN_MSG_ID] = own[MSG_ID_HEADER]
    data = msg.data
    limit = max(nc.max_payload - HEADROOM, 0)
    if len(data) > limit:
        headers[TRUNCATED] = str(len(data))
        data = data[:limit]
    await publish(nc.jetstream(), dead_subject(durable), data, headers=headers)


def _origin(msg: Msg) -> tuple[str, int]:
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return tokens[2], stream_sequence(msg)
    if len(tokens) >= 11:
        return tokens[4], stream_sequence(msg)
    return "", 0


async def dead_letters(nc: Client, consumer: str | None = None) -> AsyncIterator[DeadLetter]:
    """The dead letters now in the stream (of one consumer, or all), oldest first."""
    try:
        await nc.jetstream().stream_info(DEAD_STREAM)
    except nats.js.errors.NotFoundError:
        return
    subject = dead_subject(consumer) if consumer else "atelier.dead.>"
    async for msg in read_stream(nc, DEAD_STREAM, subject):
        yield _letter(msg)


def _letter(msg: Msg) -> DeadLetter:
    headers = dict(msg.headers or {})
    own = {k: v for k, v in headers.items() if not k.startswith("Atelier-Dead-") and k != MSG_ID_HEADER}
    meta = msg.metadata
    return DeadLetter(
        seq=meta.sequence.stream,
        consumer=headers.get(CONSUMER, ""),
        subject=headers.get(ORIGIN_SUBJECT, ""),
        stream=headers.get(ORIGIN_STREAM, ""),
        origin_seq=int(headers.get(ORIGIN_SEQ, "0") or 0),
        error=headers.get(ERROR, ""),
        deliveries=int(headers.get(DELIVERIES, "0") or 0),
        buried_at=meta.timestamp.astimezone(UTC) if meta.timestamp else None,
        size=int(headers.get(TRUNCATED) or len(msg.data)),
        truncated=TRUNCATED in headers,
        data=msg.data,
        headers=own,
    )


class NotRedrivable(Exception):
    pass


async def redrive(nc: Client, letter: DeadLetter) -> None:
    """Publish the message again where it came from (a new message: its handler sees it fresh),
    then remove the dead letter. Not for a commit of an event log (jobs, sessions, schedules):
    republishing one would append it to the log again (the orchestrator's command re-applies
    those from the log instead)."""
    if letter.stream in LOG_STREAMS:
        raise NotRedrivable(
            f"dead letter {letter.seq} is a commit of {letter.stream}: re-apply it, do not publish it"
        )
    if letter.truncated:
        raise NotRedrivable(f"dead letter {letter.seq} was cut to fit ({letter.size} bytes): it cannot run")
    if not letter.subject:
        raise NotRedrivable(f"dead letter {letter.seq} does not say where it came from")
    js = nc.jetstream()
    msg_id = f"redrive:{letter.stream}:{letter.origin_seq}:{letter.seq}"
    await publish(js, letter.subject, letter.data, msg_id=msg_id, headers=letter.headers)
    await js.delete_msg(DEAD_STREAM, letter.seq)


async def forget(nc: Client, letter: DeadLetter) -> None:
    await nc.jetstream().delete_msg(DEAD_STREAM, letter.seq)


async def counts(nc: Client) -> dict[str, int]:
    """Dead letters per consumer."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(DEAD_STREAM, subjects_filter="atelier.dead.>")
    except nats.js.errors.NotFoundError:
        return {}
    return {
        subject.removeprefix("atelier.dead."): int(n) for subject, n in (info.state.subjects or {}).items()
    }
