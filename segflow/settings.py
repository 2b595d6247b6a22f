"""Configuration: one pydantic-settings model per process, built from shared sections.

Every segflow process (``stack``, ``db migrate``, ``upload``, ``consume``, ``serve``) reads the
same sources in the same order, so an SRE learns one set of names:

1. keyword arguments given by the CLI (flags),
2. environment variables ``SEGFLOW_<SECTION>__<KEY>`` (e.g. ``SEGFLOW_KAFKA__BOOTSTRAP_SERVERS``),
3. a TOML file named by ``SEGFLOW_CONFIG_FILE`` (sections ``[kafka]``, ``[cassandra]``, ...),
4. defaults, which match the local stack started by ``segflow stack up``.

Secrets are ``SecretStr`` and are masked by ``segflow config show``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "SEGFLOW_CONFIG_FILE"

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    """Accept ``"a,b"`` from env vars as well as real lists from TOML."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KafkaSettings(BaseModel):
    """Kafka client options shared by producers, consumers and admin clients."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    commands_topic: str = "segflow-commands"
    dead_letter_topic: str = "segflow-commands-dlq"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Any other librdkafka property, passed through verbatim.",
    )

    def client_config(self) -> dict[str, Any]:
        """librdkafka configuration for these settings (secrets revealed only here)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        optional: dict[str, str | None] = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": _reveal(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _reveal(self.ssl_key_password),
        }
        conf.update({key: value for key, value in optional.items() if value is not None})
        conf.update(self.extra)
        return conf


class CassandraSettings(BaseModel):
    """Cassandra driver options and the keyspace segflow owns."""

    contact_points: CommaList = Field(default_factory=lambda: ["127.0.0.1"])
    port: int = 9042
    local_dc: str | None = Field(
        default=None, description="Datacenter for DCAwareRoundRobinPolicy; None = driver default."
    )
    keyspace: str = Field(default="segflow", pattern=r"^[a-z][a-z0-9_]{0,47}$")
    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    replication_class: Literal["SimpleStrategy", "NetworkTopologyStrategy"] = "SimpleStrategy"
    replication_factor: int = Field(default=1, ge=1)
    dc_replication: dict[str, int] = Field(
        default_factory=dict,
        description="NetworkTopologyStrategy only: datacenter name -> replicas.",
    )
    request_timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)

    _split = field_validator("contact_points", mode="before")(_split_commas)

    def replication_cql(self) -> str:
        """The keyspace's replication map as a CQL literal."""
        if self.replication_class == "SimpleStrategy":
            return f"{{'class': 'SimpleStrategy', 'replication_factor': {self.replication_factor}}}"
        if not self.dc_replication:
            raise ValueError(
                "cassandra.dc_replication must name at least one datacenter "
                "with NetworkTopologyStrategy"
            )
        dcs = ", ".join(f"'{dc}': {rf}" for dc, rf in sorted(self.dc_replication.items()))
        return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"


class LogSettings(BaseModel):
    """Structured logging options."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class StackSettings(BaseModel):
    """The local development stack (Kafka + Cassandra JVMs started by ``segflow stack``)."""

    state_dir: Path = Path(".segflow/stack")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    kafka_heap_mb: int = Field(default=512, ge=256)
    cassandra_heap_mb: int = Field(default=1024, ge=512)
    start_timeout_s: float = Field(default=180.0, gt=0)
    stop_timeout_s: float = Field(default=60.0, gt=0)
    java: str = "java"
    mvn: str = "mvn"
    maven_repo_local: Path | None = Field(
        default=None, description="Overrides Maven's local repository (default ~/.m2/repository)."
    )


class ConsumerOptions(BaseModel):
    """The consumer group: batching, concurrency, retries, shutdown, health port, policies."""

    group_id: str = "segflow-consumer"
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    poll_timeout_s: float = Field(default=1.0, gt=0)
    max_in_flight: int = Field(default=128, ge=1, description="Concurrent Cassandra writes.")
    shutdown_timeout_s: float = Field(
        default=30.0, gt=0, description="SIGTERM: finish, commit and close within this bound."
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=9400, ge=0, le=65535, description="0 = pick a free port.")
    unknown_segment_policy: Literal["reject", "create"] = "reject"
    default_bucket_count: int = Field(
        default=1024,
        ge=1,
        le=65536,
        description="Membership partitions per new segment (fixed at creation).",
    )
    retry_initial_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=5.0, gt=0)
    retry_attempts: int = Field(
        default=5, ge=1, description="Attempts per batch before partitions are paused."
    )
    statistics_interval_ms: int = Field(default=5000, ge=0)
    registry_cache_ttl_s: float = Field(default=30.0, ge=0)
    events_ttl_days: int = Field(default=400, ge=1)
    idle_exit_s: float = Field(default=5.0, gt=0, description="--until-idle: quiet period.")


class UploadOptions(BaseModel):
    """``segflow upload``: every flag has a setting (flags win), so jobs can be configured."""

    format: str = Field(
        default="auto",
        description="auto|mediarithmics-ndjson|mediarithmics-csv|village|segmenter",
    )
    topic: str | None = Field(default=None, description="Defaults to kafka.commands_topic.")
    import_name: str = Field(default="default", description="Import the executions belong to.")
    max_errors: str = Field(
        default="0", pattern=r"^\d+%?$", description="Rejected lines allowed: N or N%."
    )
    rejects: Path | None = Field(
        default=None, description="Rejects file (a directory when uploading several files)."
    )
    strict: bool = False
    dry_run: bool = False
    wait: bool = False
    timeout_s: float = Field(default=3600.0, gt=0, description="--wait bound.")
    new_execution: bool = False
    linger_ms: int = Field(default=20, ge=0)
    batch_size_bytes: int = Field(default=1_000_000, ge=1024)
    compression: Literal["zstd", "lz4", "snappy", "gzip", "none"] = "zstd"
    queue_max_kbytes: int = Field(
        default=32768, ge=1024, description="Producer buffer (payload bytes): bounds memory."
    )
    queue_max_messages: int = Field(
        default=100_000,
        ge=1000,
        description="Producer buffer (messages): librdkafka's per-message overhead is "
        "several hundred bytes, so this, not the byte cap, bounds memory for small records.",
    )
    progress_interval_s: float = Field(default=1.0, gt=0)


class ServeOptions(BaseModel):
    """``segflow serve``: the export API, its API keys and its background export workers."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535, description="0 = pick a free port.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Accepted x-api-key values (comma-separated in env)."
    )
    api_key_dir: Path | None = Field(
        default=None,
        description="Directory of mounted secret files, one API key per file (e.g. a "
        "Kubernetes Secret volume); re-read on change, so keys rotate without a restart.",
    )
    export_dir: Path = Field(
        default=Path(".segflow/exports"), description="Where finished export files are kept."
    )
    poll_url_ttl_s: int = Field(
        default=86_400, ge=60, description="How long an export's poll URL stays valid."
    )
    max_pending_per_key: int = Field(
        default=5, ge=1, description="Exports queued or running per API key; more -> 429."
    )
    workers: int = Field(default=2, ge=0, description="Background export worker threads.")
    max_attempts: int = Field(
        default=2, ge=1, description="Runs of one export job before it is marked failed."
    )
    lease_s: float = Field(
        default=60.0,
        gt=0,
        description="A running job whose worker stops renewing for this "
        "long is taken over by another worker (or marked failed after max_attempts).",
    )
    scan_interval_s: float = Field(
        default=1.0, gt=0, description="How often idle workers look for queued exports."
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base of poll_url (e.g. https://segflow.example.com); "
        "default: the request's own scheme and host.",
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on a pending poll.")
    page_size: int = Field(default=2000, ge=100, le=50_000, description="Cassandra page size.")

    _split = field_validator("api_keys", mode="before")(_split_commas)


class SegflowSettings(BaseSettings):
    """Base of every process model: env prefix, nested delimiter and the optional TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="SEGFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags > env > config file > defaults."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        sources.append(file_secret_settings)
        return tuple(sources)


class StackProcessSettings(SegflowSettings):
    """``segflow stack ...``."""

    stack: StackSettings = Field(default_factory=StackSettings)


class MigrateSettings(SegflowSettings):
    """``segflow db migrate``."""

    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)


class ClientSettings(SegflowSettings):
    """Commands that only need both endpoints (smoke checks, ``segflow segments``, ``members``)."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)


class ConsumeSettings(SegflowSettings):
    """``segflow consume``."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    consumer: ConsumerOptions = Field(default_factory=ConsumerOptions)


class UploadSettings(SegflowSettings):
    """``segflow upload`` and ``segflow executions``."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    upload: UploadOptions = Field(default_factory=UploadOptions)


class ServeSettings(SegflowSettings):
    """``segflow serve`` and ``segflow export``."""

    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    serve: ServeOptions = Field(default_factory=ServeOptions)


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def masked_dump(settings: BaseSettings) -> dict[str, Any]:
    """Effective configuration as plain data with every secret replaced by ``**********``."""
    dumped: dict[str, Any] = _mask(settings.model_dump(mode="python"))
    return dumped


_SECRET_KEY = re.compile(r"password|secret|token|credential", re.IGNORECASE)


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, dict):
        return {
            key: "**********" if _SECRET_KEY.search(str(key)) and item else _mask(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
