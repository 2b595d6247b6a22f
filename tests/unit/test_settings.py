"""Configuration precedence and secret masking (pure: no servers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from segflow.settings import (
    CONFIG_FILE_ENV,
    CassandraSettings,
    ClientSettings,
    KafkaSettings,
    StackProcessSettings,
    masked_dump,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SEGFLOW_"):
            monkeypatch.delenv(key)


def test_defaults_match_the_local_stack() -> None:
    settings = ClientSettings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.cassandra.contact_points == ["127.0.0.1"]
    assert settings.cassandra.port == 9042
    assert StackProcessSettings().stack.cassandra_port == 9042


def test_env_nested_keys_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("SEGFLOW_CASSANDRA__CONTACT_POINTS", "10.0.0.1, 10.0.0.2")
    monkeypatch.setenv("SEGFLOW_CASSANDRA__PORT", "19042")
    monkeypatch.setenv("SEGFLOW_KAFKA__EXTRA", '{"linger.ms": "20"}')
    settings = ClientSettings()
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.cassandra.contact_points == ["10.0.0.1", "10.0.0.2"]
    assert settings.cassandra.port == 19042
    assert settings.kafka.client_config()["linger.ms"] == "20"


def test_env_beats_file_beats_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "segflow.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "file:9092"\ncommands_topic = "from-file"\n'
        '[cassandra]\ncontact_points = ["c1", "c2"]\nkeyspace = "prod_ks"\n'
    )
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("SEGFLOW_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    settings = ClientSettings()
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.kafka.commands_topic == "from-file"
    assert settings.cassandra.contact_points == ["c1", "c2"]
    assert settings.cassandra.keyspace == "prod_ks"
    assert settings.kafka.dead_letter_topic == "segflow-commands-dlq"


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        ClientSettings()


def test_sasl_and_tls_pass_through_and_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SEGFLOW_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SEGFLOW_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("SEGFLOW_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("SEGFLOW_KAFKA__EXTRA", '{"sasl.oauthbearer.client.secret": "s3cr3t"}')
    monkeypatch.setenv("SEGFLOW_CASSANDRA__PASSWORD", "cass-pw")
    settings = ClientSettings()
    conf = settings.kafka.client_config()
    assert conf["sasl.password"] == "hunter2"
    assert conf["security.protocol"] == "SASL_SSL"
    dumped = json.dumps(masked_dump(settings))
    for secret in ("hunter2", "s3cr3t", "cass-pw"):
        assert secret not in dumped
    assert masked_dump(settings)["kafka"]["sasl_password"] == "**********"


def test_replication_strategies() -> None:
    assert "SimpleStrategy" in CassandraSettings().replication_cql()
    nts = CassandraSettings(
        replication_class="NetworkTopologyStrategy", dc_replication={"dc2": 3, "dc1": 3}
    )
    assert nts.replication_cql() == ("{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 3}")
    with pytest.raises(ValueError, match="dc_replication"):
        CassandraSettings(replication_class="NetworkTopologyStrategy").replication_cql()


def test_invalid_keyspace_name_rejected() -> None:
    with pytest.raises(ValueError, match="keyspace"):
        CassandraSettings(keyspace="drop table; --")


def test_config_show_cli_masks_secrets(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SEGFLOW_KAFKA__SASL_PASSWORD": "hunter2"}
    out = subprocess.run(
        [sys.executable, "-m", "segflow.cli", "config", "show"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shown = json.loads(out)
    assert shown["kafka"]["sasl_password"] == "**********"
    assert "hunter2" not in out
    assert KafkaSettings().commands_topic == shown["kafka"]["commands_topic"]
