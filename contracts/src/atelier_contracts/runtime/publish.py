"""The one way a message is put onto a stream: trace context and metrics around JetStream's
publish, so no caller writes headers, spans or counters of its own.

Every stream write goes through ``publish``: the gateway's commands, the orchestrator's appends,
work items and commands, the workers' reports, the dead letters. ``msg_id`` de-duplicates it
within the stream's window; ``expected_last_subject_seq`` makes it an append that fails
(10071) when another writer got to the subject first.
"""

from __future__ import annotations

import functools
import time

from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from prometheus_client.metrics import Counter as CounterChild
from prometheus_client.metrics import Histogram as HistogramChild

from atelier_contracts.runtime.telemetry import TRACER, enabled, inject, job_of
from atelier_contracts.subjects import EXPECTED_LAST_SUBJECT_SEQ_HEADER, MSG_ID_HEADER

PUBLISHED = Counter("atelier_published", "Messages stored in a stream", ["kind", "outcome"])
PUBLISH_SECONDS = Histogram(
    "atelier_publish_seconds",
    "From a publish to the stream's acknowledgement",
    ["kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


def kind_of(subject: str) -> str:
    """``atelier.work.ai.normal.tts`` → ``work``: a bounded label for every subject."""
    parts = subject.split(".", 2)
    return parts[1] if len(parts) > 2 and parts[0] == "atelier" else "other"


async def publish(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    msg_id: str | None = None,
    expected_last_subject_seq: int | None = None,
    headers: dict[str, str] | None = None,
    wait_s: float = 5.0,
) -> PubAck:
    kind = kind_of(subject)
    sent = dict(headers or {})
    if msg_id is not None:
        sent[MSG_ID_HEADER] = msg_id
    if expected_last_subject_seq is not None:
        sent[EXPECTED_LAST_SUBJECT_SEQ_HEADER] = str(expected_last_subject_seq)
    if not enabled():
        return await _stored(js, subject, payload, sent, kind, wait_s)
    with TRACER.start_as_current_span(
        f"publish {kind}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": subject,
            "atelier.subject_id": job_of(subject),
        },
    ):
        return await _stored(js, subject, payload, inject(sent), kind, wait_s)


async def _stored(
    js: JetStreamContext, subject: str, payload: bytes, headers: dict[str, str], kind: str, wait_s: float
) -> PubAck:
    t0 = time.perf_counter()
    try:
        ack = await js.publish(subject, payload, headers=headers, timeout=wait_s)
    except Exception:
        _counted(kind, "error").inc()
        raise
    _timed(kind).observe(time.perf_counter() - t0)
    _counted(kind, "duplicate" if ack.duplicate else "stored").inc()
    return ack


@functools.cache
def _counted(kind: str, outcome: str) -> CounterChild:
    return PUBLISHED.labels(kind, outcome)


@functools.cache
def _timed(kind: str) -> HistogramChild:
    return PUBLISH_SECONDS.labels(kind)
