"""Traces: W3C trace context in NATS headers, so one trace follows a job through every service.

``setup`` is called once by each service's entry point. With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, spans are batched and exported by OTLP/HTTP (Jaeger
takes it on 4318); without it nothing is recorded and the API's no-op tracer costs a few
microseconds a span, so ``make up`` needs no collector. The spans themselves are made in two
places only: the publish seam (``runtime/publish.py``) and the consume seam (``consuming``,
around every handler of ``runtime/consumer.py``), plus the gateway's HTTP middleware and the
router's span per provider call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from nats.aio.msg import Msg
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

TRACER = trace.get_tracer("atelier")
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def setup(service: str) -> bool:
    """Export this process's spans if a collector is configured; whether one is."""
    if not any(os.environ.get(name) for name in ENDPOINT_ENVS):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"atelier-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def inject(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the current trace context (``traceparent``) added."""
    propagate.inject(headers)
    return headers


def job_of(subject: str) -> str:
    """The job (or session, schedule) a log, command or report subject names."""
    return subject.rsplit(".", 1)[-1]


@contextlib.contextmanager
def consuming(msg: Msg, consumer: str) -> Iterator[Span]:
    """The span of one handled message, a child of the span that published it."""
    context = propagate.extract(dict(msg.headers or {}))
    with TRACER.start_as_current_span(
        f"handle {consumer}",
        context=context,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "messaging.consumer.group.name": consumer,
            "atelier.subject_id": job_of(msg.subject),
        },
    ) as span:
        yield span


@contextlib.contextmanager
def consuming_batch(msgs: list[Msg], consumer: str) -> Iterator[Span]:
    """One span for a batch of messages, linked to each one's publisher (a span has one parent)."""
    links = []
    for msg in msgs:
        ctx = trace.get_current_span(propagate.extract(dict(msg.headers or {}))).get_span_context()
        if ctx.is_valid:
            links.append(Link(ctx))
    with TRACER.start_as_current_span(
        f"handle {consumer}",
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={"messaging.system": "nats", "messaging.batch.message_count": len(msgs)},
    ) as span:
        yield span


def failed(span: Span, why: str) -> None:
    span.set_status(Status(StatusCode.ERROR, why))
