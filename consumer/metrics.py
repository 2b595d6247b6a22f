"""Prometheus metrics of the consumer, in one registry so dashboards and alerts can be checked.

Labels never carry user keys or segment ids (unbounded cardinality and PII); they carry
operation names, dead-letter reasons, topics and partition numbers only. Names end in their
unit as the Prometheus naming conventions ask (``_records``, ``_seconds``, ``_total``), and the
registry also holds the process, platform and ``segflow_build_info`` metrics.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from segflow.process_metrics import register_process_metrics


class ConsumerMetrics:
    """All consumer metrics, registered in their own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        register_process_metrics(reg)
        self.consumed = Counter(
            "segflow_consumer_records_consumed_total",
            "Kafka records read from the commands topic.",
            registry=reg,
        )
        self.applied = Counter(
            "segflow_consumer_commands_applied_total",
            "Commands whose Cassandra writes succeeded, by operation.",
            ["operation"],
            registry=reg,
        )
        self.dead_lettered = Counter(
            "segflow_consumer_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=reg,
        )
        self.retries = Counter(
            "segflow_consumer_cassandra_retries_total",
            "Retries of idempotent Cassandra statements after a timeout or unavailability.",
            registry=reg,
        )
        self.write_errors = Counter(
            "segflow_consumer_cassandra_write_errors_total",
            "Cassandra write attempts that failed (each retry counts).",
            registry=reg,
        )
        self.cassandra_writes = Counter(
            "segflow_consumer_cassandra_writes_total",
            "Cassandra statements executed successfully for applied commands.",
            registry=reg,
        )
        self.commits = Counter(
            "segflow_consumer_commits_total",
            "Successful offset commits.",
            registry=reg,
        )
        self.batch_size = Histogram(
            "segflow_consumer_batch_size_records",
            "Records per consumed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=reg,
        )
        self.apply_latency = Histogram(
            "segflow_consumer_apply_latency_seconds",
            "Time to apply one batch to Cassandra, retries included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=reg,
        )
        self.lag = Gauge(
            "segflow_consumer_lag_records",
            "Consumer lag in records per assigned partition (librdkafka statistics).",
            ["topic", "partition"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "segflow_consumer_in_flight_writes",
            "Cassandra writes currently awaiting an answer.",
            registry=reg,
        )
        self.paused_partitions = Gauge(
            "segflow_consumer_paused_partitions",
            "Assigned partitions paused because Cassandra is unavailable.",
            registry=reg,
        )
        self.assigned_partitions = Gauge(
            "segflow_consumer_assigned_partitions",
            "Partitions currently assigned to this consumer.",
            registry=reg,
        )
        self.last_commit = Gauge(
            "segflow_consumer_last_commit_timestamp_seconds",
            "Unix time of the last successful offset commit.",
            registry=reg,
        )
        self.seconds_since_commit = Gauge(
            "segflow_consumer_last_commit_age_seconds",
            "Seconds since the last successful offset commit (since start if none yet).",
            registry=reg,
        )
        self.rejected_writes = Counter(
            "segflow_consumer_cassandra_rejected_writes_total",
            "Statements Cassandra refused permanently (InvalidRequest, unbindable values); "
            "their records are dead-lettered with reason write_rejected.",
            registry=reg,
        )
        self.unattributed_write_errors = Counter(
            "segflow_consumer_cassandra_unattributed_write_errors_total",
            "Permanent write errors no record is to blame for (grants, schema): the consumer "
            "stops; alert on any increase.",
            registry=reg,
        )
        self.grouped_requests = Counter(
            "segflow_consumer_cassandra_requests_total",
            "Cassandra write requests sent (an UNLOGGED batch counts once).",
            registry=reg,
        )
        self.ready = Gauge(
            "segflow_consumer_ready",
            "1 when partitions are assigned and Cassandra answers, else 0.",
            registry=reg,
        )
