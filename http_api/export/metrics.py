"""Prometheus metrics of ``segflow serve``, in one registry so dashboards and alerts can be
checked against it. Labels carry outcomes and HTTP routes only: never API keys, segment ids or
user keys.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ExportMetrics:
    """All export API metrics, registered in their own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "segflow_export_http_requests_total",
            "HTTP requests answered by the export API, by route and status code.",
            ["route", "status"],
            registry=reg,
        )
        self.jobs_finished = Counter(
            "segflow_export_jobs_finished_total",
            "Export jobs that ended, by outcome (ready, failed, retried).",
            ["outcome"],
            registry=reg,
        )
        self.jobs_queued = Gauge(
            "segflow_export_jobs_queued",
            "Export jobs waiting for a worker (seen by this replica's last scan).",
            registry=reg,
        )
        self.jobs_running = Gauge(
            "segflow_export_jobs_running",
            "Export jobs running in this replica.",
            registry=reg,
        )
        self.profiles = Counter(
            "segflow_export_profiles_written_total",
            "Profiles written into export files.",
            registry=reg,
        )
        self.bytes = Counter(
            "segflow_export_bytes_written_total",
            "Compressed bytes of finished export files.",
            registry=reg,
        )
        self.job_duration = Histogram(
            "segflow_export_job_duration_seconds",
            "Time to build one export file.",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=reg,
        )
        self.files_deleted = Counter(
            "segflow_export_files_expired_total",
            "Export files deleted because their poll URL expired.",
            registry=reg,
        )
        self.ready = Gauge(
            "segflow_export_ready",
            "1 when Cassandra answers and the export directory is writable, else 0.",
            registry=reg,
        )
