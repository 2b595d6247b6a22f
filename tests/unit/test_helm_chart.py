"""The Helm chart, rendered by a real ``helm`` and validated against Kubernetes' schemas.

``helm`` is built once from the Go module proxy (``go install helm.sh/helm/v3/cmd/helm``) into
``.segflow/bin/`` and reused while the pinned version is unchanged (~2 min cold on 2 cores).
Rendered built-in kinds are validated with kubernetes-validate (the API's OpenAPI schemas for
``KUBE_VERSION``); the CRD kinds (ServiceMonitor, PrometheusRule, ScaledObject) have their
required fields checked here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "segflow"
BIN_DIR = ROOT / ".segflow" / "bin"
HELM = BIN_DIR / "helm"
HELM_VERSION = "v3.22.0"
STAMP = BIN_DIR / "helm.version"
KUBE_VERSION = "1.31.0"
CRDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}

ALL_ON: dict[str, Any] = {
    "exportApi": {"replicas": 2, "persistence": {"accessMode": "ReadWriteMany"}},
    "kafka": {
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "saslUsername": "segflow",
        "existingSecret": "segflow-kafka",
    },
    "cassandra": {
        "username": "segflow",
        "existingSecret": "segflow-cassandra",
        "dcReplication": {"dc1": 3},
    },
    "consumer": {"autoscaling": {"keda": True}},
    "topics": {"create": True},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
    "networkPolicy": {
        "enabled": True,
        "apiClients": [{"podSelector": {"matchLabels": {"app": "crm"}}}],
    },
}


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary, built with ``go install`` on first use."""
    if HELM.is_file() and STAMP.is_file() and STAMP.read_text().strip() == HELM_VERSION:
        return HELM
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain (`go`) is needed to build helm", pytrace=False)
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
        env={**os.environ, "GOBIN": str(BIN_DIR), "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"go install helm failed:\n{result.stderr}", pytrace=False)
    STAMP.write_text(HELM_VERSION + "\n")
    return HELM


def _helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(
    helm: Path, tmp_path: Path, values: dict[str, Any] | None = None, *sets: str
) -> list[dict[str, Any]]:
    args = ["template", "segflow", str(CHART), "--kube-version", KUBE_VERSION]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    result = _helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def deployment(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    found = [
        d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["defaults", "all-on"])
def test_helm_lint_is_clean(helm: Path, tmp_path: Path, values: dict[str, Any] | None) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    result = _helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["defaults", "all-on"])
def test_rendered_manifests_are_valid_kubernetes(
    helm: Path, tmp_path: Path, values: dict[str, Any] | None
) -> None:
    docs = render(helm, tmp_path, values)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "Job", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        if doc["kind"] in CRDS:
            assert doc["apiVersion"] in ("monitoring.coreos.com/v1", "keda.sh/v1alpha1")
            assert doc["metadata"]["name"]
            assert doc["spec"]
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_all_optional_features_render(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, ALL_ON)
    kinds = {doc["kind"] for doc in docs}
    assert {
        "ScaledObject",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ConfigMap",
    } <= kinds
    scaled = by_kind(docs, "ScaledObject")[0]
    assert scaled["spec"]["maxReplicaCount"] <= 6
    assert scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"] == "segflow-consumer"
    consumer = deployment(docs, "consumer")
    assert "replicas" not in consumer["spec"]  # the autoscaler owns it
    env = env_of(consumer["spec"]["template"]["spec"]["containers"][0])
    assert env["SEGFLOW_KAFKA__SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "segflow-kafka", "key": "sasl-password"}
    }
    assert env["SEGFLOW_CASSANDRA__PASSWORD"] == {
        "secretKeyRef": {"name": "segflow-cassandra", "key": "password"}
    }
    rule = by_kind(docs, "PrometheusRule")[0]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "SegflowConsumerLagGrowing",
        "SegflowDeadLetterRate",
        "SegflowCassandraWriteErrors",
        "SegflowNoCommit",
        "SegflowConsumerNotReady",
        "SegflowExportJobsFailing",
    }
    dashboard = by_kind(docs, "ConfigMap")[0]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert (CHART / "files" / "dashboard.json").read_text().strip() == dashboard["data"][
        "segflow.json"
    ].strip()


def test_probes_grace_period_and_hooks(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, None, "consumer.shutdownTimeoutSeconds=50")
    pod = deployment(docs, "consumer")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    shutdown = int(env_of(container)["SEGFLOW_CONSUMER__SHUTDOWN_TIMEOUT_S"])
    assert shutdown == 50
    assert pod["terminationGracePeriodSeconds"] >= shutdown + 10
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    api = deployment(docs, "export-api")["spec"]["template"]["spec"]
    api_env = env_of(api["containers"][0])
    assert api_env["SEGFLOW_SERVE__API_KEY_DIR"] == "/etc/segflow/api-keys"
    mounts = {m["mountPath"] for m in api["containers"][0]["volumeMounts"]}
    assert {"/etc/segflow/api-keys", "/var/lib/segflow/exports"} <= mounts
    jobs = by_kind(docs, "Job")
    assert [job["spec"]["template"]["spec"]["containers"][0]["args"] for job in jobs] == [
        ["db", "migrate"]
    ]
    assert "pre-install" in jobs[0]["metadata"]["annotations"]["helm.sh/hook"]
    assert "pre-upgrade" in jobs[0]["metadata"]["annotations"]["helm.sh/hook"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["consumer.replicas=-1"], "minimum"),
        (["consumer.replica=3"], "additional properties"),
        (["log.level=LOUD"], "value must be one of"),
        (["kafka.bootstrapServers="], "minLength"),
        (["cassandra.keyspace=Bad-Name"], "pattern"),
        (["consumer.autoscaling.hpa=true", "consumer.autoscaling.keda=true"], "not both"),
        (["consumer.autoscaling.maxReplicas=12"], "must not exceed kafka.topicPartitions"),
        (["exportApi.replicas=3"], "ReadWriteMany"),
    ],
)
def test_bad_values_are_refused(helm: Path, tmp_path: Path, sets: list[str], message: str) -> None:
    args = ["template", "segflow", str(CHART), "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    result = _helm(helm, *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_every_value_is_documented() -> None:
    """Each leaf of values.yaml appears in the chart README's values table."""
    readme = (CHART / "README.md").read_text()
    missing = [
        leaf
        for leaf in _leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
        if f"`{leaf}`" not in readme
    ]
    assert not missing, f"values missing from helm/segflow/README.md: {missing}"


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and key
            not in {"resources", "livenessProbe", "readinessProbe", "labels", "requests", "limits"}
        ):
            out += _leaves(value, path + ".")
        else:
            out.append(path)
    return out
