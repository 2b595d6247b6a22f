"""Wire one consumer process together: Cassandra session, statements, registry, loop, HTTP.

``consumer.supervisor.run_workers`` runs N such processes for ``--workers N``; each is a
full group member with its own health/metrics port (base port + worker index).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from typing import Any

from consumer.dead_letter import DeadLetterSink
from consumer.grouping import StatementGrouper
from consumer.http_endpoints import HealthServer
from consumer.loop import ConsumerLoop
from consumer.metrics import ConsumerMetrics
from consumer.planner import CommandPlanner
from consumer.statements import prepare_all
from consumer.writer import CassandraWriter
from segflow.contract.codec import codec_with_writer_schemas
from segflow.db.executions import ExecutionStore
from segflow.db.probe import CassandraProbe
from segflow.db.registry import SegmentRegistry
from segflow.db.session import connect
from segflow.logs import configure_logging
from segflow.settings import LIVENESS_STALL_S, ConsumeSettings

log = logging.getLogger(__name__)


@dataclass
class Consumer:
    """One wired consumer: its loop, metrics and Cassandra connection."""

    loop: ConsumerLoop
    metrics: ConsumerMetrics
    probe: CassandraProbe
    cluster: Any

    def close(self) -> None:
        """Release the Cassandra connection (the loop closes its Kafka clients itself)."""
        self.cluster.shutdown()


def build(settings: ConsumeSettings) -> Consumer:
    """Connect and wire every component of one consumer (shared by the CLI and the tests)."""
    opts = settings.consumer
    cluster, session = connect(settings.cassandra, settings.cassandra.keyspace)
    try:
        metrics = ConsumerMetrics()
        probe = CassandraProbe(session)
        writer = CassandraWriter(
            session,
            prepare_all(session),
            metrics,
            opts.max_in_flight,
            opts.retry_initial_s,
            opts.retry_max_s,
            opts.retry_attempts,
            grouper=StatementGrouper(
                opts.write_grouping,
                opts.group_max_rows,
                opts.group_max_bytes,
                lambda: cluster.metadata.token_map,
            ),
            deadline_s=opts.write_deadline_s,
            request_timeout_s=settings.cassandra.request_timeout_s,
        )
        planner = CommandPlanner(
            codec_with_writer_schemas(opts.writer_schema_dir),
            SegmentRegistry(session, opts.default_bucket_count, opts.registry_cache_ttl_s),
            ExecutionStore(session),
            opts.unknown_segment_policy,
            opts.events_ttl_days * 86400,
        )
        loop = ConsumerLoop(
            settings, planner, writer, DeadLetterSink(settings.kafka), metrics, probe
        )
    except Exception:
        cluster.shutdown()
        raise
    return Consumer(loop, metrics, probe, cluster)


def health_server(consumer: Consumer, host: str, port: int) -> HealthServer:
    """The /metrics, /healthz and /readyz server of a consumer."""
    loop, metrics, probe = consumer.loop, consumer.metrics, consumer.probe

    def alive() -> tuple[bool, dict[str, object]]:
        stalled = time.monotonic() - loop.last_loop
        return stalled < LIVENESS_STALL_S, {"seconds_since_poll": round(stalled, 1)}

    def ready() -> tuple[bool, dict[str, object]]:
        return loop.ready, {"cassandra": probe()}

    # Evaluated at every scrape, so the gauge is right whether or not anything polls /readyz
    # (compose has no readiness probe; the SegflowConsumerNotReady alert reads this gauge).
    metrics.ready.set_function(lambda: 1.0 if loop.ready else 0.0)
    return HealthServer(host, port, metrics.registry, alive, ready)


# Allocations between young-generation collections (CPython's default is 700). A batch of
# 1,000 records makes ~50k short-lived containers (dicts, tuples, bound values) that die with
# the batch, so the default collects ~70 times per batch, scanning the batch's live objects
# each time and promoting them to be scanned again: ~10 % of the consumer's CPU in the profile
# (README "Benchmarks"). Reference cycles are still collected, only less often.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Freeze what startup built (driver metadata, settings, codecs) and collect less often.

    ``gc.freeze`` moves every object alive now to a generation the collector never scans, so
    full collections stop walking the driver's schema metadata and the imported modules.
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def run(settings: ConsumeSettings, until_idle: bool = False, worker: int = 0) -> None:
    """Run one consumer until SIGTERM (or until caught up with ``until_idle``)."""
    configure_logging(settings.log)
    opts = settings.consumer
    consumer = build(settings)
    try:
        consumer.loop.install_signal_handlers()
        port = opts.http_port + worker if opts.http_port else 0
        server = health_server(consumer, opts.http_host, port)
        server.start()
        tune_gc()
        log.info(
            "consumer started",
            extra={
                "fields": {
                    "group": opts.group_id,
                    "topic": settings.kafka.commands_topic,
                    "http": f"{opts.http_host}:{server.port}",
                    "worker": worker,
                }
            },
        )
        try:
            consumer.loop.run(until_idle=until_idle)
        finally:
            server.stop()
    finally:
        consumer.close()
