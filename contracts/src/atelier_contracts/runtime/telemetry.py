"""Traces: W3C trace context in NATS headers, so one trace follows a job through every service.

``setup`` is called once by each service's entry point. With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, spans are batched and exported by OTLP/HTTP (Jaeger
takes it on 4318). Without it nothing is recorded and ``make up`` needs no collector; the seams
then skip their spans altogether, since even OpenTelemetry's no-op span costs ~17 µs a message
(``docs/observability.md``). The spans are made in two places only: the publish seam
(``runtime/publish.py``) and the consume seam (``consuming``, around every handler of
``runtime/consumer.py``), plus the gateway's HTTP middleware and the router's span per provider
call.
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
_enabled = False
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


def enabled() -> bool:
    """Whether this process records spans (``setup`` found a collector)."""
    return _enabled


def setup(service: str) -> bool:
    """Export this process's spans if a collector is configured; whether one is."""
    global _enabled
    if not any(os.environ.get(name) for name in ENDPOINT_ENVS):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"atelier-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def inject(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the current trace context (``traceparent``) added."""
    propagate.inject(headers)
    return headers


def job_of(subject: str) -> str:
    """The job (or session, schedule) a log, command or report subject names."""
    return subject.rsplit(".", 1)[-1]


def consuming(msg: Msg, consumer: str) -> contextlib.AbstractContextManager[Span | None]:
    """The span of one handled message, a child of the span that published it (None: not
    tracing)."""
    return _consuming(msg, consumer) if _enabled else _NOTHING


def consuming_batch(msgs: list[Msg], consumer: str) -> contextlib.AbstractContextManager[Span | None]:
    """One span for a batch of messages, linked to each one's publisher (a span has one parent)."""
    return _consuming_batch(msgs, consumer) if _enabled else _NOTHING


@contextlib.contextmanager
def _consuming(msg: Msg, consumer: str) -> Iterator[Span]:
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
def _consuming_batch(msgs: list[Msg], consumer: str) -> Iterator[Span]:
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


def provider_span(name: str, attributes: dict[str, str | int | bool]) -> Span | None:
    """A span for one provider call, under the current one (None: not tracing); the caller ends it."""
    return TRACER.start_span(name, attributes=attributes) if _enabled else None


def failed(span: Span | None, why: str) -> None:
    if span is not None:
        span.set_status(Status(StatusCode.ERROR, why))
