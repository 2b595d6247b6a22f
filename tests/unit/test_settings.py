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


def config_show(env: dict[str, str]) -> str:
    """``segflow config show`` in a subprocess with exactly ``env`` (and a PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "segflow.cli", "config", "show"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_config_show_cli_masks_secrets(tmp_path: Path) -> None:
    out = config_show({"SEGFLOW_KAFKA__SASL_PASSWORD": "hunter2"})
    shown = json.loads(out)
    assert shown["kafka"]["sasl_password"] == "**********"
    assert "hunter2" not in out
    assert KafkaSettings().commands_topic == shown["kafka"]["commands_topic"]


# librdkafka's properties that can hold a secret (its _RK_SENSITIVE list) and likely future ones.
SECRET_PROPERTIES = [
    "sasl.password",
    "sasl.username",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.extensions",
    "ssl.key.pem",
    "ssl.key.password",
    "ssl.key.location",
    "ssl.keystore.password",
    "ssl.ca.pem",
    "ssl.certificate.pem",
    "ssl_key",
    "sasl.jaas.config",
    "https.client.key.pem",
    "Some.Future.Token",
]
PLAIN_PROPERTIES = ["linger.ms", "client.id", "compression.type", "socket.timeout.ms", "acks"]


@pytest.mark.parametrize("name", SECRET_PROPERTIES)
def test_secret_librdkafka_properties_in_extra_are_masked(name: str) -> None:
    from segflow.settings import LIBRDKAFKA_SENSITIVE, is_secret_property

    assert is_secret_property(name)
    extra = {name: "TOPSECRET-VALUE", **dict.fromkeys(PLAIN_PROPERTIES, "42")}
    settings = ClientSettings(kafka=KafkaSettings(extra=extra))
    dumped = masked_dump(settings)
    assert "TOPSECRET-VALUE" not in json.dumps(dumped)
    assert dumped["kafka"]["extra"][name] == "**********"
    assert all(dumped["kafka"]["extra"][plain] == "42" for plain in PLAIN_PROPERTIES)
    assert set(SECRET_PROPERTIES) >= LIBRDKAFKA_SENSITIVE


@pytest.mark.parametrize("name", PLAIN_PROPERTIES)
def test_plain_librdkafka_properties_are_shown(name: str) -> None:
    from segflow.settings import is_secret_property

    assert not is_secret_property(name)


def test_config_show_masks_extra_secrets_end_to_end() -> None:
    secrets = {"ssl.key.pem": "-----BEGIN PRIVATE KEY-----abc", "sasl.oauthbearer.config": "x=s3"}
    out = config_show({"SEGFLOW_KAFKA__EXTRA": json.dumps(secrets)})
    assert "BEGIN PRIVATE KEY" not in out
    assert "x=s3" not in out
    assert json.loads(out)["kafka"]["extra"] == {
        "ssl.key.pem": "**********",
        "sasl.oauthbearer.config": "**********",
    }


def test_unknown_env_names_skip_known_reserved_and_mapping_keys() -> None:
    from segflow.settings_load import unknown_env

    environ = {
        "SEGFLOW_KAFKA__BOOTSTRAP_SERVERS": "x",
        "segflow_cassandra__port": "1",  # names are case-insensitive
        "SEGFLOW_KAFKA__EXTRA__linger.ms": "5",
        "SEGFLOW_KAFKA": "{}",
        "SEGFLOW_CONFIG_FILE": "f",
        "SEGFLOW_DEBUG": "1",
        "SEGFLOW_TEST_KEEP_STACK": "1",
        "SEGFLOW_STACK__KAFKA_PORT": "1",  # read by another process: still known
        "SEGFLOW_CONSUMER__BATCHSIZE": "1",
        "SEGFLOW_NOPE": "1",
        "OTHER": "1",
    }
    assert [(w.name, w.message) for w in unknown_env(environ)] == [
        (
            "SEGFLOW_CONSUMER__BATCHSIZE",
            "unknown setting SEGFLOW_CONSUMER__BATCHSIZE ignored "
            "(did you mean SEGFLOW_CONSUMER__BATCH_SIZE?)",
        ),
        ("SEGFLOW_NOPE", "unknown setting SEGFLOW_NOPE ignored"),
    ]


def test_every_field_has_a_description() -> None:
    """Help texts and the README table are generated from these."""
    from segflow.settings_load import section_models

    missing = [
        f"{section}.{key}"
        for section, model in section_models().items()
        for key, info in model.model_fields.items()
        if not info.description
    ]
    assert missing == []


def test_upload_formats_match_the_readers() -> None:
    import typing

    from producer_tools.readers.registry import FORMATS
    from segflow.settings import UploadOptions

    choices = typing.get_args(UploadOptions.model_fields["format"].annotation)
    assert list(choices) == ["auto", *FORMATS]


def test_readme_settings_table_is_the_generated_one() -> None:
    """README "Configuration" lists every setting exactly as ``segflow config keys`` does."""
    from segflow.config_cli import markdown_table, settings_rows

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table(settings_rows()) in readme, (
        "README settings table is stale: paste `segflow config keys --markdown`"
    )
