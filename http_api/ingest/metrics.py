"""Prometheus metrics of the ingestion routes (issue 15), beside the export API's.

``segflow serve`` registers them in the export API's registry, so the one ``/metrics`` of the
process shows both. Labels are the HTTP method, the route *template* (``/networks/
{network_id}/segments``, never the filled-in path: no tenant or segment ids), the status code
and the input format: never API keys, tenant ids, segment ids or user keys.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """All ingestion metrics, in ``registry`` (a fresh one by default: tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "segflow_ingest_http_requests_total",
            "Ingestion requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.request_duration = Histogram(
            "segflow_ingest_http_request_duration_seconds",
            "Time from the request's headers to its answer (body streaming, the wait for "
            "Kafka's acknowledgements and the execution's final save included).",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                     60, 300, 1800),
            registry=reg,
        )  # fmt: skip
        self.body_bytes = Counter(
            "segflow_ingest_body_bytes_total",
            "Request body bytes read by the ingestion routes, by method and route template.",
            ["method", "route"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "segflow_ingest_requests_in_flight",
            "Ingestion requests being handled now (past the key check).",
            registry=reg,
        )
        self.records_produced = Counter(
            "segflow_ingest_records_produced_total",
            "Command records produced and acknowledged by Kafka for ingestion requests, by "
            "input format.",
            ["format"],
            registry=reg,
        )
        self.lines_rejected = Counter(
            "segflow_ingest_lines_rejected_total",
            "Input lines (persons) of ingestion requests rejected (error file), by format.",
            ["format"],
            registry=reg,
        )
        self.village_group_size = Histogram(
            "segflow_ingest_village_group_size",
            "Village POSTs answered by one shared execution (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=reg,
        )
        self.error_files_expired = Counter(
            "segflow_ingest_error_files_expired_total",
            "Error files of ingestion executions deleted after serve.ingest_errors_retention_days.",
            registry=reg,
        )
