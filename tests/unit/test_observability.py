"""The dashboard, the alert rules and the Prometheus config, checked by promtool.

* ``promtool check rules`` / ``check config`` parse the alert rules and the compose stack's
  Prometheus config; ``promtool test rules`` runs the alert unit tests of
  ``ops/prometheus/alerts_test.yaml`` (two installs on one Prometheus alert apart).
* Every dashboard query is evaluated by promtool against series generated from the code's own
  registries (``ConsumerMetrics``, ``ExportMetrics``, ``IngestMetrics``): it must return data
  for the selected namespace and job, and none for another namespace or another job. A
  misspelt metric, a PromQL syntax error or a missing ``namespace``/``job`` filter fails.
* ``promtool check metrics`` lints the exposition of both registries (naming conventions).
* Prose (chart templates, values, README, operations guide) may only name registered metrics;
  runbook links must point at a heading of docs/operations.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from consumer.metrics import ConsumerMetrics
from http_api.export.metrics import ExportMetrics
from http_api.ingest.metrics import IngestMetrics
from tests.support.promtool import promtool

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "helm" / "segflow" / "files"
OPERATIONS = ROOT / "docs" / "operations.md"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yaml"
PROMETHEUS_CONFIG = ROOT / "ops" / "prometheus" / "prometheus.yml"
IDENTIFIER = re.compile(r"\bsegflow_[a-z0-9_]*[a-z0-9]\b")  # not segflow_export_*
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def populated(metrics: object) -> CollectorRegistry:
    """The registry of ``metrics`` with one child per labelled metric, so every name shows."""
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*("x" for _ in metric._labelnames))
    registry: CollectorRegistry = vars(metrics)["registry"]
    return registry


REGISTRIES = [populated(ConsumerMetrics()), populated(ExportMetrics()), populated(IngestMetrics())]


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a scrape of ``registry`` can contain (labelled or not)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def family_names(registry: CollectorRegistry) -> set[str]:
    """Metric names as documentation writes them (a histogram by its family name)."""
    return {family.name for family in registry.collect()}


KNOWN = set().union(*(exposed_names(registry) for registry in REGISTRIES))
FAMILIES = set().union(*(family_names(registry) for registry in REGISTRIES))


def unknown_metrics(texts: list[str], known: set[str] = KNOWN) -> set[str]:
    """``segflow_*`` words of prose that no registry exposes."""
    used = {name for text in texts for name in IDENTIFIER.findall(text)}
    return used - known


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FILES / "dashboard.json").read_text())
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of the dashboard."""
    found = [
        (f"panel {panel['id']} {target['refId']} ({panel['title']})", target["expr"])
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(SELECTOR, label): the selector is the PromQL part.
            call = variable["query"]["query"].removeprefix("label_values(").removesuffix(")")
            found.append((f"variable {variable['name']}", call.rsplit(",", 1)[0]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    rules: dict[str, Any] = yaml.safe_load((FILES / "alerts.yaml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def series_of(registry: CollectorRegistry, namespace: str, job: str) -> list[str]:
    """Every series a scrape of ``registry`` gives, as promtool input, with target labels."""
    series = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = {**sample.labels, "namespace": namespace, "job": job}
            inner = ", ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
            series.append(f"{sample.name}{{{inner}}}")
    return series


def in_install(query: str, namespace: str, job: str) -> str:
    """A dashboard query as Grafana sends it with one namespace and one job selected."""
    return (
        query.replace("$__rate_interval", "5m")
        .replace("$namespace", namespace)
        .replace("$job", job)
    )


def test_alert_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", FILES / "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_alert_unit_tests_pass() -> None:
    tested = promtool("test", "rules", ALERT_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test_that_fires_it_with_namespace_and_job() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired: dict[str, list[dict[str, Any]]] = {}
    for case in tests:
        for check in case["alert_rule_test"]:
            fired.setdefault(check["alertname"], []).extend(check["exp_alerts"])
    for rule in alert_rules():
        labels = [alert["exp_labels"] for alert in fired.get(rule["alert"], [])]
        assert any({"namespace", "job"} <= set(found) for found in labels), rule["alert"]


def test_alert_tests_feed_only_registered_series() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    names = {entry["series"].split("{", 1)[0] for case in tests for entry in case["input_series"]}
    assert names
    assert names - KNOWN == set()


def test_prometheus_config_passes_promtool_check_with_the_rules(tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["rule_files"] = [str(FILES / "alerts.yaml")]  # compose mounts it there
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    for path in (PROMETHEUS_CONFIG, copy):
        checked = promtool("check", "config", path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_dashboard_has_namespace_and_job_variables_and_rate_interval() -> None:
    names = [variable["name"] for variable in dashboard()["templating"]["list"]]
    assert names == ["datasource", "namespace", "job"]
    queries = [query for _, query in dashboard_queries()]
    assert len(queries) >= 23
    assert all("[5m]" not in query for query in queries)
    assert sum("$__rate_interval" in query for query in queries) >= 10


def test_every_dashboard_query_is_valid_promql_and_filters_on_namespace_and_job(
    tmp_path: Path,
) -> None:
    """promtool evaluates each query for the selected install and for two others."""
    installs = {"selected": ("a", "j"), "other_namespace": ("b", "j"), "other_job": ("a", "k")}
    rules: list[dict[str, str]] = []
    checks: list[dict[str, Any]] = []
    where: dict[str, str] = {}
    for index, (place, query) in enumerate(dashboard_queries()):
        # A variable lists the installs to choose from: it filters on nothing (namespace) or on
        # the namespace only (job), so only a panel must find nothing in another install.
        variants = installs if place.startswith("panel") else {"selected": installs["selected"]}
        for variant, (namespace, job) in variants.items():
            name = f"q{index}_{variant}"
            where[name] = place
            rules.append({"alert": name, "expr": f"count({in_install(query, namespace, job)}) > 0"})
            fires: list[dict[str, Any]] = [{"exp_labels": {}}] if variant == "selected" else []
            checks.append({"eval_time": "20m", "alertname": name, "exp_alerts": fires})
    (tmp_path / "dashboard_rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    parsed = promtool("check", "rules", tmp_path / "dashboard_rules.yaml")
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    # Data in namespace a / job j and in namespace b / job k; none in a/k or b/j.
    series = [
        series
        for registry in REGISTRIES
        for namespace, job in (("a", "j"), ("b", "k"))
        for series in series_of(registry, namespace, job)
    ]
    test = {
        "rule_files": ["dashboard_rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": "0+1x30"} for s in series],
                "alert_rule_test": checks,
            }
        ],
    }
    (tmp_path / "dashboard_test.yaml").write_text(yaml.safe_dump(test))
    tested = promtool("test", "rules", tmp_path / "dashboard_test.yaml")
    report = tested.stdout + tested.stderr
    for name, place in where.items():
        report = report.replace(f"alertname: {name},", f"alertname: {name} = {place},")
    assert tested.returncode == 0, report


def test_exposition_passes_promtool_check_metrics() -> None:
    for registry in REGISTRIES:
        checked = promtool("check", "metrics", stdin=generate_latest(registry).decode())
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout + checked.stderr == ""


def test_the_prose_checker_catches_a_metric_that_does_not_exist() -> None:
    assert unknown_metrics(["segflow_consumer_commands_applied_total"]) == set()
    assert unknown_metrics(["segflow_consumer_lag"]) == {"segflow_consumer_lag"}


def test_chart_and_guide_mention_only_registered_metrics() -> None:
    texts = [
        path.read_text()
        for path in [
            *sorted(path for path in (FILES.parent / "templates").rglob("*") if path.is_file()),
            FILES.parent / "values.yaml",
            FILES.parent / "README.md",
            OPERATIONS,
            ROOT / "README.md",
        ]
    ]
    assert "segflow_consumer_lag_records" in "".join(texts)  # the scan sees something
    assert unknown_metrics(texts, KNOWN | FAMILIES) == set()
    assert unknown_metrics(["segflow_consumer_apply_latency"], KNOWN | FAMILIES) == {
        "segflow_consumer_apply_latency"
    }


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
