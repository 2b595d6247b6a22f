"""The Helm chart, rendered by a real ``helm`` and validated against Kubernetes' schemas.

``helm`` and ``helm-docs`` are built once from the Go module proxy (``go install``) into
``.segflow/bin/`` and reused while the pinned version is unchanged (tests/support/go_tools.py).
Rendered built-in kinds are validated with kubernetes-validate (the API's OpenAPI schemas for
``KUBE_VERSION``); the CRD kinds (ServiceMonitor, PrometheusRule, ScaledObject) have their
required fields checked here. The chart is also rendered as the dependency of an umbrella
chart, and the script of its ``helm test`` pod is run against a real consumer HTTP port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from segflow.settings import (
    ClientSettings,
    ConsumeSettings,
    MigrateSettings,
    SegflowSettings,
    ServeSettings,
)
from tests.support import helm_values_doc
from tests.support.go_tools import GoToolError, go_tool
from tests.support.settings_env import unknown_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "segflow"
KUBE_VERSION = "1.31.0"
CRDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}
CRD_API_VERSIONS = {"monitoring.coreos.com/v1", "keda.sh/v1alpha1"}

ALL_ON: dict[str, Any] = {
    "exportApi": {
        "replicas": 2,
        "persistence": {"accessMode": "ReadWriteMany"},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
            }
        ],
    },
    "kafka": {
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "saslUsername": "segflow",
        "existingSecret": "segflow-kafka",
        "tls": {"caSecret": "kafka-ca"},
    },
    "cassandra": {
        "username": "segflow",
        "existingSecret": "segflow-cassandra",
        "dcReplication": {"dc1": 3},
        "tls": {"enabled": True, "caSecret": "cassandra-ca"},
    },
    "extraVolumes": [{"name": "certs", "secret": {"secretName": "client-certs"}}],
    "extraVolumeMounts": [{"name": "certs", "mountPath": "/etc/segflow/certs", "readOnly": True}],
    "consumer": {"autoscaling": {"keda": True}, "priorityClassName": "segflow-critical"},
    "podAnnotations": {"example.com/team": "crm"},
    "podLabels": {"team": "crm"},
    "topics": {"create": True},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True, "runbookBaseUrl": "https://wiki.example.com/segflow"},
        "grafanaDashboard": {"enabled": True},
    },
    "networkPolicy": {
        "enabled": True,
        "prometheusNamespaceSelector": {"matchLabels": {"name": "monitoring"}},
        "prometheusPodSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        "apiClients": [{"podSelector": {"matchLabels": {"app": "crm"}}}],
    },
}
# The other shapes a release can take: HPA instead of KEDA; everything optional off.
HPA: dict[str, Any] = {"consumer": {"autoscaling": {"hpa": True, "maxReplicas": 4}}}
MINIMAL: dict[str, Any] = {
    "exportApi": {"enabled": False},
    "migrations": {"enabled": False},
    "serviceAccount": {"create": False},
    "consumer": {"replicas": 1, "podDisruptionBudget": {"enabled": False}},
}
NO_PVC: dict[str, Any] = {"exportApi": {"persistence": {"enabled": False}}}
# A direct producer's newer schema, shipped with the release (README "Schema evolution").
PRODUCER_SCHEMA = '{"type": "record", "name": "SegmentCommand", "fields": []}'
WRITER_SCHEMAS: dict[str, Any] = {
    "consumer": {"writerSchemas": {"files": {"producer-v2.avsc": PRODUCER_SCHEMA}}}
}
VARIANTS = {
    "defaults": None,
    "all-on": ALL_ON,
    "hpa": HPA,
    "minimal": MINIMAL,
    "no-pvc": NO_PVC,
    "writer-schemas": WRITER_SCHEMAS,
}


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary, built with ``go install`` on first use."""
    try:
        return go_tool("helm")
    except GoToolError as exc:
        pytest.fail(str(exc), pytrace=False)


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


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_helm_lint_is_clean(helm: Path, tmp_path: Path, values: dict[str, Any] | None) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    result = _helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_rendered_manifests_are_valid_kubernetes(
    helm: Path, tmp_path: Path, values: dict[str, Any] | None
) -> None:
    docs = render(helm, tmp_path, values)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service"} <= kinds
    for doc in docs:
        if doc["kind"] in CRDS:
            check_custom_resource(doc)
        else:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def check_custom_resource(doc: dict[str, Any]) -> None:
    """The fields each CRD requires, and the names it refers to (no schemas offline)."""
    assert doc["apiVersion"] in CRD_API_VERSIONS
    assert doc["metadata"]["name"]
    spec = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        assert spec["selector"]["matchLabels"]
        assert all(e["port"] and e["path"] == "/metrics" for e in spec["endpoints"])
    elif doc["kind"] == "PrometheusRule":
        for group in spec["groups"]:
            assert group["name"]
            assert all(rule["alert"] and rule["expr"] for rule in group["rules"])
    elif doc["kind"] == "ScaledObject":
        assert spec["scaleTargetRef"]["name"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka"
            assert all(isinstance(v, str) for v in trigger["metadata"].values())
            assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(
                trigger["metadata"]
            )
    elif doc["kind"] == "TriggerAuthentication":
        refs = spec.get("secretTargetRef", []) + spec.get("env", [])
        assert refs
        assert all(ref["parameter"] and ref["name"] for ref in refs)


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
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["metadata"]["consumerGroup"] == "segflow-consumer"
    assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("scram_sha512", "enable")
    auth = by_kind(docs, "TriggerAuthentication")[0]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert {(r["parameter"], r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]} == {
        ("password", "segflow-kafka", "sasl-password"),
        ("ca", "kafka-ca", "ca.crt"),
    }
    assert auth["spec"]["env"] == [
        {
            "parameter": "username",
            "name": "SEGFLOW_KAFKA__SASL_USERNAME",
            "containerName": "consumer",
        }
    ]
    consumer = deployment(docs, "consumer")
    assert "replicas" not in consumer["spec"]  # the autoscaler owns it
    env = env_of(consumer["spec"]["template"]["spec"]["containers"][0])
    assert env["SEGFLOW_KAFKA__SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "segflow-kafka", "key": "sasl-password"}
    }
    assert env["SEGFLOW_CASSANDRA__PASSWORD"] == {
        "secretKeyRef": {"name": "segflow-cassandra", "key": "password"}
    }
    assert env["SEGFLOW_KAFKA__SSL_CA_LOCATION"] == "/etc/segflow/tls/kafka/ca.crt"
    assert env["SEGFLOW_CASSANDRA__TLS_CA_FILE"] == "/etc/segflow/tls/cassandra/ca.crt"
    for component in ("consumer", "export-api"):
        pod = deployment(docs, component)["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert {
            "/etc/segflow/tls/kafka",
            "/etc/segflow/tls/cassandra",
            "/etc/segflow/certs",
        } <= mounts
        assert {v["name"] for v in pod["volumes"]} >= {"kafka-ca", "cassandra-ca", "certs"}
    rule = by_kind(docs, "PrometheusRule")[0]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "SegflowConsumerLagGrowing",
        "SegflowDeadLetterRate",
        "SegflowCassandraWriteErrors",
        "SegflowNoCommit",
        "SegflowIngestUnavailable",
        "SegflowConsumerNotReady",
        "SegflowExportJobsFailing",
    }
    # The rules are files/alerts.yaml itself, only the runbook links re-pointed.
    source = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    rendered = rule["spec"]
    for group in rendered["groups"]:
        for r in group["rules"]:
            url = r["annotations"]["runbook_url"]
            assert url == "https://wiki.example.com/segflow#" + r["alert"].lower()
            r["annotations"]["runbook_url"] = None
    for group in source["groups"]:
        for r in group["rules"]:
            r["annotations"]["runbook_url"] = None
    assert rendered == source
    dashboard = by_kind(docs, "ConfigMap")[0]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert (CHART / "files" / "dashboard.json").read_text().strip() == dashboard["data"][
        "segflow.json"
    ].strip()


def test_export_api_grace_period_covers_the_ingestion_shutdown_bound(
    helm: Path, tmp_path: Path
) -> None:
    docs = render(helm, tmp_path, None, "exportApi.ingest.shutdownTimeoutSeconds=90")
    pod = deployment(docs, "export-api")["spec"]["template"]["spec"]
    assert env_of(pod["containers"][0])["SEGFLOW_SERVE__SHUTDOWN_TIMEOUT_S"] == "90"
    assert pod["terminationGracePeriodSeconds"] == 100


@pytest.mark.parametrize("shutdown", [None, 50])
def test_grace_period_covers_the_shutdown_bound(
    helm: Path, tmp_path: Path, shutdown: int | None
) -> None:
    """One value sets both: the consumer's bound and, with a margin, the pod's grace period."""
    sets = [] if shutdown is None else [f"consumer.shutdownTimeoutSeconds={shutdown}"]
    docs = render(helm, tmp_path, None, *sets)
    pod = deployment(docs, "consumer")["spec"]["template"]["spec"]
    bound = float(env_of(pod["containers"][0])["SEGFLOW_CONSUMER__SHUTDOWN_TIMEOUT_S"])
    assert bound == (shutdown or 30)
    assert pod["terminationGracePeriodSeconds"] >= bound + 10


def test_probes_rollout_and_hooks(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, None)
    consumer = deployment(docs, "consumer")
    assert consumer["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    pod = consumer["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    api = deployment(docs, "export-api")["spec"]["template"]["spec"]
    api_env = env_of(api["containers"][0])
    assert api_env["SEGFLOW_SERVE__API_KEY_DIR"] == "/etc/segflow/api-keys"
    # The ingestion limits (docs/operations.md, "Ingestion API"), rendered as the model reads
    # them (an 8 GiB cap must not turn into 8.589934592e+09).
    assert api_env["SEGFLOW_SERVE__MAX_STREAM_BODY_BYTES"] == str(8 << 30)
    assert api_env["SEGFLOW_SERVE__MAX_CONCURRENT_PER_KEY"] == "16"
    assert api_env["SEGFLOW_SERVE__SHUTDOWN_TIMEOUT_S"] == "30"
    assert api["terminationGracePeriodSeconds"] >= 30 + 10
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
        (["consumer.replicas=7"], "consumer.replicas must not exceed kafka.topicPartitions"),
        (
            ["consumer.autoscaling.minReplicas=5", "consumer.autoscaling.maxReplicas=4"],
            "minReplicas must not exceed",
        ),
        (["kafka.saslMechanism=SCRAM-SHA-1"], "value must be one of"),
        (
            [
                "consumer.writerSchemas.existingConfigMap=cm",
                "consumer.writerSchemas.files.a\\.avsc=xx",
            ],
            "set files or existingConfigMap, not both",
        ),
        (["consumer.writerSchemas.files.notes\\.txt=x"], "does not match pattern"),
        (["kafka.securityProtocol=SASL_SSL"], "needs kafka.saslMechanism"),
        (
            ["kafka.securityProtocol=SASL_SSL", "kafka.saslMechanism=PLAIN"],
            "needs kafka.saslUsername and kafka.existingSecret",
        ),
        (["cassandra.username=segflow"], "needs cassandra.existingSecret"),
        (["cassandra.tls.caSecret=ca"], "cassandra.tls.enabled is false"),
        (["metrics.prometheusRule.runbookBaseUrl=docs/operations.md"], "pattern"),
        (
            [
                "consumer.autoscaling.keda=true",
                "kafka.securityProtocol=SASL_SSL",
                "kafka.saslMechanism=OAUTHBEARER",
            ],
            "cannot pass SASL mechanism",
        ),
    ],
)
def test_bad_values_are_refused(helm: Path, tmp_path: Path, sets: list[str], message: str) -> None:
    args = ["template", "segflow", str(CHART), "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    result = _helm(helm, *args)
    assert result.returncode != 0
    assert message in result.stderr


def _writer_schema_mounts(docs: list[dict[str, Any]]) -> tuple[Any, Any, Any, Any]:
    pod = deployment(docs, "consumer")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    mount = [m for m in container["volumeMounts"] if m["name"] == "writer-schemas"]
    volume = [v for v in pod["spec"]["volumes"] if v["name"] == "writer-schemas"]
    annotations = pod["metadata"].get("annotations", {})
    return env_of(container).get("SEGFLOW_CONSUMER__WRITER_SCHEMA_DIR"), mount, volume, annotations


def test_writer_schemas_are_a_mounted_config_map(helm: Path, tmp_path: Path) -> None:
    """consumer.writerSchemas: the consumer reads the ConfigMap's *.avsc keys at start-up."""
    assert _writer_schema_mounts(render(helm, tmp_path, None))[:3] == (None, [], [])

    docs = render(helm, tmp_path, WRITER_SCHEMAS)
    directory, mount, volume, annotations = _writer_schema_mounts(docs)
    assert directory == "/etc/segflow/writer-schemas"
    assert mount == [{"name": "writer-schemas", "mountPath": directory, "readOnly": True}]
    (config_map,) = [
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-writer-schemas")
    ]
    assert volume == [
        {"name": "writer-schemas", "configMap": {"name": config_map["metadata"]["name"]}}
    ]
    assert config_map["data"] == {"producer-v2.avsc": PRODUCER_SCHEMA}
    # A changed schema rolls the pods: the consumer loads the directory only at start-up.
    changed = {
        "consumer": {"writerSchemas": {"files": {"producer-v2.avsc": PRODUCER_SCHEMA + " "}}}
    }
    other = _writer_schema_mounts(render(helm, tmp_path, changed))[3]
    assert annotations["checksum/writer-schemas"] != other["checksum/writer-schemas"]

    existing = {"consumer": {"writerSchemas": {"existingConfigMap": "producer-schemas"}}}
    docs = render(helm, tmp_path, existing)
    directory, _, volume, _ = _writer_schema_mounts(docs)
    assert directory == "/etc/segflow/writer-schemas"
    assert volume == [{"name": "writer-schemas", "configMap": {"name": "producer-schemas"}}]
    assert not [d for d in by_kind(docs, "ConfigMap") if "writer-schemas" in d["metadata"]["name"]]


def test_readme_is_what_helm_docs_generates() -> None:
    """The README's values table is helm-docs' output for values.yaml and README.md.gotmpl."""
    generated = helm_values_doc.render()
    assert (CHART / "README.md").read_text() == generated, (
        "helm/segflow/README.md is stale: run .venv/bin/python -m tests.support.helm_values_doc"
    )
    assert "| consumer.startupProbe | object |" in generated
    assert helm_values_doc.undocumented(generated) == []


def test_an_undocumented_value_is_caught(tmp_path: Path) -> None:
    chart = tmp_path / "segflow"
    shutil.copytree(CHART, chart)
    with (chart / "values.yaml").open("a") as values:
        values.write("\nsurprise: 1\n")
    assert helm_values_doc.undocumented(helm_values_doc.render(chart)) == ["surprise"]


# The settings model each container's command loads (segflow/config_cli.py's processes).
PROCESS_SETTINGS: dict[tuple[str, ...], type[SegflowSettings]] = {
    ("consume",): ConsumeSettings,
    ("serve",): ServeSettings,
    ("db", "migrate"): MigrateSettings,
    ("topics", "create"): ClientSettings,
}


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["defaults", "all-on"])
def test_every_setting_the_chart_sets_is_read_by_its_process(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, Any] | None
) -> None:
    """The settings models ignore unknown variables: a misspelt one would be silently lost.

    Each container's SEGFLOW_<SECTION>__<KEY> must name a field of its process's model, and the
    model must accept the rendered values (secrets stand in as placeholders).
    """
    docs = render(helm, tmp_path, values)
    containers = [
        container
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]
    assert {tuple(c["args"]) for c in containers} >= {("consume",), ("db", "migrate")}
    for container in containers:
        model = PROCESS_SETTINGS[tuple(container["args"])]
        env = {
            name: value if isinstance(value, str) else "placeholder"
            for name, value in env_of(container).items()
            if name.startswith("SEGFLOW_")
        }
        assert unknown_settings(model, env) == [], container["name"]
        for name in [n for n in os.environ if n.startswith("SEGFLOW_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = model()
        if isinstance(settings, ConsumeSettings):
            assert settings.consumer.http_host == "0.0.0.0"
            assert settings.consumer.shutdown_timeout_s == 30
        if isinstance(settings, ServeSettings):
            assert settings.serve.host == "0.0.0.0"
            assert settings.serve.max_stream_body_bytes == 8 << 30
            assert settings.serve.ingest_errors_retention_days == 30
            assert str(settings.serve.api_key_dir) == "/etc/segflow/api-keys"
        if values is ALL_ON and isinstance(settings, MigrateSettings):
            assert settings.cassandra.dc_replication == {"dc1": 3}
            assert settings.cassandra.password is not None


def test_tls_without_a_ca_secret_uses_the_image_bundle(helm: Path, tmp_path: Path) -> None:
    """librdkafka's bundled OpenSSL does not find Debian's CAs by itself: name the bundle."""
    values = {
        "kafka": {"securityProtocol": "SSL"},
        "cassandra": {"tls": {"enabled": True, "verifyHostname": False}},
    }
    docs = render(helm, tmp_path, values)
    env = env_of(deployment(docs, "consumer")["spec"]["template"]["spec"]["containers"][0])
    assert env["SEGFLOW_KAFKA__SSL_CA_LOCATION"] == "/etc/ssl/certs/ca-certificates.crt"
    assert env["SEGFLOW_CASSANDRA__TLS_CA_FILE"] == "/etc/ssl/certs/ca-certificates.crt"
    assert env["SEGFLOW_CASSANDRA__TLS_VERIFY_HOSTNAME"] == "false"
    plain = env_of(
        deployment(render(helm, tmp_path, None), "consumer")["spec"]["template"]["spec"][
            "containers"
        ][0]
    )
    assert "SEGFLOW_KAFKA__SSL_CA_LOCATION" not in plain
    assert "SEGFLOW_CASSANDRA__TLS_CA_FILE" not in plain


def test_export_files_volume(helm: Path, tmp_path: Path) -> None:
    """PVC by default (Recreate: one RWO volume); emptyDir when persistence is off."""
    docs = render(helm, tmp_path, None)
    api = deployment(docs, "export-api")
    assert api["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["exports"]["persistentVolumeClaim"]["claimName"]
    assert [pvc["metadata"]["name"] for pvc in by_kind(docs, "PersistentVolumeClaim")] == [claim]
    docs = render(helm, tmp_path, NO_PVC)
    volumes = {
        v["name"]: v for v in deployment(docs, "export-api")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["exports"] == {"name": "exports", "emptyDir": {}}
    assert not by_kind(docs, "PersistentVolumeClaim")


def _documents(helm: Path, *args: str) -> list[dict[str, Any]]:
    result = _helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize(
    ("sets", "prefix", "name"),
    [
        ([], "prod-segflow", "segflow"),
        (["nameOverride=flow"], "prod-flow", "flow"),
        (["fullnameOverride=crm-segments"], "crm-segments", "segflow"),
    ],
)
def test_names_follow_name_and_fullname_overrides(
    helm: Path, sets: list[str], prefix: str, name: str
) -> None:
    args = ["template", "prod", str(CHART), "--kube-version", KUBE_VERSION]
    args += ["--set", "metrics.serviceMonitor.enabled=true"]
    for item in sets:
        args += ["--set", item]
    docs = _documents(helm, *args)
    assert deployment(docs, "consumer")["metadata"]["name"] == f"{prefix}-consumer"
    assert deployment(docs, "export-api")["metadata"]["name"] == f"{prefix}-export-api"
    for doc in docs:
        assert doc["metadata"]["name"].startswith(prefix), doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == name
    for kind in ("Deployment",):
        for doc in by_kind(docs, kind):
            assert doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name
    monitor = by_kind(docs, "ServiceMonitor")[0]
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name


def test_pod_metadata_security_contexts_and_scheduling(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, ALL_ON, "podSecurityContext.runAsUser=20000")
    for component in ("consumer", "export-api"):
        spec = deployment(docs, component)["spec"]
        template = spec["template"]
        assert template["metadata"]["annotations"] == {"example.com/team": "crm"}
        assert template["metadata"]["labels"]["team"] == "crm"
        assert "team" not in spec["selector"]["matchLabels"]  # selectors are immutable
        pod = template["spec"]
        assert pod["securityContext"]["runAsUser"] == 20000
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["containers"][0]["startupProbe"]["httpGet"]["path"] == "/healthz"
        for constraint in pod["topologySpreadConstraints"]:
            selected = constraint["labelSelector"]["matchLabels"]
            assert selected == spec["selector"]["matchLabels"]
    consumer = deployment(docs, "consumer")["spec"]["template"]["spec"]
    assert consumer["priorityClassName"] == "segflow-critical"
    assert consumer["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    api = deployment(docs, "export-api")["spec"]["template"]["spec"]
    assert "priorityClassName" not in api
    assert api["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
    pdb = by_kind(docs, "PodDisruptionBudget")[0]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    relaxed = render(helm, tmp_path, None, "securityContext.readOnlyRootFilesystem=false")
    container = deployment(relaxed, "consumer")["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is False


def _notes(helm: Path, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as ``helm install`` prints it (rendered through a ConfigMap in a copy)."""
    chart = tmp_path / "notes" / "segflow"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ include "segflow/templates/NOTES.txt" . | quote }}\n'
    )
    args = ["template", "prod", str(chart), "--kube-version", KUBE_VERSION, "--namespace", "crm"]
    args += ["--show-only", "templates/notes-check.yaml"]
    for item in sets:
        args += ["--set", item]
    notes: str = _documents(helm, *args)[0]["data"]["notes"]
    return notes


def test_notes_tell_how_to_reach_and_test_the_release(helm: Path, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path)
    assert "helm test prod -n crm" in notes
    assert "port-forward svc/prod-segflow-export-api 8080:80" in notes
    assert "app.kubernetes.io/instance=prod,app.kubernetes.io/component=consumer" in notes
    assert "No ServiceMonitor was created" in notes
    without_api = _notes(helm, tmp_path / "b", "exportApi.enabled=false")
    assert "Export API" not in without_api


def _test_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pods = by_kind(docs, "Pod")
    assert len(pods) == 1
    return pods[0]


def test_helm_test_pod_checks_the_release_endpoints(helm: Path, tmp_path: Path) -> None:
    """The pod's script, run here against a real consumer port: passes ready, fails not."""
    from consumer.http_endpoints import HealthServer
    from consumer.metrics import ConsumerMetrics

    docs = render(helm, tmp_path, None)
    pod = _test_pod(docs)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    kubernetes_validate.validate(pod, KUBE_VERSION, strict=True)
    container = pod["spec"]["containers"][0]
    assert (
        container["image"]
        == deployment(docs, "consumer")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    script, *urls = container["args"]
    assert urls == [
        "http://segflow-consumer:9400/readyz",
        "http://segflow-consumer:9400/metrics",
        "http://segflow-export-api:80/readyz",
        "http://segflow-export-api:80/metrics",
    ]
    assert [
        url
        for url in _test_pod(render(helm, tmp_path, MINIMAL))["spec"]["containers"][0]["args"][1:]
        if "export-api" in url
    ] == []

    def run(ready: bool) -> subprocess.CompletedProcess[str]:
        server = HealthServer(
            "127.0.0.1",
            0,
            ConsumerMetrics().registry,
            lambda: (True, {}),
            lambda: (ready, {"cassandra": ready}),
        )
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            return subprocess.run(
                [sys.executable, "-c", script, f"{base}/readyz", f"{base}/metrics"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            server.stop()

    passed = run(ready=True)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.splitlines()[-1].endswith("/metrics 200")
    failed = run(ready=False)
    assert failed.returncode != 0
    assert "503" in failed.stderr


def test_network_policy_lets_the_test_pod_in(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, ALL_ON)
    test_labels = _test_pod(docs)["metadata"]["labels"]
    for policy in by_kind(docs, "NetworkPolicy"):
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
        selectors = [peer["podSelector"]["matchLabels"] for peer in peers if "podSelector" in peer]
        assert any(
            selector and all(test_labels.get(k) == v for k, v in selector.items())
            for selector in selectors
        ), policy["metadata"]["name"]


def test_chart_works_as_a_dependency_of_an_umbrella_chart(helm: Path, tmp_path: Path) -> None:
    umbrella = tmp_path / "umbrella"
    umbrella.mkdir()
    (umbrella / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "crm-platform",
                "version": "1.0.0",
                "dependencies": [
                    {"name": "segflow", "version": "0.1.0", "repository": f"file://{CHART}"}
                ],
            }
        )
    )
    (umbrella / "values.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {"imageRegistry": "registry.example.com", "storageClass": "fast"},
                "segflow": {
                    "nameOverride": "segments",
                    "kafka": {"bootstrapServers": "kafka.platform:9092"},
                    "podLabels": {"platform": "crm"},
                },
            }
        )
    )
    built = _helm(helm, "dependency", "build", str(umbrella))
    assert built.returncode == 0, built.stderr
    assert (umbrella / "charts" / "segflow-0.1.0.tgz").is_file()
    linted = _helm(helm, "lint", str(umbrella), "--strict", "--kube-version", KUBE_VERSION)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    docs = _documents(helm, "template", "platform", str(umbrella), "--kube-version", KUBE_VERSION)
    consumer = deployment(docs, "consumer")
    assert consumer["metadata"]["name"] == "platform-segments-consumer"
    pod = consumer["spec"]["template"]
    assert pod["metadata"]["labels"]["platform"] == "crm"
    assert env_of(pod["spec"]["containers"][0])["SEGFLOW_KAFKA__BOOTSTRAP_SERVERS"] == (
        "kafka.platform:9092"
    )
    for doc in docs:
        if doc["kind"] not in CRDS:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
