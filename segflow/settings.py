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

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from segflow.db.layout import MAX_TTL_S
from segflow.kafka_logging import client_log_hooks

CONFIG_FILE_ENV = "SEGFLOW_CONFIG_FILE"

CommaList = Annotated[list[str], NoDecode]
ConsistencyName = Literal[
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"
]
SerialConsistencyName = Literal["SERIAL", "LOCAL_SERIAL"]
# The consumer's Kafka poll bound and the liveness window of /healthz: a batch's writes must
# finish well inside both, or the group evicts the member / the orchestrator restarts it.
MAX_POLL_INTERVAL_S = 300.0
LIVENESS_STALL_S = 120.0


def _split_commas(value: Any) -> Any:
    """Accept ``"a,b"`` from env vars as well as real lists from TOML."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KafkaSettings(BaseModel):
    """Kafka client options shared by producers, consumers and admin clients."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", min_length=1, description="Comma-separated host:port list."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="librdkafka security.protocol."
    )
    sasl_mechanism: str | None = Field(
        default=None, description="e.g. PLAIN, SCRAM-SHA-512, OAUTHBEARER."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    ssl_ca_location: str | None = Field(default=None, description="CA bundle file (PEM).")
    ssl_certificate_location: str | None = Field(
        default=None, description="Client certificate file (PEM)."
    )
    ssl_key_location: str | None = Field(default=None, description="Client key file (PEM).")
    ssl_key_password: SecretStr | None = Field(
        default=None, description="Client key passphrase (secret)."
    )
    commands_topic: str = Field(
        default="segflow-commands", min_length=1, description="Topic of the commands."
    )
    dead_letter_topic: str = Field(
        default="segflow-commands-dlq",
        min_length=1,
        description="Topic of the records that can never be applied.",
    )
    topic_partitions: int = Field(
        default=6, ge=1, description="Partitions of the topics `topics create` makes."
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of the topics `topics create` makes."
    )
    probe_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="How long a command waits for the brokers to answer before "
        "'Kafka unreachable' (exit 3).",
    )
    log_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="librdkafka log lines and client errors: the same message at most once "
        "per this many seconds (the next one says how many were suppressed); 0 = no limit.",
    )
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Any other librdkafka property, passed through verbatim (JSON object in "
        "env); values of properties that can hold a secret are masked by `config show`.",
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
        conf.update(client_log_hooks(self.bootstrap_servers, self.log_interval_s))
        return conf


class CassandraSettings(BaseModel):
    """Cassandra driver options and the keyspace segflow owns."""

    contact_points: CommaList = Field(
        default_factory=lambda: ["127.0.0.1"],
        min_length=1,
        description="Contact points (comma-separated in env).",
    )
    port: int = Field(default=9042, ge=1, le=65535, description="Native protocol port.")
    local_dc: str | None = Field(
        default=None, description="Datacenter for DCAwareRoundRobinPolicy; None = driver default."
    )
    keyspace: str = Field(
        default="segflow",
        pattern=r"^[a-z][a-z0-9_]{0,47}$",
        description="Keyspace segflow owns (created by `db migrate`).",
    )
    username: str | None = Field(default=None, description="PlainText auth user name.")
    password: SecretStr | None = Field(default=None, description="PlainText auth password.")
    tls_ca_file: str | None = Field(default=None, description="CA bundle: enables TLS.")
    tls_cert_file: str | None = Field(
        default=None, description="Client certificate (mutual TLS); enables TLS."
    )
    tls_key_file: str | None = Field(default=None, description="Client key (mutual TLS).")
    tls_verify_hostname: bool = Field(default=True, description="Check the server's name.")
    replication_class: Literal["SimpleStrategy", "NetworkTopologyStrategy"] = Field(
        default="SimpleStrategy", description="Keyspace replication strategy (`db migrate`)."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="SimpleStrategy replicas (`db migrate`)."
    )
    dc_replication: dict[str, int] = Field(
        default_factory=dict,
        description="NetworkTopologyStrategy only: datacenter name -> replicas.",
    )
    request_timeout_s: float = Field(default=10.0, gt=0, description="Per-request timeout.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Connection timeout.")
    write_consistency: ConsistencyName = Field(
        default="LOCAL_QUORUM",
        description="Consistency of writes (default execution profile); acknowledged = "
        "this many replicas hold it.",
    )
    serial_consistency: SerialConsistencyName = Field(
        default="LOCAL_SERIAL",
        description="Serial consistency of lightweight transactions (segment registry).",
    )
    read_consistency: ConsistencyName = Field(
        default="LOCAL_QUORUM",
        description="Consistency of reads (`read` execution profile: export API, CLI reads).",
    )

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

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )
    format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="auto = text on a terminal, one JSON object per line otherwise.",
    )


class StackSettings(BaseModel):
    """The local development stack (Kafka + Cassandra JVMs started by ``segflow stack``)."""

    state_dir: Path = Field(
        default=Path(".segflow/stack"), description="Data, logs and pid files of the nodes."
    )
    nodes: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Kafka brokers and Cassandra nodes (node i on 127.0.0.i, same ports); "
        "3 gives RF 3 and min.insync.replicas 2.",
    )
    kafka_port: int = Field(default=9092, ge=1, le=65535, description="Kafka client port.")
    kafka_controller_port: int = Field(
        default=9093, ge=1, le=65535, description="Kafka KRaft controller port."
    )
    cassandra_port: int = Field(
        default=9042, ge=1, le=65535, description="Cassandra native protocol port."
    )
    cassandra_storage_port: int = Field(
        default=7000, ge=1, le=65535, description="Cassandra storage (gossip) port."
    )
    kafka_heap_mb: int = Field(default=512, ge=256, description="Kafka JVM heap.")
    cassandra_heap_mb: int = Field(default=1024, ge=512, description="Cassandra JVM heap.")
    start_timeout_s: float = Field(
        default=180.0, gt=0, description="`stack up` fails with the node's log after this."
    )
    stop_timeout_s: float = Field(
        default=60.0, gt=0, description="`stack down`: SIGKILL after this."
    )
    java: str = Field(default="java", description="Java 17+ executable.")
    mvn: str = Field(default="mvn", description="Maven executable (resolves the server jars).")
    maven_repo_local: Path | None = Field(
        default=None, description="Overrides Maven's local repository (default ~/.m2/repository)."
    )


class ConsumerOptions(BaseModel):
    """The consumer group: batching, concurrency, retries, shutdown, health port, policies."""

    group_id: str = Field(default="segflow-consumer", min_length=1, description="Consumer group.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Consumer processes to fork (each a group member, metrics port + index).",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Records polled and written per batch."
    )
    poll_timeout_s: float = Field(
        default=1.0, gt=0, description="One poll's wait for a batch to fill (up to batch_size)."
    )
    max_in_flight: int = Field(
        default=128, ge=1, description="Concurrent Cassandra requests (grouped batches or rows)."
    )
    write_grouping: Literal["PARTITION_KEY", "REPLICA_SET", "DISABLED"] = Field(
        default="REPLICA_SET",
        description="UNLOGGED batches of one partition, of one replica set, or single rows.",
    )
    group_max_rows: int = Field(
        default=50, ge=1, le=1000, description="Statements per grouped batch at most."
    )
    group_max_bytes: int = Field(
        default=40_960,
        ge=1024,
        le=1_048_576,
        description="Bound values per grouped batch at most (keep below the server's "
        "batch_size_fail_threshold, 50 KiB by default).",
    )
    write_deadline_s: float = Field(
        default=60.0,
        gt=0,
        description="A batch's writes, retries included, stop after this; the batch is then "
        "held and retried while partitions are paused.",
    )
    shutdown_timeout_s: float = Field(
        default=30.0, gt=0, description="SIGTERM: finish, commit and close within this bound."
    )
    http_host: str = Field(default="127.0.0.1", description="Health/metrics listen address.")
    http_port: int = Field(
        default=9400, ge=0, le=65535, description="Health/metrics port; 0 = pick a free port."
    )
    unknown_segment_policy: Literal["reject", "create"] = Field(
        default="reject",
        description="A command naming an unregistered segment: dead-letter it or register it.",
    )
    default_bucket_count: int = Field(
        default=1024,
        ge=1,
        le=65536,
        description="Membership partitions per new segment (fixed at creation).",
    )
    writer_schema_dir: Path | None = Field(
        default=None,
        description="Directory of extra writer schemas (*.avsc) producers may write with, "
        "each checked against the current schema at start-up (an incompatible one stops "
        "the consumer, named).",
    )
    retry_initial_s: float = Field(default=0.2, gt=0, description="First write retry delay.")
    retry_max_s: float = Field(default=5.0, gt=0, description="Longest write retry delay.")
    retry_attempts: int = Field(
        default=5, ge=1, description="Attempts per batch before partitions are paused."
    )
    statistics_interval_ms: int = Field(
        default=5000, ge=0, description="librdkafka statistics (consumer lag gauge); 0 = off."
    )
    registry_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="Segment registry cache lifetime."
    )
    events_ttl_days: int = Field(
        default=400,
        ge=1,
        le=MAX_TTL_S // 86400,
        description="Change events are kept so long (Cassandra's TTL limit is 20 years).",
    )
    idle_exit_s: float = Field(default=5.0, gt=0, description="--until-idle: quiet period.")


class DeadLetterOptions(BaseModel):
    """``segflow dlq inspect|replay``: which dead letters to read, and how."""

    reason: CommaList = Field(
        default_factory=list,
        description="Only dead letters with these dlq.reason values (comma-separated); "
        "empty = every reason.",
    )
    execution_id: str | None = Field(
        default=None, description="Only dead letters of this execution (dlq.execution_id)."
    )
    partition: int | None = Field(
        default=None, ge=0, description="Only this partition of the dead-letter topic."
    )
    from_offset: int | None = Field(
        default=None, ge=0, description="First dead-letter topic offset to read (inclusive)."
    )
    to_offset: int | None = Field(
        default=None, ge=0, description="Last dead-letter topic offset to read (inclusive)."
    )
    samples: int = Field(
        default=3, ge=0, le=100, description="inspect: one-line samples shown per reason."
    )
    time_bucket: Literal["minute", "hour", "day"] = Field(
        default="hour", description="inspect: width of the time buckets counted."
    )
    dry_run: bool = Field(
        default=False, description="replay: count what would be sent, send nothing."
    )
    read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Give up when the dead-letter topic sends nothing for so long.",
    )

    _split = field_validator("reason", mode="before")(_split_commas)


class UploadOptions(BaseModel):
    """``segflow upload``: every flag has a setting (flags win), so jobs can be configured."""

    format: Literal["auto", "mediarithmics-ndjson", "mediarithmics-csv", "village", "segmenter"] = (
        Field(default="auto", description="Input format; auto = detected from the content.")
    )
    topic: str | None = Field(default=None, description="Defaults to kafka.commands_topic.")
    import_name: str = Field(default="default", description="Import the executions belong to.")
    max_errors: str = Field(
        default="0",
        description="Rejected lines allowed before the upload fails: a count N or a share N% "
        "of the lines read (e.g. 10 or 0.5%).",
    )
    rejects: Path | None = Field(
        default=None, description="Rejects file (a directory when uploading several files)."
    )
    strict: bool = Field(default=False, description="Unknown fields are errors.")
    dry_run: bool = Field(
        default=False, description="Validate and write rejects only (no Kafka, no Cassandra)."
    )
    wait: bool = Field(
        default=False, description="Wait until every command is applied or dead-lettered."
    )
    timeout_s: float = Field(default=3600.0, gt=0, description="Bound of --wait, in seconds.")
    new_execution: bool = Field(
        default=False, description="Never reuse an execution of the same content."
    )
    linger_ms: int = Field(default=20, ge=0, description="Producer linger.ms.")
    batch_size_bytes: int = Field(default=1_000_000, ge=1024, description="Producer batch.size.")
    compression: Literal["zstd", "lz4", "snappy", "gzip", "none"] = Field(
        default="zstd", description="Producer compression.type."
    )
    queue_max_kbytes: int = Field(
        default=32768, ge=1024, description="Producer buffer (payload bytes): bounds memory."
    )
    queue_max_messages: int = Field(
        default=100_000,
        ge=1000,
        description="Producer buffer (messages): librdkafka's per-message overhead is "
        "several hundred bytes, so this, not the byte cap, bounds memory for small records.",
    )
    progress_interval_s: float = Field(
        default=1.0, gt=0, description="Live progress line refresh (interactive stderr)."
    )
    wait_report_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="--wait on a non-interactive stderr: one progress line this often.",
    )
    save_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a running upload saves its counters; the same save sees "
        "`executions cancel` and stops the upload.",
    )

    @field_validator("max_errors")
    @classmethod
    def _budget(cls, value: str) -> str:
        if not _MAX_ERRORS.fullmatch(value.strip()):
            raise ValueError("expected a count N or a share N% of the lines read, e.g. 10 or 0.5%")
        return value.strip()


_MAX_ERRORS = re.compile(r"\d+|\d+(\.\d+)?%")


class ApiKeyGrant(BaseModel):
    """One API key bound to tenants and permissions (``serve.api_key_grants``).

    A key used on a path of a tenant it is not bound to is refused (403). ``"*"`` in
    ``datamarts`` / ``networks`` means every tenant of that kind (an operator's key).
    """

    key: SecretStr = Field(description="The key value (x-api-key / Authorization header).")
    permissions: list[Literal["ingest", "export"]] = Field(
        min_length=1, description="What the key may do: ingest routes, export routes or both."
    )
    datamarts: list[str] = Field(
        default_factory=list, description="mediarithmics datamart ids the key may import into."
    )
    networks: list[str] = Field(
        default_factory=list, description="Village network ids the key may post to."
    )
    segmenter: bool = Field(
        default=False, description="Whether the key may PUT Segmenter segment documents."
    )


class ServeOptions(BaseModel):
    """``segflow serve``: the ingestion and export APIs, their API keys and export workers."""

    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8080, ge=0, le=65535, description="Listen port; 0 = pick a free one.")
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
    max_ready_per_key: int = Field(
        default=50,
        ge=1,
        description="Finished (READY, not yet expired) exports kept per API key; more -> 429. "
        "Bounds the disk one key can fill.",
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
    api_key_grants: list[ApiKeyGrant] = Field(
        default_factory=list,
        description="Keys bound to tenants and permissions (JSON list in env, e.g. "
        '[{"key": "...", "permissions": ["ingest"], "datamarts": ["1"], "networks": ["7"]}]); '
        "plain api_keys / api_key_dir files are export-only.",
    )
    max_stream_body_bytes: int = Field(
        default=8 << 30,
        ge=1024,
        description="Largest streamed ingestion body (document import executions, Segmenter "
        "PUTs); counted while streaming, more -> 413.",
    )
    max_command_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Largest body of a single-JSON request (Village POST, import creation, "
        "export request); read only after the API key checked, more -> 413.",
    )
    max_concurrent_per_key: int = Field(
        default=16, ge=1, description="Ingestion requests in flight per API key; more -> 429."
    )
    busy_retry_after_s: int = Field(
        default=1, ge=1, description="Retry-After of a 429 (per-key concurrency limit)."
    )
    unavailable_retry_after_s: int = Field(
        default=10, ge=1, description="Retry-After of a 503 (Kafka unavailable)."
    )
    delivery_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long an ingestion request waits for Kafka to acknowledge (acks=all) "
        "its records before answering 503.",
    )
    linger_ms: int = Field(
        default=1,
        ge=0,
        description="linger.ms of the ingestion producer: a request waits for its own acks, "
        "so upload.linger_ms (throughput) would be added to every answer; concurrent "
        "requests still share batches.",
    )
    ingest_dir: Path | None = Field(
        default=None,
        description="Rejected lines of ingestion executions (document imports' error files); "
        "default <export_dir>/ingest-errors, so the export volume shared by every replica "
        "holds them too.",
    )
    ingest_errors_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Error files (rejected lines) of ingestion executions older than this are "
        "deleted (checked hourly while ingesting); their GET .../errors then answers 410. "
        "0 = keep them forever.",
    )
    shutdown_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="On SIGTERM: stop accepting, then wait this long for requests in flight "
        "(a body still streaming after it fails cleanly; nothing half-replaced).",
    )
    ingest_threads: int = Field(
        default=64, ge=1, description="Threads running ingestion requests (reading and producing)."
    )
    village_batch_max: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="Village POSTs waiting at the same time for the same network are one "
        "execution of at most this many lines (each answered once its own command is "
        "acknowledged); 1 = one execution per request.",
    )
    village_batches_in_flight: int = Field(
        default=4,
        ge=1,
        description="Village executions running at once; a POST arriving while all run waits "
        "for the next one (group commit: no timer, a lone request starts at once).",
    )

    _split = field_validator("api_keys", mode="before")(_split_commas)

    @property
    def ingest_errors_dir(self) -> Path:
        """Where ingestion executions' rejected lines are written (``ingest_dir``)."""
        return self.ingest_dir or self.export_dir / "ingest-errors"


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

    @model_validator(mode="after")
    def _write_time_bounded(self) -> ConsumeSettings:
        """A batch's writes must end inside the poll interval and the liveness window.

        Requests still in flight at the deadline may take one more request timeout, and the
        loop polls only between batches, so deadline + timeout must stay below both bounds.
        """
        worst = self.consumer.write_deadline_s + self.cassandra.request_timeout_s
        bound = min(MAX_POLL_INTERVAL_S, LIVENESS_STALL_S)
        if worst >= bound:
            raise ValueError(
                f"consumer.write_deadline_s ({self.consumer.write_deadline_s:g}) + "
                f"cassandra.request_timeout_s ({self.cassandra.request_timeout_s:g}) must stay "
                f"below {bound:g} s (max.poll.interval.ms and the liveness window)"
            )
        return self


class DeadLetterSettings(SegflowSettings):
    """``segflow dlq inspect|replay``."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    dlq: DeadLetterOptions = Field(default_factory=DeadLetterOptions)


class UploadSettings(SegflowSettings):
    """``segflow upload`` and ``segflow executions``."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    upload: UploadOptions = Field(default_factory=UploadOptions)


class ServeSettings(SegflowSettings):
    """``segflow serve`` and ``segflow export``.

    ``kafka`` and ``upload`` (its producer tuning) are those of ``segflow upload``: the
    ingestion routes produce exactly as the uploader does.
    """

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    upload: UploadOptions = Field(default_factory=UploadOptions)
    serve: ServeOptions = Field(default_factory=ServeOptions)


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def masked_dump(settings: BaseSettings) -> dict[str, Any]:
    """Effective configuration as plain data with every secret replaced by ``**********``.

    Masked: every ``SecretStr``; any mapping key that names a secret (password, token, ...);
    and in ``kafka.extra`` every librdkafka property that can hold one (``is_secret_property``).
    """
    dumped: dict[str, Any] = _mask(settings.model_dump(mode="python"))
    kafka = dumped.get("kafka")
    if isinstance(kafka, dict) and isinstance(kafka.get("extra"), dict):
        kafka["extra"] = {
            key: MASK if value and is_secret_property(key) else value
            for key, value in kafka["extra"].items()
        }
    return dumped


MASK = "**********"
_SECRET_KEY = re.compile(r"password|secret|token|credential", re.IGNORECASE)

# librdkafka flags these properties _RK_SENSITIVE (src/rdkafka_conf.c): it redacts them in its
# own configuration dumps, so segflow never prints them either.
LIBRDKAFKA_SENSITIVE = frozenset(
    {
        "sasl.oauthbearer.assertion.private.key.file",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.password",
        "sasl.username",
        "ssl.ca.pem",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
        "ssl_key",
    }
)
# Name parts of properties librdkafka may add later (or a Java-style name passed by mistake).
_SECRET_WORD = re.compile(
    r"(^|[._])(password|passphrase|secret|token|credentials?|private|key|pem|jaas|config)"
    r"($|[._])",
    re.IGNORECASE,
)


def is_secret_property(name: str) -> bool:
    """Whether a librdkafka property's value may be a secret (its value is never printed).

    The rule: librdkafka's own sensitive list, plus any property in the ``sasl.`` or ``ssl``
    namespaces, or named with a secret-like word (``password``, ``key``, ``pem``, ``config``,
    ...): a property nobody has reviewed yet is masked rather than shown.
    """
    lowered = name.lower()
    return (
        lowered in LIBRDKAFKA_SENSITIVE
        or lowered.startswith(("sasl.", "ssl.", "ssl_", "https."))
        or _SECRET_WORD.search(lowered) is not None
    )


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET_KEY.search(str(key)) and item else _mask(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
