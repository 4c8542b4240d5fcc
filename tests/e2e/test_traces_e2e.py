"""One trace per job across the five services: the processes export by OTLP/HTTP to a local
receiver here, and a story job's spans share one trace id and form one tree."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from atelier_devstack.stack import Stack
from tests.e2e.client import e2e_stack, running, wait_terminal
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e

SERVICES = {f"atelier-{s}" for s in ("gateway", "orchestrator", "provider-router", "media", "export")}


class Collected:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[dict[str, object]] = []

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for resource in request.resource_spans:
                service = next(
                    a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
                )
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        attributes = {a.key: a.value for a in span.attributes}
                        self.spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "trace": span.trace_id.hex(),
                                "id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "subject_id": _text(attributes, "atelier.subject_id"),
                                "request_id": _text(attributes, "atelier.request_id"),
                                "status": str(attributes["http.response.status_code"].int_value)
                                if "http.response.status_code" in attributes
                                else "",
                            }
                        )


def _text(attributes: dict[str, Any], key: str) -> str:
    return str(attributes[key].string_value) if key in attributes else ""


@pytest.fixture
def receiver() -> Iterator[tuple[str, Collected]]:
    collected = Collected()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            collected.add(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", collected
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def traced(tmp_path: Path, receiver: tuple[str, Collected]) -> Iterator[Stack]:
    endpoint, _ = receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with running(e2e_stack(tmp_path, **env)) as stack:
        yield stack


def test_a_story_job_is_one_trace_through_all_five_services(
    traced: Stack, receiver: tuple[str, Collected]
) -> None:
    _, collected = receiver
    with httpx.Client(base_url=traced.gateway_url, timeout=10) as client:
        r = client.post(
            "/v1/jobs",
            json={"kind": "story", "title": "Traced", "input": {"prompt": "a moth who reads maps"}},
            headers={"X-Request-ID": "trace-me-1"},
        )
        assert r.status_code == 202
        job_id = r.json()["id"]
        assert wait_terminal(client, job_id)["status"] == "succeeded"

    def whole_trace() -> list[dict[str, object]] | None:
        with collected.lock:
            spans = list(collected.spans)
        roots = [s for s in spans if s["request_id"] == "trace-me-1"]
        if not roots:
            return None
        trace_id = roots[0]["trace"]
        mine = [s for s in spans if s["trace"] == trace_id]
        services = {str(s["service"]) for s in mine}
        ended = any(s["name"] == "publish job" and s["service"] == "atelier-orchestrator" for s in mine)
        packaged = any(str(s["name"]).startswith("handle workers-export") for s in mine)
        return mine if services >= SERVICES and ended and packaged else None

    try:
        spans = eventually_sync(whole_trace, within=30, every=0.2)
    except AssertionError:
        with collected.lock:
            traces: dict[object, list[str]] = {}
            for s in collected.spans:
                traces.setdefault(s["trace"], []).append(
                    f"{s['service']}:{s['name']}<{s['parent']}|{s['id']}> {s['status']} {s['request_id']}"
                )
        raise AssertionError(f"the trace never covered the five services; traces seen: {traces}") from None
    with collected.lock:
        posts = [s for s in collected.spans if s["name"] == "POST /v1/jobs"]
    assert len(posts) == 1, f"one server span per request, not FastAPI's beside ours: {posts}"
    ids = {s["id"] for s in spans}
    roots = [s for s in spans if s["parent"] == ""]
    assert [r["name"] for r in roots] == ["POST /v1/jobs"], "one root: the request that submitted the job"
    assert roots[0]["request_id"] == "trace-me-1", "the request id is carried into the trace"
    orphans = [s for s in spans if s["parent"] and s["parent"] not in ids]
    assert not orphans, f"every span's parent is in the trace: {orphans[:3]}"
    assert {s["service"] for s in spans} == SERVICES
    names = {str(s["name"]) for s in spans}
    assert {"publish cmd", "handle orchestrator-commands", "publish work", "publish report"} <= names
    assert any(n.startswith("provider ") for n in names), "a span per provider call"
    assert {s["subject_id"] for s in spans if s["name"] == "handle orchestrator-commands"} == {job_id}
