"""Every service's /metrics after a story job: it parses as Prometheus' text format, follows its
naming rules (what ``promtool check metrics`` checks), and carries what the dashboard reads."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from atelier_devstack.stack import Stack
from tests.e2e.client import submit_story, wait_terminal
from tests.unit.test_observability_config import dashboard_metrics

pytestmark = pytest.mark.e2e

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def test_metrics_parse_follow_the_rules_and_hold_what_the_dashboard_reads(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        job_id = submit_story(client, "Measured", "a heron who counts the rain")["id"]
        assert wait_terminal(client, job_id)["status"] == "succeeded"
        client.get(f"/v1/jobs/{job_id}/events")

    families: dict[str, dict[str, set[str]]] = {}
    for service in ("gateway", "orchestrator", "provider-router", "media", "export"):
        r = httpx.get(f"{stack.url_of(service)}/metrics", timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        for family in text_string_to_metric_families(r.text):
            assert NAME.fullmatch(family.name)
            assert family.documentation, f"{family.name} has a HELP line"
            if family.type == "counter":
                assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
            if family.type == "histogram":
                assert any(s.name.endswith("_bucket") for s in family.samples) or not family.samples
            names = families.setdefault(service, {}).setdefault(family.name, set())
            names.update(s.name for s in family.samples)

    everywhere = {name for f in families.values() for name in f}
    wanted = {m.removesuffix("_total") for m in dashboard_metrics()}
    assert wanted <= everywhere, f"the dashboard reads what no service exports: {sorted(wanted - everywhere)}"
    orchestrator, gateway, router = families["orchestrator"], families["gateway"], families["provider-router"]
    assert "job_latency_seconds_bucket" in orchestrator["job_latency_seconds"]
    assert "atelier_consumer_oldest_seconds" in orchestrator["atelier_consumer_oldest_seconds"]
    assert "atelier_http_request_duration_seconds_bucket" in gateway["atelier_http_request_duration_seconds"]
    assert "routed_total" in router["routed"]
    assert "atelier_handled_total" in orchestrator["atelier_handled"]
    assert "atelier_published_total" in router["atelier_published"], "reports go through the publish seam"
