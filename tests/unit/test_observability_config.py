"""The dashboard, Prometheus' scrape config and compose.yaml agree with each other and with what
the services expose: a dashboard that names a metric nobody exports, or scrapes a port nobody
listens on, fails here, not on an operator's screen."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/atelier.json"
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge", "text"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "rate", "irate", "increase", "by", "without", "histogram_quantile",
    "le", "on", "ignoring", "count", "topk", "bottomk", "and", "or", "unless",
}  # fmt: skip


def load_yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def dashboard_metrics() -> set[str]:
    """Every metric family the dashboard's queries read (suffixes of samples taken off)."""
    found = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r"\{[^}]*\}|\[[^]]*\]|\"[^\"]*\"", "", target["expr"])
            # A metric: a name with an underscore that is no function (labels here have none).
            for name in re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", expr):
                if "_" in name and name not in PROMQL_WORDS:
                    found.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return found


def test_the_dashboard_is_well_formed_and_reads_the_provisioned_datasource() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"]
    assert board["title"] == "Atelier"
    assert isinstance(board["schemaVersion"], int)
    datasources = load_yaml("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    prometheus = next(d for d in datasources if d["type"] == "prometheus")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"]["uid"] == prometheus["uid"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")")
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for wanted in ("p50 / p95", "failure rate", "fallback ratio", "backlog"):
        assert wanted in titles


def test_the_dashboard_reads_the_metrics_the_code_declares() -> None:
    declared = set()
    for source in ROOT.glob("**/src/**/*.py"):
        for kind, name in re.findall(r"\b(Counter|Histogram|Gauge)\(\s*\"([a-z_]+)\"", source.read_text()):
            declared.add(name.removesuffix("_total") if kind == "Counter" else name)
    wanted = {m.removesuffix("_total") for m in dashboard_metrics()}
    assert wanted, "the dashboard queries something"
    assert wanted <= declared, f"not exported by any service: {sorted(wanted - declared)}"


def test_prometheus_scrapes_every_service_on_the_port_compose_gives_it() -> None:
    compose = load_yaml("compose.yaml")["services"]
    scrape = load_yaml("deploy/prometheus/prometheus.yml")["scrape_configs"]
    targets = {
        t.split(":")[0]: int(t.split(":")[1])
        for job in scrape
        if job["job_name"] == "atelier"
        for group in job["static_configs"]
        for t in group["targets"]
    }
    assert set(targets) == {"gateway", "orchestrator", "provider-router", "media", "export"}
    for service, port in targets.items():
        health = " ".join(compose[service]["healthcheck"]["test"])
        assert f":{port}/ready" in health, f"{service} is scraped and checked on the same port"
    for watcher in ("jaeger", "prometheus", "grafana", "nats", "postgres"):
        assert watcher in compose
    assert any("nats:/data" in v for v in compose["nats"]["volumes"]), "JetStream on a persistent volume"
