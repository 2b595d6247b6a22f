"""What every segflow process exposes besides its own metrics: process, runtime, build.

The consumer and the export API each keep their own ``CollectorRegistry`` (so tests and the
dashboard checks can read exactly one process's metrics). This adds prometheus_client's own
collectors to such a registry: process (CPU, memory, open file descriptors: ``process_*``),
garbage collector (``python_gc_*``) and platform (``python_info``), plus
``segflow_build_info{version, python}``, the conventional always-1 info metric that lets a
dashboard or an alert join on the running version.
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from segflow import __version__


def register_process_metrics(registry: CollectorRegistry) -> None:
    """Add the process, platform and build-info metrics to ``registry``."""
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info(
        "segflow_build",
        "The segflow version and Python version of this process.",
        registry=registry,
    ).info({"version": __version__, "python": platform.python_version()})
