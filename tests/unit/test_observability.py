"""The dashboard and the alert rules use only metrics the code registers.

Metric names are read from the two registries (``ConsumerMetrics``, ``ExportMetrics``) with the
sample suffixes Prometheus exposes for each type; every ``segflow_*`` identifier in a PromQL
expression of ``helm/segflow/files/dashboard.json`` or ``alerts.yaml`` must be one of them, and
so must every one the chart's templates (the HPA's external metric), its values and README, and
the operations guide mention. Runbook links must point at a heading of docs/operations.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumer.metrics import ConsumerMetrics
from http_api.export.metrics import ExportMetrics

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "helm" / "segflow" / "files"
OPERATIONS = ROOT / "docs" / "operations.md"
IDENTIFIER = re.compile(r"\bsegflow_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a scrape of ``registry`` can contain (labelled or not)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def family_names(registry: CollectorRegistry) -> set[str]:
    """Metric names as documentation writes them (a histogram by its family name)."""
    return {family.name for family in registry.collect()}


REGISTRIES = [ConsumerMetrics().registry, ExportMetrics().registry]
KNOWN = set().union(*(exposed_names(registry) for registry in REGISTRIES))
FAMILIES = set().union(*(family_names(registry) for registry in REGISTRIES))


def unknown_metrics(expressions: list[str], known: set[str] = KNOWN) -> set[str]:
    used = {name for expr in expressions for name in IDENTIFIER.findall(expr)}
    return used - known


def dashboard_expressions() -> list[str]:
    dashboard: dict[str, Any] = json.loads((FILES / "dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    rules: dict[str, Any] = yaml.safe_load((FILES / "alerts.yaml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_the_checker_catches_a_metric_that_does_not_exist() -> None:
    assert unknown_metrics(["rate(segflow_consumer_commands_applied_total[5m])"]) == set()
    assert unknown_metrics(["segflow_consumer_lag_records_total > 1"]) == {
        "segflow_consumer_lag_records_total"
    }
    assert unknown_metrics(["rate(segflow_consumer_batch_size_records_bucket[5m])"]) == set()


def test_dashboard_uses_only_registered_metrics() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 13
    assert unknown_metrics(expressions) == set()


def test_chart_and_guide_mention_only_registered_metrics() -> None:
    texts = [
        path.read_text()
        for path in [
            *sorted((FILES.parent / "templates").iterdir()),
            FILES.parent / "values.yaml",
            FILES.parent / "README.md",
            OPERATIONS,
        ]
    ]
    assert "segflow_consumer_lag_records" in "".join(texts)  # the scan sees something
    assert unknown_metrics(texts, KNOWN | FAMILIES) == set()
    assert unknown_metrics(["segflow_consumer_apply_latency"], KNOWN | FAMILIES) == {
        "segflow_consumer_apply_latency"
    }


def test_alerts_use_only_registered_metrics() -> None:
    rules = alert_rules()
    assert len(rules) == 6
    assert unknown_metrics([rule["expr"] for rule in rules]) == set()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_links_an_existing_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in ("warning", "critical")
    anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/operations.md has no heading for #{anchor}"


def test_consumer_port_serves_metrics_and_probes_the_prometheus_way() -> None:
    from consumer.http_endpoints import HealthServer
    from tests.support.export_server import call
    from tests.support.prometheus_http import assert_prometheus_endpoints

    metrics = ConsumerMetrics()
    metrics.lag.labels(topic="commands", partition="0").set(7)
    server = HealthServer(
        "127.0.0.1",
        0,
        metrics.registry,
        lambda: (True, {"loop": "polling"}),
        lambda: (False, {"cassandra": False}),
    )
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        text = assert_prometheus_endpoints(base)
        assert 'segflow_consumer_lag_records{partition="0",topic="commands"} 7.0' in text
        assert call("GET", f"{base}/healthz").status == 200
        assert call("GET", f"{base}/readyz").status == 503
        assert call("GET", f"{base}/nope").status == 404
        refused = call("POST", f"{base}/metrics", body=b"")
        assert refused.status == 405
        assert refused.headers["Allow"] == "GET, HEAD"
    finally:
        server.stop()
