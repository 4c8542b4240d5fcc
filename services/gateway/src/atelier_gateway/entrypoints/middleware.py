"""Per-request plumbing as ASGI middleware: request id, metrics, access log, last-resort 500."""

from __future__ import annotations

import logging
import re
import time

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atelier_contracts import ids
from atelier_contracts.runtime import telemetry
from atelier_contracts.runtime.telemetry import TRACER, failed
from atelier_gateway.entrypoints.context import request_id_var
from atelier_gateway.entrypoints.problems import problem

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Anything else is one label value, so a client cannot blow up the metric's cardinality.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Probes and scrapes arrive every few seconds; their access lines would drown the useful ones.
_QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})

HTTP_REQUESTS = Counter("atelier_http_requests", "HTTP requests answered", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "atelier_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"]
)


def incoming_request_id(scope: Scope) -> str | None:
    value = Headers(scope=scope).get(REQUEST_ID_HEADER)
    return value if value and _SANE_REQUEST_ID.fullmatch(value) else None


def route_template(scope: Scope) -> str:
    # The router leaves the matched route in the scope; its path is the template, not the raw path.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def server_span(scope: Scope, request_id: str) -> Span:
    """The request's span: a child of the caller's ``traceparent`` if it sent one; the request id
    goes with it, so a trace and a log line find each other."""
    caller = propagate.extract(dict(Headers(scope=scope)))
    return TRACER.start_span(
        scope["method"],
        context=caller,
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": scope["method"],
            "url.path": scope["path"],
            "atelier.request_id": request_id,
        },
    )


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or ids.uuid7()
        token = request_id_var.set(request_id)
        span = server_span(scope, request_id) if telemetry.enabled() else None
        attached = context.attach(trace.set_span_in_context(span)) if span is not None else None
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error",
                extra={"request_id": request_id, "method": scope["method"], "path": scope["path"]},
            )
            if response_started:
                raise  # too late for a problem document; the server closes the connection
            status = 500
            await problem(500, "internal_error", instance=scope["path"])(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            if span is not None and attached is not None:
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.route": route, "http.response.status_code": status})
                if status >= 500:
                    failed(span, str(status))
                span.end()
                context.detach(attached)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            log.log(
                logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "request_id": request_id,
                    "route": route,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 1),
                },
            )
            request_id_var.reset(token)
